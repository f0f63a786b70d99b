"""Adding and removing products without a full rebuild: VectorIndex.updated (hnswlib add / mark-deleted) and
reindex's use of it give what a full build gives, never return removed products, and never touch the current
generation until the new one is complete."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmtui.index.ann import VectorIndex
from mmtui.config import Settings
from mmtui.index.generations import current
from mmtui.index.writer import reindex
from mmtui.index.lexical import LexicalIndex
from mmtui.store.db import Store

DIM = 16


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    centres = rng.standard_normal((40, DIM))
    return _unit(centres[rng.integers(40, size=n)] + 0.35 * rng.standard_normal((n, DIM)))


def _top(index: VectorIndex, queries: np.ndarray, k: int = 10) -> list[set[int]]:
    return [set(index.search(q, k)[0].tolist()) for q in queries]


def _overlap(a: list[set[int]], b: list[set[int]]) -> float:
    return float(np.mean([len(x & y) / max(1, len(x)) for x, y in zip(a, b)]))


@pytest.fixture
def base(tmp_path):
    """A saved 3000-vector graph (labels 3, 6, ... as rowids with gaps) and its inputs."""
    rng = np.random.default_rng(1)
    labels = np.arange(1, 3001, dtype=np.int64) * 3
    vectors = _vectors(rng, len(labels))
    VectorIndex.build("image", "m", labels, vectors).save(tmp_path / "g1")
    return tmp_path, labels, vectors, rng


def _change(labels, vectors, rng, removed: int, changed: int, added: int, first_new: int = 100_000):
    """New inputs (sorted by label, as the store gives them): `removed` labels dropped, `changed` given new
    vectors, `added` new labels; returns (labels, vectors, removed labels, changed labels)."""
    pick = rng.permutation(len(labels))
    gone, moved = labels[pick[:removed]], labels[pick[removed:removed + changed]]
    keep = ~np.isin(labels, gone)
    new_labels = np.concatenate([labels[keep], np.arange(first_new, first_new + added, dtype=np.int64)])
    new_vectors = np.concatenate([vectors[keep], _vectors(rng, added)])
    at = np.isin(new_labels, moved)
    new_vectors[at] = _vectors(rng, int(at.sum()))
    order = np.argsort(new_labels)
    return new_labels[order], new_vectors[order], gone, moved


def test_an_update_gives_the_results_of_a_full_build(base):
    root, labels, vectors, rng = base
    new_labels, new_vectors, gone, moved = _change(labels, vectors, rng, removed=60, changed=40, added=100)
    index = VectorIndex.updated(root / "g1", "image", "m", new_labels, new_vectors)
    assert index is not None
    full = VectorIndex.build("image", "m", new_labels, new_vectors)
    assert index.manifest.extra["digest"] == full.manifest.extra["digest"]  # the next reindex sees it as current
    assert index.manifest.extra["update"] == {"added": 100, "changed": 40, "removed": 60}
    assert index.manifest.extra["deleted_slots"] == 0  # the 60 removed slots took new vectors
    index.save(root / "g2")
    loaded = VectorIndex.load(root / "g2", "image", "m")
    queries = np.concatenate([new_vectors[np.isin(new_labels, moved)], new_vectors[-100:],
                              _vectors(rng, 100)])
    assert loaded.recall_check(queries) >= 0.97
    assert _overlap(_top(loaded, queries), _top(full, queries)) >= 0.95
    # removed products never come back, changed ones are found by their new vector only
    found = set().union(*_top(loaded, vectors[np.isin(labels, gone)], k=50))
    assert not found & set(gone.tolist())
    for label in moved[:20]:
        old_vec = vectors[labels == label][0]
        new_vec = new_vectors[new_labels == label][0]
        assert loaded.search(new_vec, 1)[0][0] == label
        hit_labels, scores = loaded.search(old_vec, 10)
        assert label not in hit_labels or scores[list(hit_labels).index(label)] < 0.999


def test_deleted_slots_are_counted_reused_and_revived(base):
    root, labels, vectors, rng = base
    l2, v2, gone, _ = _change(labels, vectors, rng, removed=100, changed=0, added=20)
    index = VectorIndex.updated(root / "g1", "image", "m", l2, v2)
    assert index.manifest.extra["deleted_slots"] == 80 and index.graph.get_current_count() == len(l2) + 80
    index.save(root / "g2")
    VectorIndex.load(root / "g2", "image", "m")  # the load-time count check allows for the deleted slots
    # some removed products come back (same rowids, new vectors) and 5 are new
    back = gone[:10]
    back_vectors = _vectors(rng, 10)
    l3 = np.concatenate([l2, back, np.arange(200_000, 200_005)])
    v3 = np.concatenate([v2, back_vectors, _vectors(rng, 5)])
    order = np.argsort(l3)
    l3, v3 = l3[order], v3[order]
    index = VectorIndex.updated(root / "g2", "image", "m", l3, v3)
    assert index.manifest.extra["deleted_slots"] == 65
    assert index.manifest.extra["update"] == {"added": 15, "changed": 0, "removed": 0}
    index.save(root / "g3")
    loaded = VectorIndex.load(root / "g3", "image", "m")
    for label, vec in zip(back, back_vectors):
        assert loaded.search(vec, 1)[0][0] == label
    in_graph = set(loaded.graph.get_ids_list())  # live labels and the labels of deleted slots, once each
    assert len(in_graph) == len(l3) + 65 and set(l3.tolist()) <= in_graph and in_graph - set(l3.tolist()) <= set(
        gone[10:].tolist())
    # and an update of that is consistent again: the revived labels can be removed
    keep = ~np.isin(l3, back[:3])
    index = VectorIndex.updated(root / "g3", "image", "m", l3[keep], v3[keep])
    assert index is not None and index.manifest.extra["deleted_slots"] == 68
    assert loaded.recall_check(v3[:200]) >= 0.97


def test_a_large_change_or_too_many_deleted_slots_means_a_full_build(base):
    root, labels, vectors, rng = base
    l2, v2, _, _ = _change(labels, vectors, rng, removed=0, changed=700, added=0)  # 23%
    assert VectorIndex.updated(root / "g1", "image", "m", l2, v2) is None
    l2, v2, _, _ = _change(labels, vectors, rng, removed=400, changed=0, added=0)  # 13% of the slots deleted
    assert VectorIndex.updated(root / "g1", "image", "m", l2, v2) is None
    assert VectorIndex.updated(root / "g1", "image", "another model", labels, vectors) is None
    assert VectorIndex.updated(root / "g1", "image", "m", labels, vectors, M=16) is None


def test_a_search_ef_raised_after_the_build_is_kept(base):
    root, labels, vectors, rng = base
    path = root / "g1" / "image.manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "ef": 300}))
    l2, v2, _, _ = _change(labels, vectors, rng, removed=10, changed=0, added=10)
    index = VectorIndex.updated(root / "g1", "image", "m", l2, v2)
    assert index.manifest.ef == 300 and index.graph.ef == 300
    assert index.manifest.extra["digest"] == VectorIndex.build("image", "m", l2, v2).manifest.extra["digest"]


# -- through reindex, on a data directory -------------------------------------------------------------
FP = "fake-base"


def _products(ids: list[int], version: int = 0) -> list[dict]:
    words = ["red", "blue", "shirt", "dress", "shoe", "cotton", "linen", "summer", "winter", "kids"]
    return [{"id": f"p{i}", "title": f"{words[i % 10]} {words[(i * 3 + version) % 10]} item {i}",
             "text": f"{words[(i * 7) % 10]} {words[i % 10]} product number {i} v{version}",
             "text_sha": f"t{i}.{version}", "image_sha": f"i{i}.{version}", "image_status": "ok"} for i in ids]


def _put(store: Store, ids: list[int], version: int, rng) -> None:
    with store.db.conn:
        store.upsert_products(_products(ids, version))
    rowids = store.rowid_of([f"p{i}" for i in ids])
    rows = [rowids[f"p{i}"] for i in ids]
    for kind, prefix in (("image", "i"), ("text", "t")):
        store.put_vectors(FP, kind, rows, [f"{prefix}{i}.{version}" for i in ids], _vectors(rng, len(ids)))


@pytest.fixture
def data(tmp_path):
    settings = Settings(data_dir=tmp_path / "index")
    store = Store.open(settings.db_path, create=True)
    rng = np.random.default_rng(5)
    _put(store, list(range(1500)), 0, rng)
    store.set_meta("base_fingerprint", FP)
    store.set_meta("base_dim", str(DIM))
    reindex(settings, store=store)
    yield settings, store, rng
    store.close()


def _manifests(settings) -> dict[str, dict]:
    gen = current(settings.ann_dir)
    return {n: json.loads((gen.dir / f"{n}.manifest.json").read_text()) for n in ("image", "text", "fused")}


def _edit(store: Store, rng, added: int = 40, changed: int = 10, removed: int = 12) -> None:
    _put(store, list(range(5000, 5000 + added)), 0, rng)
    _put(store, list(range(100, 100 + changed)), 1, rng)  # new title, text and image: new vectors
    with store.db.conn:
        store.delete_products([f"p{i}" for i in range(900, 900 + removed)])


def test_reindex_updates_and_a_rerun_changes_nothing(data):
    settings, store, rng = data
    _edit(store, rng)
    events = []
    results = reindex(settings, store=store, progress=lambda e: events.append(e.message))
    manifests = _manifests(settings)
    for name in ("image", "text", "fused"):
        assert manifests[name]["extra"]["update"] == {"added": 40, "changed": 10, "removed": 12}, name
        assert results[name][0] >= 0.97 and results[name][1] == "hnsw"
    assert "lexical index updated" in events
    gen = current(settings.ann_dir)
    # the fused index is made from the vectors reindex already read: what fusion.fused_vectors gives
    from mmtui.index.fused import fused_vectors
    from mmtui.encoders.projection import IdentityProjector

    fused = VectorIndex.load(gen.dir, "fused", FP)
    ids, expected = fused_vectors(store, IdentityProjector(), FP)
    assert np.array_equal(fused.labels, ids) and np.array_equal(fused.vectors, expected)
    index = LexicalIndex.load(gen.dir, full=True)
    full = LexicalIndex.build(store.db.conn)
    assert index.term_list == full.term_list and np.array_equal(index.factors, full.factors)
    # a full build of the same inputs records the same digest, and a re-run carries everything over
    rowids, vectors = store.vectors(FP, "text")
    assert VectorIndex.build("text", FP, rowids, _unit(vectors)).manifest.extra["digest"] == \
        manifests["text"]["extra"]["digest"]
    events.clear()
    reindex(settings, store=store, progress=lambda e: events.append(e.message))
    assert {"image index unchanged", "text index unchanged", "fused index unchanged",
            "lexical index unchanged"} <= set(events)
    assert _manifests(settings) == manifests


def test_a_large_change_is_a_full_build(data):
    settings, store, rng = data
    _edit(store, rng, added=400)
    reindex(settings, store=store)
    assert all("update" not in m["extra"] for m in _manifests(settings).values())


def test_a_failed_update_leaves_the_current_generation(data, monkeypatch):
    settings, store, rng = data
    before = current(settings.ann_dir)
    _edit(store, rng)

    def fail(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr("mmtui.index.writer._build_fused_index", fail)  # after the image and text updates
    with pytest.raises(RuntimeError):
        reindex(settings, store=store)
    after = current(settings.ann_dir)
    assert after.name == before.name and not after.check(full=True)
    assert sorted(p.name for p in settings.ann_dir.iterdir() if p.name.startswith("gen-")) == [before.name]
    assert VectorIndex.load(after.dir, "image", FP).manifest.count == 1500
    monkeypatch.undo()
    reindex(settings, store=store)
    assert _manifests(settings)["image"]["count"] == 1500 + 40 - 12


def test_a_saved_graph_under_the_recall_target_gets_a_larger_ef_without_a_rebuild(data, monkeypatch):
    """An index saved before the build tuned ef (or under a stricter target) is tuned at the next reindex: its
    graph, vectors and labels carried over as they are, only a new manifest written."""
    import mmtui.index.writer as indexing

    settings, store, rng = data
    before = current(settings.ann_dir)
    old = _manifests(settings)["image"]
    monkeypatch.setattr(indexing, "RECALL_TARGET", 1.01)  # unreachable: tuned up to MAX_EF
    monkeypatch.setattr(indexing, "MAX_EF", old["ef"] * 2)
    reindex(settings, store=store)
    after = current(settings.ann_dir)
    manifest = _manifests(settings)["image"]
    assert manifest["ef"] == old["ef"] * 2 and manifest["extra"]["digest"] == old["extra"]["digest"]
    for name in ("image.hnsw", "image.vectors.npy", "image.labels.npy"):  # carried over, not rebuilt
        assert (after.dir / name).stat().st_ino == (before.dir / name).stat().st_ino
    assert json.loads((before.dir / "image.manifest.json").read_text())["ef"] == old["ef"]  # the old one untouched
    assert not after.check(full=True)  # the new manifest is recorded with its own checksum
    assert VectorIndex.load(after.dir, "image", old["model"]).graph.ef == old["ef"] * 2

    reindex(settings, store=store)  # at MAX_EF already: nothing more to do, everything carried over
    assert _manifests(settings)["image"]["ef"] == old["ef"] * 2
