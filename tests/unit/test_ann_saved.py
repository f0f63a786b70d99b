"""VectorIndex.saved_if_same: an unchanged rebuild can reuse the saved index, a changed one cannot."""

from __future__ import annotations

import numpy as np

from mmtui.index.ann import VectorIndex


def _vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_same_inputs_reuse_the_saved_index_and_any_change_does_not(tmp_path):
    vectors, labels = _vectors(600), np.arange(600)
    VectorIndex.build("image", "m1", labels, vectors).save(tmp_path)
    assert VectorIndex.saved_if_same(tmp_path, "image", "m1", labels, vectors) is not None
    changed = vectors.copy()
    changed[3] = _vectors(1, seed=1)[0]
    assert VectorIndex.saved_if_same(tmp_path, "image", "m1", labels, changed) is None
    assert VectorIndex.saved_if_same(tmp_path, "image", "m2", labels, vectors) is None  # another model
    assert VectorIndex.saved_if_same(tmp_path, "image", "m1", labels + 1, vectors) is None
    assert VectorIndex.saved_if_same(tmp_path, "image", "m1", labels, vectors, M=16) is None  # other parameters
    (tmp_path / "image.hnsw").unlink()
    assert VectorIndex.saved_if_same(tmp_path, "image", "m1", labels, vectors) is None  # incomplete on disk
    assert VectorIndex.saved_if_same(tmp_path, "text", "m1", labels, vectors) is None  # never saved
