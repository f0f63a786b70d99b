"""Filtered search at scale: allowed rows from column arrays equal SQL's, both filter strategies agree with
exact search over the allowed rows, label lookup without a dict, and indexes loaded only when needed."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from mmtui.index.ann import VectorIndex
from mmtui.index.filter_columns import FilterColumns
from mmtui.store.filters import parse_where, where_sql



def clustered_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim))
    x = centres[rng.integers(0, 40, n)] + 0.5 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


# -- allowed rows: arrays vs SQL ------------------------------------------------------------------------------
@pytest.fixture
def products_db():
    """A products table with the awkward cases: NULLs, mixed case, non-ASCII letters, LIKE wildcards in values."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE products (rowid INTEGER PRIMARY KEY, id TEXT, colour TEXT, gender TEXT, "
                 "category TEXT, brand TEXT, price FLOAT, season TEXT, usage TEXT, article_type TEXT, split TEXT)")
    rng = np.random.default_rng(3)
    colours = ["Black", "black", "BLACK", "Navy Blue", "navy blue", "Blå", "BLÅ", "Red_1", "Red%2", "", None]
    genders = ["Men", "Women", "men", None, "Unisex"]
    rows = []
    for i in range(1, 400):
        price = None if i % 17 == 0 else float(rng.integers(1, 20000)) / 100
        rows.append((i * 3, f"p{i}", colours[i % len(colours)], genders[i % len(genders)],
                     f"Apparel > {['Topwear', 'Bottomwear', 'Shoes'][i % 3]}", "Acme" if i % 2 else "acme co",
                     price, ["Summer", "Winter", None][i % 3], "Casual", "Tshirts", ["train", "val", "test"][i % 3]))
    conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return conn


EXPRESSIONS = ["colour=black", "colour=BLACK", "colour!=black", "colour=blå", "colour~BLU", "colour~_", "colour~%",
               "colour~d_1", "color=Navy Blue", "gender!=men", "gender=Women", "category~topwear", "brand=acme",
               "brand~ACME CO", "season!=summer", "split=test", "price<50", "price<=50", "price>150", "price>=149.5",
               "price=10", "price!=10", "price<0", "id=p7", "id~P1", "usage=casual", "article_type~shirt"]


@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_allowed_rows_from_arrays_equal_sql(products_db, expr):
    filters = [parse_where(expr)]
    where, params = where_sql(filters)
    sql = [r for (r,) in products_db.execute(f"SELECT rowid FROM products WHERE {where} ORDER BY rowid", params)]
    got = FilterColumns(products_db).allowed(filters)
    if expr.startswith("id"):
        assert got is None  # id is left to SQL
    else:
        assert got.tolist() == sql


def test_combined_filters_equal_sql(products_db):
    columns = FilterColumns(products_db)
    for exprs in (["colour=black", "price<100"], ["gender!=men", "season=winter", "price>=20"], ["colour~blue",
                                                                                                 "brand=ACME"]):
        filters = [parse_where(e) for e in exprs]
        where, params = where_sql(filters)
        sql = [r for (r,) in products_db.execute(f"SELECT rowid FROM products WHERE {where}", params)]
        assert columns.allowed(filters).tolist() == sorted(sql)


def test_a_filter_with_its_own_sql_is_left_to_sql(products_db):
    class Pool:
        def sql(self):
            return "split = ?", ["test"]

    assert FilterColumns(products_db).allowed([parse_where("colour=black"), Pool()]) is None


def test_a_price_stored_as_text_is_left_to_sql(products_db):
    products_db.execute("UPDATE products SET price = 'cheap' WHERE rowid = 3")
    assert FilterColumns(products_db).allowed([parse_where("price<50")]) is None


# -- label lookup -----------------------------------------------------------------------------------------------
def test_positions_without_a_dict_for_sorted_and_unsorted_labels():
    vectors = clustered_vectors(50, 8)
    for labels in (np.arange(10, 110, 2), np.random.default_rng(0).permutation(np.arange(10, 110, 2))):
        index = VectorIndex.build("image", "m", labels, vectors)
        wanted = np.array([labels[7], 11, labels[0], 10_000, labels[-1]])
        assert index.positions(wanted).tolist() == [7, -1, 0, -1, 49]
        assert np.allclose(index.vector_of(int(labels[7])), vectors[7]) and index.vector_of(11) is None
    assert VectorIndex.build("image", "m", np.arange(50), vectors)._position is None  # sorted: no dict made


# -- filter strategies ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graph_index():
    vectors = clustered_vectors(4000, 32)
    return VectorIndex.build("image", "m", np.arange(1, 4001) * 2, vectors)  # labels with gaps


@pytest.mark.parametrize("share", [0.01, 0.1, 0.5, 0.9])
def test_both_filter_strategies_match_exact_search_over_the_allowed_rows(graph_index, share):
    rng = np.random.default_rng(int(share * 100))
    allowed = np.sort(rng.choice(graph_index.labels, int(share * len(graph_index)), replace=False))
    keep = set(allowed.tolist())
    overlaps = []
    for q in clustered_vectors(20, 32, seed=5):
        exact, exact_scores = graph_index.search(q, 10, allowed, strategy="exact")
        reference = graph_index.vectors[graph_index.positions(allowed)] @ q
        assert np.allclose(exact_scores, np.sort(reference)[::-1][:10], atol=1e-5)
        graph, scores = graph_index.search(q, 10, allowed, strategy="graph")
        assert set(graph.tolist()) <= keep and len(graph) == 10 and np.all(np.diff(scores) <= 1e-6)
        overlaps.append(len(set(graph.tolist()) & set(exact.tolist())) / 10)
    assert np.mean(overlaps) >= 0.9


def test_filter_strategy_switches_with_the_number_allowed(graph_index, monkeypatch):
    import mmtui.index.ann as ann

    monkeypatch.setattr(ann, "FILTER_CROSSING", 100.0)  # exact up to sqrt(100 * 4000) = 632 allowed
    assert graph_index.filter_strategy(600) == "exact" and graph_index.filter_strategy(700) == "graph"
    small = VectorIndex.build("text", "m", np.arange(100), clustered_vectors(100, 8))
    assert small.graph is None and small.filter_strategy(100) == "exact"


def test_a_filter_the_graph_cannot_fill_falls_back_to_exact(graph_index):
    allowed = graph_index.labels[[5, 900]]
    labels, _ = graph_index.search(graph_index.vectors[5], 10, allowed, strategy="graph")
    assert sorted(labels.tolist()) == sorted(allowed.tolist())


def test_tune_ef_raises_ef_until_the_target(graph_index):
    vectors = clustered_vectors(2000, 32, seed=9)
    index = VectorIndex.build("image", "m", np.arange(2000), vectors, M=4, ef_construction=10, ef=10)
    queries = clustered_vectors(50, 32, seed=2)
    before = index.recall_check(queries)
    recall = index.tune_ef(queries, target=0.99)
    assert recall >= min(0.99, before) and (recall >= 0.99 or index.manifest.ef == 1024)
    assert index.manifest.ef > 10 or before >= 0.99


# -- indexes read when first needed -----------------------------------------------------------------------------
@pytest.fixture
def built_settings(tiny_catalog, fake_settings):
    from mmtui.build.pipeline import build_index
    from mmtui.encoders import FakeEncoder

    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    return fake_settings


def test_a_query_reads_only_the_indexes_it_needs(built_settings):
    from mmtui.encoders import FakeEncoder
    from mmtui.query.service import SearchService

    service = SearchService.open(built_settings, encoder=FakeEncoder())
    assert service.indexes.loaded == [] and "image" in service.indexes and "fused" in service.indexes
    assert service.search("red shirt", k=3, mode="lexical").hits and service.indexes.loaded == []
    assert service.search("red shirt", k=3, mode="image").hits and service.indexes.loaded == ["image"]
    service.search("red shirt", k=3, mode="hybrid", understand=False)  # plain RRF: lexical, image and text
    assert sorted(service.indexes.loaded) == ["image", "text"]
    service.search("red shirt", k=3, mode="hybrid")  # the understood kind ("shirt") is searched in the fused index
    assert sorted(service.indexes.loaded) == ["fused", "image", "text"]
    service = SearchService.open(built_settings, encoder=FakeEncoder())
    service.preload().join()
    assert sorted(service.indexes.loaded) == ["fused", "image", "text"]


def test_a_query_waits_for_an_index_being_read_in_the_background(built_settings, monkeypatch):
    import threading
    import time

    import mmtui.index.ann as ann
    from mmtui.encoders import FakeEncoder
    from mmtui.query.service import SearchService

    reference = SearchService.open(built_settings, encoder=FakeEncoder()).search("red shirt", k=5, mode="image")
    started, real_load = threading.Event(), ann.VectorIndex.load.__func__

    def slow_load(cls, directory, name, model):
        started.set()
        time.sleep(0.3)  # a large graph being read
        return real_load(cls, directory, name, model)

    monkeypatch.setattr(ann.VectorIndex, "load", classmethod(slow_load))
    service = SearchService.open(built_settings, encoder=FakeEncoder())
    service.preload(["image"])
    assert started.wait(5)
    assert "image" not in service.indexes.loaded  # still being read
    result = service.search("red shirt", k=5, mode="image")  # waits for it, then answers in full
    assert [h.id for h in result.hits] == [h.id for h in reference.hits]
    assert service.indexes.loaded == ["image"]


def test_filtered_service_search_uses_the_column_arrays_and_matches_sql(built_settings):
    from mmtui.encoders import FakeEncoder
    from mmtui.query.service import SearchService

    service = SearchService.open(built_settings, encoder=FakeEncoder())
    for exprs in (["colour=blue"], ["price<35"], ["gender!=women", "category~shirt"]):
        filters = [parse_where(e) for e in exprs]
        allowed, where, params = service._allowed(filters)
        assert allowed.tolist() == service.store.filtered_rowids(where, params).tolist()
    assert service._filter_columns is not None and service._filter_columns._columns  # no SQL scan per filter


def test_the_understood_kind_pool_meets_the_allowed_rows(built_settings):
    from mmtui.encoders import FakeEncoder
    from mmtui.query.service import SearchService
    from mmtui.query.understanding.state import kind_list

    service = SearchService.open(built_settings, encoder=FakeEncoder())
    understood = service.understand("red shirt")
    assert understood is not None and understood.parts.get("kind")
    search = lambda pool: service.kind_search("red shirt")(pool, 1000)  # noqa: E731
    everything = kind_list(service.understanding, understood, None, search)
    all_rowids = service.store.filtered_rowids("1", [])
    for allowed in (all_rowids[::2], all_rowids[1::3], all_rowids[:0]):
        kept = kind_list(service.understanding, understood, allowed, search)
        assert {r for r, _ in kept} == {r for r, _ in everything} & set(allowed.tolist())
    hits = service.search("red shirt", k=10, mode="hybrid", filters=[parse_where("colour=blue")]).hits
    assert hits and all(h.colour.lower() == "blue" for h in hits)


def test_in_a_large_catalog_the_kind_list_reads_no_third_graph(built_settings, monkeypatch):
    """From usearch's size on, a hybrid query with an understood kind reads image and text only: the kind list
    searches the text index instead of reading the fused graph (a third ~1 GB at 1M products)."""
    import mmtui.index.ann as ann
    from mmtui.encoders import FakeEncoder
    from mmtui.query.service import SearchService

    monkeypatch.setattr(ann, "USEARCH_FROM", 10)  # the tiny catalog counts as large
    service = SearchService.open(built_settings, encoder=FakeEncoder())
    assert service.search("red shirt", k=3, mode="hybrid").hits
    assert service.understand("red shirt").parts.get("kind")
    assert sorted(service.indexes.loaded) == ["image", "text"]
