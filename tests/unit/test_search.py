"""SearchService over a tiny catalog built with the fake model: modes, filters, fusion, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmtui.build.pipeline import build_index
from mmtui.encoders import FakeEncoder
from mmtui.errors import IndexMismatchError, QueryError
from mmtui.store.filters import parse_where
from mmtui.query.hybrid import fuse_ranked as rrf_fuse
from mmtui.query.service import SearchService


@pytest.fixture
def service(tiny_catalog, fake_settings):
    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    return SearchService.open(fake_settings, encoder=FakeEncoder())


def test_each_mode_returns_ranked_hits(service):
    for mode in ("image", "text", "lexical", "hybrid"):
        result = service.search("red shirt", k=5, mode=mode)
        assert result.mode == mode and 0 < len(result.hits) <= 5
        assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
        scores = [h.score for h in result.hits]
        assert scores == sorted(scores, reverse=True)
    assert service.search("red shirt", mode="lexical").hits[0].title == "Red Shirt for men"


def test_hybrid_reports_each_signal(service):
    hits = service.search("red shirt", k=3, mode="hybrid", understand=False).hits
    red = next(h for h in hits if h.title == "Red Shirt for men")  # first in two of three signals
    assert set(red.signals) == {"image", "text", "lexical"}
    # understood ("red shirt" names the kind Shirt): the kind's own list and the facet part of the score too
    red = next(h for h in service.search("red shirt", k=3, mode="hybrid").hits if h.title == "Red Shirt for men")
    assert set(red.signals) == {"image", "text", "lexical", "kind", "understood"}


def test_image_query_finds_the_same_picture(service, tiny_catalog):
    result = service.search_image(tiny_catalog / "img" / "4.jpg", k=3)
    assert result.kind == "image" and result.hits[0].id == "4"


def test_more_like_this_excludes_the_product(service):
    ids = [h.id for h in service.more_like_this("1", k=5).hits]
    assert "1" not in ids and len(ids) == 5


def test_filters_narrow_results(service):
    hits = service.search("shirt", k=20, mode="hybrid", filters=[parse_where("colour=blue")]).hits
    assert hits and all(h.colour == "Blue" for h in hits)
    cheap = service.search("shirt", k=20, mode="image", filters=[parse_where("price<35")]).hits
    assert cheap and all(h.price < 35 for h in cheap)


def test_filtered_rowids_are_reused_until_the_products_change(service, fake_settings):
    import sqlite3

    blue = [parse_where("colour=blue")]
    first = {h.id for h in service.search("shirt", k=20, mode="image", filters=blue).hits}
    assert len(service._allowed_cache) == 1
    other = sqlite3.connect(fake_settings.db_path)  # another process (a build) recolours every product
    with other:
        other.execute("UPDATE products SET colour = 'blue'")
    other.close()
    after = {h.id for h in service.search("shirt", k=20, mode="image", filters=blue).hits}
    assert first < after  # the cached rowids of the old colours were not used


def test_the_example_id_the_tui_shows_is_a_product_more_like_this_finds_neighbours_of(service):
    example = service.stats()["example_id"]
    assert example == "1"  # tiny_catalog's first product with a picture
    assert service.more_like_this(example, k=3).hits


def test_text_only_product_is_searchable(service):
    hits = service.search("scarf", k=3, mode="lexical").hits
    assert hits[0].id == "99" and hits[0].image_status == "image_missing"


def test_bad_queries_are_clear_errors(service, tmp_path):
    with pytest.raises(QueryError, match="empty"):
        service.search("   ")
    with pytest.raises(QueryError):
        service.search_image(tmp_path / "nope.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not an image at all" * 20)
    with pytest.raises(QueryError):
        service.search_image(tmp_path / "bad.jpg")
    with pytest.raises(QueryError):
        service.more_like_this("no-such-id")
    with pytest.raises(QueryError):
        service.search("x", mode="fused-nonsense")


def test_another_model_is_refused(tiny_catalog, fake_settings):
    from dataclasses import replace

    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    with pytest.raises(IndexMismatchError, match="built with model"):
        SearchService.open(replace(fake_settings, model="openclip:ViT-B-32/openai"))
    with pytest.raises(IndexMismatchError, match="fingerprint"):
        SearchService.open(fake_settings, encoder=FakeEncoder(dim=32, seed=5))


def test_facets_count_values(service):
    facets = service.facets()
    assert ("Red", 4) in facets["colour"]
    assert facets["price"] == (5.0, 120.0)


def test_rrf_rewards_agreement():
    fused = rrf_fuse({"a": [(1, 0.9), (2, 0.8)], "b": [(2, 5.0), (3, 4.0)]}, k=3)
    assert fused[0][0] == 2 and fused[0][2] == {"a": 0.8, "b": 5.0}


def test_query_threads_follow_the_load(monkeypatch):
    from mmtui.query.service import query_thread_count

    monkeypatch.delenv("MMTUI_THREADS", raising=False)
    assert query_thread_count(load=0.3, cores=2) == 2  # idle: two threads encode a query faster
    assert query_thread_count(load=1.5, cores=2) == 1  # busy cores: threads would wait on each other
    assert query_thread_count(load=0.0, cores=1) == 1
    monkeypatch.setenv("MMTUI_THREADS", "3")
    assert query_thread_count(load=5.0, cores=2) == 3


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads /proc/stat")
class SizedFake(FakeEncoder):
    """The fake model with a 32 px input side; remembers the size of every image it was given."""

    image_size = 32

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def encode_images(self, images):
        self.sizes += [img.size for img in images]
        return super().encode_images(images)


def test_build_and_an_image_query_decode_a_large_jpeg_alike(tiny_catalog, fake_settings):
    from PIL import Image

    photo = Image.new("RGB", (640, 480), (250, 250, 250))
    photo.paste(Image.new("RGB", (300, 200), (200, 30, 30)), (100, 120))
    photo.save(tiny_catalog / "img" / "big.jpg", quality=92)
    with open(tiny_catalog / "products.csv", "a") as f:
        f.write("50,Large red photo,Apparel > Shirts,Red,Men,20,img/big.jpg\n")
    built = SizedFake()
    build_index(fake_settings, tiny_catalog, encoder=built)
    assert (80, 60) in built.sizes  # decoded at 1/8 scale: still at least 32 px on both sides
    queried = SizedFake()
    result = SearchService.open(fake_settings, encoder=queried).search_image(tiny_catalog / "img" / "big.jpg", k=1)
    assert queried.sizes == [(80, 60)] and result.hits[0].id == "50" and result.hits[0].score > 0.9999


def test_the_understood_kind_comes_first_and_price_phrases_filter(service):
    result = service.search("shirt in blue", k=4)
    assert result.understood.best("kind") == "Shirt" and result.understood.best("colour") == "Blue"
    assert result.hits[0].title == "Blue Shirt for men"
    assert all(h.category == "Apparel > Shirt" for h in result.hits[:4])  # every shirt before any blue non-shirt
    assert result.to_json()["understood"]["label"] == "kind: Shirt · colour: Blue"
    cheap = service.search("shirt under 50", k=10)
    assert cheap.understood.price == (None, 50.0) and cheap.hits and all(h.price <= 50 for h in cheap.hits)
    dropped = service.search("shirt in blue", k=4, drop=("kind",))
    assert "kind" not in dropped.understood.parts and dropped.hits[0].colour == "Blue"


def test_a_query_naming_only_a_person_ranks_that_persons_products_first(service):
    understood = service.search("for men", k=6)
    assert "kind" not in understood.understood.parts and understood.understood.parts["person"] == {"Men": 1.0}
    genders = [h.gender for h in understood.hits]
    firsts = [g for g in genders if g]
    assert firsts and all(g in ("Men", "Unisex") for g in firsts[:2])  # "gift for her" puts no men's set first
    plain = service.search("zzqx", k=6)  # a query naming nothing ranks as hybrid search ranks it
    assert [h.id for h in plain.hits] == [h.id for h in service.search("zzqx", k=6, understand=False).hits]


def test_learned_understanding_weights_are_saved_and_used(service):
    import json

    from mmtui.query.understanding.rank import ranking_weights
    from mmtui.train.weights.understanding import learn_understanding

    fit = learn_understanding(service, limit=50)
    assert fit.weights["kind"] >= 2 * fit.weights["colour"] and fit.weights["person"] >= fit.weights["colour"]
    saved = json.loads(service.store.get_meta("understanding"))
    assert saved["params"]["weights"] == fit.weights
    assert ranking_weights(service.understanding.state().params) == {**fit.weights}
    assert service.search("shirt in blue", k=3).hits[0].title == "Blue Shirt for men"


def test_learning_writes_down_every_query_it_used(service, fake_settings):
    import json

    from mmtui.catalog.phrasings import HELDOUT_PERSON
    from mmtui.train.weights.understanding import learn_understanding

    fit = learn_understanding(service, limit=50)
    path = fake_settings.reports_dir / "understanding-queries.jsonl"
    assert fit.notes == [f"queries used: {path}"]
    used = [json.loads(line) for line in path.read_text().splitlines()]
    assert used and {u["split"] for u in used} <= {"train", "val"}
    held_words = {w for words in HELDOUT_PERSON.values() for w in words}
    assert not any(set(u["query"].split()) & held_words for u in used if u["set"] == "shopper")


def test_signals_searched_side_by_side_give_the_same_results(service, monkeypatch):
    """A large catalog searches lexical, the query's encoding and the vector indexes on threads at once
    (SearchService._side_by_side); the hits, scores and signals are those of one-after-another."""
    import mmtui.query.service as service_module

    queries = ["red shirt", "blue jeans for women", "shoes", "zzz nothing"]
    before = [service.search(q, k=5, mode="hybrid") for q in queries]
    assert service._side_by_side(["lexical", "image", "text"], service.indexes) is None  # a tiny catalog
    monkeypatch.setattr(service_module, "SIDE_BY_SIDE_FROM", 1)
    monkeypatch.setattr(service_module, "query_thread_count", lambda: 2)
    service._query_cache.clear()
    assert service._side_by_side(["lexical", "image", "text"], service.indexes) is not None
    assert service._side_by_side(["image"], service.indexes) is None  # one signal: nothing to overlap
    after = [service.search(q, k=5, mode="hybrid") for q in queries]
    for a, b in zip(before, after):
        assert [(h.id, h.score, h.signals) for h in a.hits] == [(h.id, h.score, h.signals) for h in b.hits]
    monkeypatch.setattr(service_module, "query_thread_count", lambda: 1)  # busy cores: one after another
    assert service._side_by_side(["lexical", "image", "text"], service.indexes) is None
    service.close()
    assert service._pool is not None and service._pool._shutdown
