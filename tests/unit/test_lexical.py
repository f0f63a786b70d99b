"""The in-memory BM25 index (mmtui.index.lexical) gives FTS5's exact answers, and is never used when stale."""

from __future__ import annotations

import numpy as np
import pytest

from mmtui.index.backends.local import lexical_hits
from mmtui.index.lexical import FILE, FastLexical, LexicalIndex, ensure_lexical_index
from mmtui.store.db import Store, fts_words

COLOURS = ["red", "navy blue", "black", "white", "green", "grey"]
THINGS = ["shirt", "shoes", "running shoe", "dress", "jeans", "watch", "sandals", "café mug", "naïve tee"]
EXTRA = ["for men", "for women", "cotton casual summer", "formal", "sports", "", "Größe Straße", "日本 製"]


def _products(n: int = 240) -> list[dict]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        colour, thing = COLOURS[i % len(COLOURS)], THINGS[(i * 7) % len(THINGS)]
        extra = EXTRA[int(rng.integers(len(EXTRA)))]
        title = f"{colour.title()} {thing} {extra}".strip() if i % 11 else f"{thing} {thing} {colour}"
        text = f"{title}. {thing} in {colour}, {extra}; men women unisex casual " * int(1 + rng.integers(3))
        out.append({"id": f"p{i}", "title": title, "text": text, "colour": colour.title(),
                    "price": float(i % 50), "gender": ["Men", "Women"][i % 2],
                    "tags": "striped, leather" if i % 5 == 0 else None})
    return out


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "catalog.db", create=True)
    s.upsert_products(_products())
    s.db.conn.commit()
    yield s
    s.close()


QUERIES = ["red shirt", "shoes", "shoe", "shoes shoe", "running shoes for men", "navy blue", "Navy  BLUE navy",
           "café", "cafe", "naive", "straße", "größe", "日本", "striped", "leather shirt", "zzznotaword",
           "zzznotaword shirt", "men", "men women", "casual summer cotton", "watch 7", "RED", "tee"]


def _fts(store: Store, query: str, limit: int, where: str = "1", params=None):
    return store.lexical(query, limit, where, params or [])


def _lex(store: Store, fast, query: str, limit: int, where: str = "1", params=None, allowed=None):
    """What a search reads: the in-memory index where it answers exactly, FTS5 otherwise."""
    return lexical_hits(store, fast, query, limit, where, params or [], allowed)


def _fast(store: Store, ann) -> tuple[FastLexical, bool]:
    """The saved index of `ann`, and whether it matches the store now."""
    fast = FastLexical(ann)
    return fast, fast.current(store.db.conn) is not None


def _same(ref, got, tol=1e-4):
    assert [r for r, _ in got] == [r for r, _ in ref]
    assert all(abs(a - b) <= tol for (_, a), (_, b) in zip(ref, got))


def test_same_hits_and_scores_as_fts5(store, tmp_path):
    assert ensure_lexical_index(tmp_path / "ann", store.db.conn) == "built"
    fast, usable = _fast(store, tmp_path / "ann")
    assert usable
    for query in QUERIES:
        for limit in (1, 5, 20, 500):
            ref = _fts(store, query, limit)
            got = fast.query(store.db.conn, fts_words(query), limit)
            assert got is not None, query  # answered by the index, not by the FTS5 fallback
            _same(ref, got)
            assert _lex(store, fast, query, limit) == got
    assert _lex(store, fast, "shoes", 500) and _lex(store, fast, "shoes", 500) == _lex(store, fast, "shoe", 500)  # stemmed
    assert _lex(store, fast, "striped", 5)  # words that are only in tags are found
    assert _lex(store, fast, "zzznotaword", 5) == []


def test_the_fast_path_answers_and_scores_are_bit_identical(store, tmp_path):
    ensure_lexical_index(tmp_path / "ann", store.db.conn)
    index = FastLexical(tmp_path / "ann").current(store.db.conn)
    assert index is not None
    tokens = index.phrase_tokens(["shoes", "shoe", "café"])
    assert tokens == ["shoe", "shoe", "cafe"]  # FTS5's own porter + unicode61 tokens
    ref = _fts(store, "shoes shoe café", 50)
    assert index.search(tokens, 50) == ref  # a repeated token counts twice, as two FTS5 phrases do


def test_filters_use_the_allowed_rowids(store, tmp_path):
    from mmtui.store.filters import parse_where, where_sql

    ensure_lexical_index(tmp_path / "ann", store.db.conn)
    fast, _ = _fast(store, tmp_path / "ann")
    for spec in (["colour=Red"], ["gender=Women", "price<20"], ["colour=Nothing"]):
        where, params = where_sql([parse_where(s) for s in spec])
        allowed = store.filtered_rowids(where, params)
        for query in ("shirt", "red shirt", "shoes for men", "striped"):
            ref = _fts(store, query, 10, where, params)
            got = fast.query(store.db.conn, query.split(), 10, allowed)
            assert got is not None
            _same(ref, got)
            assert _lex(store, fast, query, 10, where, params, allowed) == got


def test_a_changed_product_makes_the_index_stale(store, tmp_path):
    ensure_lexical_index(tmp_path / "ann", store.db.conn)
    fast, usable = _fast(store, tmp_path / "ann")
    assert usable
    with store.db.conn:
        store.db.execute("UPDATE products SET title = 'zebra zebra', tags = 'zebra' WHERE id = 'p3'")
    assert fast.query(store.db.conn, ["zebra"], 5) is None  # declines: FTS5 answers
    hits = _lex(store, fast, "zebra", 5)
    assert [r for r, _ in hits] == [store.rowid_of(["p3"])["p3"]]
    # a rebuild (what reindex does) makes it current again, picked up without reopening
    assert ensure_lexical_index(tmp_path / "ann", store.db.conn) == "updated"  # one row changed: updated, not rebuilt
    got = fast.query(store.db.conn, ["zebra"], 5)
    assert got == hits
    assert ensure_lexical_index(tmp_path / "ann", store.db.conn) == "unchanged"


def test_deleted_and_added_products_are_seen(store, tmp_path):
    ensure_lexical_index(tmp_path / "ann", store.db.conn)
    fast = FastLexical(tmp_path / "ann")
    assert fast.query(store.db.conn, ["shirt"], 5) is not None
    with store.db.conn:
        store.delete_products(["p1"])
    assert fast.query(store.db.conn, ["shirt"], 5) is None
    with store.db.conn:
        store.upsert_products([{"id": "new", "title": "shirt", "text": "shirt"}])
    assert fast.query(store.db.conn, ["shirt"], 5) is None


def test_missing_or_broken_index_falls_back_to_fts5(store, tmp_path):
    fast, usable = _fast(store, tmp_path / "ann")
    assert not usable
    assert _lex(store, fast, "red shirt", 5) == _fts(store, "red shirt", 5)
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / FILE).write_bytes(b"not a zip")
    assert LexicalIndex.load(tmp_path / "ann") is None
    fast, usable = _fast(store, tmp_path / "ann")
    assert not usable
    assert _lex(store, fast, "red shirt", 5) == _fts(store, "red shirt", 5)


def test_common_words_are_dropped_like_informative_words(store, tmp_path):
    ensure_lexical_index(tmp_path / "ann", store.db.conn)
    fast, _ = _fast(store, tmp_path / "ann")
    assert store.informative_words(["men", "watch"]) == ["watch"]  # "men" is in most texts
    ref = _fts(store, "men watch", 20)
    assert _lex(store, fast, "men watch", 20) == ref
    assert _lex(store, fast, "men", 20) == _fts(store, "men", 20)  # kept when it is the only word


def test_reindex_writes_the_lexical_index(tiny_catalog, fake_settings):
    from mmtui.build.pipeline import build_index
    from mmtui.encoders import FakeEncoder
    from mmtui.query.service import SearchService

    from mmtui.index.generations import current

    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    assert (current(fake_settings.ann_dir).dir / FILE).is_file()
    service = SearchService.open(fake_settings, encoder=FakeEncoder())
    index = service.backend.lexical_index
    assert index is not None and len(index) == service.store.product_count()
    hits = service.search("red shirt", k=5, mode="lexical").hits
    assert hits[0].title == "Red Shirt for men"


def test_rowids_with_gaps_and_filters(store, tmp_path):
    from mmtui.store.filters import parse_where, where_sql

    with store.db.conn:
        store.delete_products([f"p{i}" for i in range(0, 240, 3)])
    ensure_lexical_index(tmp_path / "ann", store.db.conn)
    fast, _ = _fast(store, tmp_path / "ann")
    where, params = where_sql([parse_where("gender=Men")])
    allowed = store.filtered_rowids(where, params)
    for query in ("shirt", "red shoes", "striped casual"):
        for limit in (1, 3, 50):
            got = fast.query(store.db.conn, fts_words(query), limit, allowed)
            assert got is not None and got == _fts(store, query, limit, where, params)
            assert fast.query(store.db.conn, fts_words(query), limit) == _fts(store, query, limit)


def test_an_uncommitted_change_on_the_same_connection_is_seen(store, tmp_path):
    ensure_lexical_index(tmp_path / "ann", store.db.conn)
    fast = FastLexical(tmp_path / "ann")
    assert fast.query(store.db.conn, ["shirt"], 5) is not None
    store.db.conn.execute("SAVEPOINT edit")
    store.db.execute("UPDATE products SET title = 'red hat' WHERE id = 'p7'")  # not committed yet
    assert store.db.conn.in_transaction
    assert fast.query(store.db.conn, ["shirt"], 5) is None
    store.db.conn.execute("ROLLBACK TO edit")
    store.db.conn.execute("RELEASE edit")
    assert fast.query(store.db.conn, ["shirt"], 5) is not None


def _assert_same_index(a: LexicalIndex, b: LexicalIndex) -> None:
    assert a.term_list == b.term_list
    for name in ("rowids", "offsets", "docs", "factors", "freqs", "lengths", "sigs"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.fingerprint == b.fingerprint and a.n_rows == b.n_rows and a.meta["avgdl"] == b.meta["avgdl"]


def _edit(store: Store) -> None:
    """Add 12 rows (new words too), change 5 (one to an empty title), delete 4."""
    with store.db.conn:
        store.upsert_products([{"id": f"n{i}", "title": f"Quokka {THINGS[i % len(THINGS)]} {i}",
                                "text": f"brand new quokka item {i} ünïcode", "tags": "fresh" if i % 2 else None}
                               for i in range(12)])
        store.db.execute("UPDATE products SET title = 'zebra zebra', tags = 'zebra' WHERE id = 'p3'")
        store.db.execute("UPDATE products SET text = text || ' running running' WHERE id IN ('p10', 'p20')")
        store.db.execute("UPDATE products SET title = '' WHERE id = 'p30'")
        store.db.execute("UPDATE products SET tags = NULL WHERE id = 'p40'")
        store.delete_products(["p1", "p2", "p50", "p239"])


def test_an_update_equals_a_full_build_and_fts5(store, tmp_path):
    ann = tmp_path / "ann"
    ensure_lexical_index(ann, store.db.conn)
    _edit(store)
    assert ensure_lexical_index(ann, store.db.conn) == "updated"
    got = LexicalIndex.load(ann, full=True)
    assert got.meta["update"] == {"added": 12, "changed": 5, "removed": 4}
    _assert_same_index(got, LexicalIndex.build(store.db.conn))
    fast, usable = _fast(store, ann)
    assert usable
    for query in QUERIES + ["quokka", "zebra", "fresh", "unicode", "running"]:
        ref = _fts(store, query, 20)
        assert _lex(store, fast, query, 20) == ref, query
    # an update of an update is still exact; no change: nothing to do
    with store.db.conn:
        store.db.execute("UPDATE products SET title = 'Red quokka' WHERE id = 'p5'")
    assert ensure_lexical_index(ann, store.db.conn) == "updated"
    _assert_same_index(LexicalIndex.load(ann, full=True), LexicalIndex.build(store.db.conn))
    assert _lex(store, fast, "red quokka", 10) == _fts(store, "red quokka", 10)
    assert ensure_lexical_index(ann, store.db.conn) == "unchanged"


def test_a_large_change_is_a_full_build(store, tmp_path):
    ann = tmp_path / "ann"
    ensure_lexical_index(ann, store.db.conn)
    with store.db.conn:
        store.db.execute("UPDATE products SET title = title || ' extra' WHERE rowid % 4 = 0")  # 25% of the rows
    old = LexicalIndex.load(ann, full=True)
    assert LexicalIndex.updated(old, store.db.conn) is None
    assert ensure_lexical_index(ann, store.db.conn) == "built"
    fast, usable = _fast(store, ann)
    assert usable and _lex(store, fast, "extra", 20) == _fts(store, "extra", 20)


def test_a_file_of_the_previous_format_answers_and_is_built_whole_on_the_next_change(store, tmp_path):
    import json

    ann = tmp_path / "ann"
    ensure_lexical_index(ann, store.db.conn)
    with np.load(ann / FILE) as data:  # as the previous version wrote it: no update data
        arrays = {k: data[k] for k in ("rowids", "offsets", "docs", "factors", "terms")}
        meta = json.loads(data["meta"].tobytes().decode("utf-8"))
    meta["format"] = 2
    np.savez(ann / FILE, **arrays, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8))
    fast, usable = _fast(store, ann)
    assert usable and _lex(store, fast, "red shirt", 10) == _fts(store, "red shirt", 10)
    with store.db.conn:
        store.db.execute("UPDATE products SET title = 'zebra' WHERE id = 'p3'")
    assert ensure_lexical_index(ann, store.db.conn) == "built"
    assert LexicalIndex.load(ann).meta["format"] == 3


def test_a_large_index_is_memory_mapped_with_the_same_answers(store, tmp_path, monkeypatch):
    from mmtui.index import lexical

    ann = tmp_path / "ann"
    ensure_lexical_index(ann, store.db.conn)
    read = LexicalIndex.load(ann, full=True)
    monkeypatch.setattr(lexical, "MAP_FROM", 0)  # every file counts as large
    mapped = LexicalIndex.load(ann, full=True)
    _assert_same_index(mapped, read)
    for name in ("rowids", "offsets", "docs", "factors", "freqs", "lengths", "sigs"):
        array = getattr(mapped, name)
        assert isinstance(array.base, np.memmap) and not array.flags.writeable, name  # shared pages, not a copy
    for query in QUERIES:
        assert mapped.search(mapped.phrase_tokens(fts_words(query)) or [], 20) == \
            read.search(read.phrase_tokens(fts_words(query)) or [], 20), query
    _edit(store)  # an update reads the mapped arrays and writes a new file over the mapped one
    assert ensure_lexical_index(ann, store.db.conn) == "updated"
    _assert_same_index(LexicalIndex.load(ann, full=True), LexicalIndex.build(store.db.conn))
    assert mapped.search(["shirt"], 5) == read.search(["shirt"], 5)  # the old mapping still reads the old file


def test_a_compressed_or_short_member_is_read_or_refused(store, tmp_path, monkeypatch):
    from mmtui.index import lexical

    ann = tmp_path / "ann"
    ensure_lexical_index(ann, store.db.conn)
    monkeypatch.setattr(lexical, "MAP_FROM", 0)
    with np.load(ann / FILE) as data:
        arrays = {k: data[k] for k in data.files}
    np.savez_compressed(ann / FILE, **arrays)  # compressed members cannot be mapped: read instead
    got = LexicalIndex.load(ann)
    assert got is not None and np.array_equal(got.factors, arrays["factors"])
    np.savez(ann / FILE, **arrays)
    size = (ann / FILE).stat().st_size
    with open(ann / FILE, "r+b") as fh:  # cut inside the last member: a damaged file, FTS5 answers instead
        fh.truncate(size - 200)
    assert LexicalIndex.load(ann) is None


@pytest.mark.parametrize("matching", [0.0, 0.0005, 0.01, 0.3, 1.0])
def test_the_candidates_hold_every_row_of_the_top_limit(matching):
    """The candidate cut (a strided sample's limit-th best) keeps every row a full sort would rank in the top
    `limit`, with mostly non-matching rows (zeros) and with tied scores."""
    rng = np.random.default_rng(int(matching * 10_000))
    for limit in (1, 10, 100):
        acc = np.zeros(200_000)
        hit = rng.random(len(acc)) < matching
        acc[hit] = rng.choice([0.5, 1.0, 1.5], hit.sum()) + rng.random(hit.sum()) * (rng.random() < 0.5)
        found = set(LexicalIndex._candidates(acc, limit).tolist())
        order = np.lexsort((np.arange(len(acc)), -acc))
        top = [int(i) for i in order[:limit] if acc[i] > 0.0]
        assert set(top) <= found
        assert all(acc[i] > 0.0 for i in found)


def test_the_kth_best_is_exact_with_ties():
    from mmtui.index.lexical import _kth_best

    rng = np.random.default_rng(3)
    for n, tied in ((1, 0.0), (50, 0.0), (5_000, 0.9), (60_000, 0.999), (20_000, 0.5)):
        values = rng.random(n) * 20 + 1e-6
        values[rng.random(n) < tied] = 0.7
        for k in {1, min(n, 10), min(n, 100), n}:
            assert _kth_best(values, k) == np.sort(values)[n - k]


def test_live_rowids_are_those_still_in_the_store(store):
    """Store.live_rowids: every rowid asked for while none is deleted (its one-count path), and only the remaining
    ones after a delete."""
    rowids = [r for (r,) in store.db.execute("SELECT rowid FROM products ORDER BY rowid")]
    assert store.live_rowids(rowids + [10_000_000]) == set(rowids)
    gone = [pid for (pid,) in store.db.execute("SELECT id FROM products WHERE rowid % 3 = 0")]
    store.delete_products(gone)
    kept = {r for (r,) in store.db.execute("SELECT rowid FROM products")}
    assert store.live_rowids(rowids * 3) == kept and 0 < len(kept) < len(rowids)
