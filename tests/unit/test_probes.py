"""The ANN self-check's query-like probes: made at build time from the catalog's own facets (TRAIN phrasings) or
title fragments, stored for the base model, and used by reindex's check on every graph; a graph checked before
them is re-checked once, its files carried over."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmtui.build.pipeline import build_index
from mmtui.catalog.phrasings import HELDOUT_PERSON
from mmtui.catalog.probes import probe_texts
from mmtui.config import Settings
from mmtui.encoders import FakeEncoder
from mmtui.index.ann import VectorIndex
from mmtui.index.generations import current
from mmtui.index.probes import load_probes, save_probes
from mmtui.index.writer import RECALL_TARGET, _self_check, reindex
from mmtui.store.db import Store

FP, DIM = "fake-base", 16


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_a_catalog_with_facets_gets_train_phrasings_and_title_fragments(tiny_catalog, fake_settings):
    encoder = FakeEncoder()
    build_index(fake_settings, tiny_catalog, encoder=encoder)
    store = Store.open(fake_settings.db_path)
    probes = load_probes(store, store.get_meta("base_fingerprint"))
    assert probes is not None and probes.model == encoder.fingerprint
    assert probes.vectors.shape == (len(probes.texts), encoder.dim)
    assert np.allclose(probes.vectors, encoder.encode_texts(probes.texts))  # raw text-tower vectors, as a query's
    kinds = {"shirts", "dresses", "sneakers", "scarves"}  # the fixture's kinds (Apparel > Shirts, ...)
    phrased = [t for t in probes.texts if set(t.split()) & kinds]
    assert phrased, probes.texts
    heldout_words = {w for words in HELDOUT_PERSON.values() for w in words}
    assert not any(set(t.split()) & heldout_words for t in probes.texts)  # never the measuring phrasings
    assert len(set(probes.texts)) == len(probes.texts)
    # a re-run keeps them (same model, same catalog): nothing encoded, not even the 200 short texts
    again = FakeEncoder()
    build_index(fake_settings, tiny_catalog, encoder=again)
    assert again.texts_encoded == 0 and load_probes(store, encoder.fingerprint).texts == probes.texts
    assert load_probes(store, "another-model") is None
    store.close()


def test_a_catalog_without_facets_gets_title_fragments(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    titles = [f"Alpha Bravo Charlie Delta Echo number {i} Foxtrot Golf" for i in range(60)]
    (folder / "products.csv").write_text("id,title\n" + "\n".join(f"{i},{t}" for i, t in enumerate(titles)) + "\n")
    settings = Settings(data_dir=tmp_path / "index", model="fake")
    build_index(settings, folder, encoder=FakeEncoder())
    store = Store.open(settings.db_path)
    probes = load_probes(store, store.get_meta("base_fingerprint"))
    assert probes is not None and len(probes.texts) >= 5
    vocabulary = "alpha bravo charlie delta echo number foxtrot golf"
    for text in probes.texts:
        assert 2 <= len(text.split()) <= 4 and text in vocabulary, text  # consecutive words, no numbers
    assert probe_texts(store) == probe_texts(store)  # deterministic
    store.close()


# -- the check on a graph, through reindex ---------------------------------------------------------------
def _put(store: Store, n: int, rng) -> None:
    with store.db.conn:
        store.upsert_products([{"id": f"p{i}", "title": f"item {i}", "text": f"item {i}", "text_sha": f"t{i}",
                                "image_sha": f"i{i}", "image_status": "ok"} for i in range(n)])
    rows = list(store.rowid_of([f"p{i}" for i in range(n)]).values())
    centres = rng.standard_normal((40, DIM))
    for kind, prefix in (("image", "i"), ("text", "t")):
        vectors = _unit(centres[rng.integers(40, size=n)] + 0.35 * rng.standard_normal((n, DIM)))
        store.put_vectors(FP, kind, rows, [f"{prefix}{i}" for i in range(n)], vectors)


@pytest.fixture
def data(tmp_path):
    """A data dir of 1500 products (graphs, not exact search) indexed before it had probes."""
    settings = Settings(data_dir=tmp_path / "index")
    store = Store.open(settings.db_path, create=True)
    rng = np.random.default_rng(7)
    _put(store, 1500, rng)
    store.set_meta("base_fingerprint", FP)
    store.set_meta("base_dim", str(DIM))
    reindex(settings, store=store)
    yield settings, store, rng
    store.close()


def _manifests(settings) -> dict[str, dict]:
    gen = current(settings.ann_dir)
    return {n: json.loads((gen.dir / f"{n}.manifest.json").read_text()) for n in ("image", "text", "fused")}


def test_without_probes_the_check_is_as_before(data):
    settings, _, _ = data
    for name, manifest in _manifests(settings).items():
        assert manifest["graph"] and manifest["extra"]["check"]["probes"] is None, name
        assert set(manifest["extra"]["check"]["recall"]) == {"products"}


def test_a_graph_checked_before_the_probes_is_rechecked_and_carried_over(data):
    settings, store, rng = data
    before = current(settings.ann_dir)
    old = _manifests(settings)
    probes = save_probes(store, FP, [f"probe {i}" for i in range(50)], rng.standard_normal((50, DIM)), 1500)
    events: list[str] = []
    results = reindex(settings, store=store, progress=lambda e: events.append(e.message))
    after = current(settings.ann_dir)
    manifests = _manifests(settings)
    for name in ("image", "text", "fused"):
        check = manifests[name]["extra"]["check"]
        assert check["probes"] == probes.digest and set(check["recall"]) == {"products", "probes"}, name
        assert manifests[name]["recall_at_10"] == min(check["recall"].values()) == results[name][0]
        assert manifests[name]["extra"]["digest"] == old[name]["extra"]["digest"]
        assert f"{name} index unchanged" in events  # not rebuilt, not updated
        for file in VectorIndex.files(name, True)[:-1]:  # carried over: the same files, linked
            assert (after.dir / file).stat().st_ino == (before.dir / file).stat().st_ino, file
    assert not after.check(full=True)  # the new manifests are recorded with their own checksums
    reindex(settings, store=store)  # checked with these probes already: nothing more to do
    assert _manifests(settings) == manifests


def test_the_harder_query_set_decides_the_ef():
    rng = np.random.default_rng(3)
    vectors = _unit(rng.standard_normal((3000, 48)))
    easy, hard = vectors[:100], _unit(rng.standard_normal((100, 48)))  # the graph's own vectors, random queries

    def chosen(sets) -> tuple[int, float]:
        index = VectorIndex.build("text", "space", np.arange(1, 3001), vectors, M=16, ef_construction=100, ef=2,
                                  threads=1)  # one thread: the same graph every run
        recall = _self_check(index, sets, "d")
        return index.manifest.ef, recall

    ef_easy, _ = chosen({"products": easy})
    ef_hard, _ = chosen({"probes": hard})
    ef_both, recall = chosen({"products": easy, "probes": hard})
    assert ef_hard > ef_easy  # the case being tested: random queries need a larger ef than stored vectors
    assert ef_both == ef_hard and recall >= RECALL_TARGET
