"""The usearch store (float16 graph opened memory-mapped) behind VectorIndex: saved and opened, searched (plain,
filtered, vector_of), updated in place, damaged files found, and chosen by size or by the setting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmtui.config import Settings
from mmtui.errors import ConfigError
from mmtui.index.ann import USEARCH_FROM, VectorIndex, build_digest, choose_store
from mmtui.index.generations import IndexDamagedError, NewGeneration, current

DIM = 16


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    centres = rng.standard_normal((40, DIM))
    return _unit(centres[rng.integers(40, size=n)] + 0.35 * rng.standard_normal((n, DIM)))


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(3)
    labels = np.arange(1, 2001, dtype=np.int64) * 2
    vectors = _vectors(rng, len(labels))
    index = VectorIndex.build("text", "m", labels, vectors, store="usearch")
    index.save(tmp_path)
    return tmp_path, labels, vectors, rng


def _recall(index: VectorIndex, labels, vectors, queries, k: int = 10) -> float:
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :k]
    return float(np.mean([len(set(index.search(q, k)[0].tolist()) & set(labels[e].tolist())) / k
                          for q, e in zip(queries, exact)]))


def test_a_saved_usearch_index_opens_memory_mapped_and_finds_what_exact_search_finds(saved):
    directory, labels, vectors, rng = saved
    assert sorted(p.name for p in directory.iterdir()) == ["text.labels.npy", "text.manifest.json",
                                                          "text.usearch", "text.vectors.f16.npy"]
    index = VectorIndex.load(directory, "text", "m")
    assert index.manifest.store == "usearch" and len(index) == len(labels)
    assert index.vectors.dtype == np.float16 and not index.vectors.flags.owndata  # mapped, not read
    queries = _vectors(rng, 30)
    assert _recall(index, labels, vectors, queries) >= 0.95
    found, scores = index.search(queries[0], 10)
    assert np.all(np.diff(scores) <= 1e-6)  # best first
    np.testing.assert_allclose(scores, vectors[np.searchsorted(labels, found)] @ queries[0], atol=3e-3)
    np.testing.assert_allclose(index.vector_of(int(labels[7])), vectors[7], atol=1e-3)
    assert index.vector_of(3) is None


@pytest.mark.parametrize("share", [0.01, 0.5])
def test_a_filtered_usearch_search_returns_only_allowed_labels(saved, share):
    directory, labels, vectors, rng = saved
    index = VectorIndex.load(directory, "text", "m")
    allowed = np.sort(rng.choice(labels, int(len(labels) * share), replace=False))
    query = _vectors(rng, 1)[0]
    found, _ = index.search(query, 10, allowed)
    assert len(found) == 10 and set(found.tolist()) <= set(allowed.tolist())
    at = np.searchsorted(labels, allowed)
    best = allowed[np.argsort(-(vectors[at] @ query))[:10]]
    assert len(set(found.tolist()) & set(best.tolist())) >= 9


def test_a_usearch_index_is_updated_in_place_like_a_full_build(saved):
    directory, labels, vectors, rng = saved
    keep = np.ones(len(labels), bool)
    keep[rng.choice(len(labels), 30, replace=False)] = False  # removed
    new_labels = np.concatenate([labels[keep], np.arange(10_001, 10_061, dtype=np.int64)])
    new_vectors = np.concatenate([vectors[keep], _vectors(rng, 60)])
    new_vectors[5] = _vectors(rng, 1)[0]  # changed
    updated = VectorIndex.updated(directory, "text", "m", new_labels, new_vectors, store="usearch")
    assert updated is not None and updated.manifest.extra["update"] == {"added": 60, "changed": 1, "removed": 30}
    assert updated.manifest.extra["digest"] == build_digest(new_labels, new_vectors, "usearch")
    updated.save(directory / "next")
    index = VectorIndex.load(directory / "next", "text", "m")
    assert len(index) == len(new_labels)
    assert _recall(index, new_labels, new_vectors, _vectors(rng, 30)) >= 0.95
    assert set(index.search(new_vectors[5], 1)[0].tolist()) == {int(new_labels[5])}
    gone = set(labels[~keep].tolist())
    assert not any(gone & set(index.search(q, 50)[0].tolist()) for q in vectors[~keep][:10])
    # the added vectors get the graph's own ef_construction (a loaded usearch graph would add at its default 128)
    assert updated.graph.index.expansion_add == updated.manifest.ef_construction == 200
    # a store other than the saved one is a full build, never a mixed index
    assert VectorIndex.updated(directory, "text", "m", new_labels, new_vectors, store="hnswlib") is None


def test_a_damaged_usearch_file_is_found_by_the_generation_and_not_opened(saved):
    directory, labels, vectors, _ = saved
    ann = directory / "ann"
    gen = NewGeneration(ann, None)
    VectorIndex.build("image", "m", labels, vectors, store="usearch").save(gen.dir)
    gen.commit()
    committed = current(ann)
    assert committed.check() == {}
    graph = committed.dir / "image.usearch"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    assert committed.check() == {"image.usearch": "checksum mismatch"}  # at every open, not only in full
    assert set(committed.damaged_indexes()) == {"image"}
    graph.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(IndexDamagedError, match="image.usearch"):
        VectorIndex.load(committed.dir, "image", "m")


def test_the_store_is_chosen_by_size_unless_the_setting_says(monkeypatch):
    assert choose_store(USEARCH_FROM - 1) == "hnswlib" and choose_store(USEARCH_FROM) == "usearch"
    assert choose_store(10, "usearch") == "usearch" and choose_store(10 ** 7, "hnswlib") == "hnswlib"
    monkeypatch.setenv("MMTUI_VECTOR_STORE", "usearch")
    assert Settings.load(data_dir="/tmp/x").vector_store == "usearch"
    monkeypatch.setenv("MMTUI_VECTOR_STORE", "faiss")
    with pytest.raises(ConfigError, match="MMTUI_VECTOR_STORE"):
        Settings.load(data_dir="/tmp/x")


def test_an_hnswlib_manifest_without_a_store_still_loads(tmp_path):
    rng = np.random.default_rng(4)
    labels, vectors = np.arange(600, dtype=np.int64), _vectors(rng, 600)
    VectorIndex.build("image", "m", labels, vectors).save(tmp_path)
    path = tmp_path / "image.manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["store"]  # as written before the usearch store existed
    path.write_text(json.dumps(manifest))
    index = VectorIndex.load(tmp_path, "image", "m")
    assert index.manifest.store == "hnswlib" and index.vectors.dtype == np.float32
