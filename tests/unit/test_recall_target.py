"""reindex's self-check: a graph whose recall@10 at its ef is under RECALL_TARGET searches with a larger ef."""

from __future__ import annotations

import numpy as np

from mmtui.index.ann import VectorIndex
from mmtui.index.writer import RECALL_TARGET, _self_check


def _unit(rng, n, dim):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_graph_under_the_target_gets_the_ef_that_reaches_it_and_keeps_it(tmp_path):
    rng = np.random.default_rng(3)
    vectors = _unit(rng, 3000, 48)
    index = VectorIndex.build("image", "space", np.arange(1, 3001), vectors, M=8, ef_construction=16, ef=2)
    queries = _unit(rng, 100, 48)
    assert index.recall_check(queries) < RECALL_TARGET  # a poor graph at ef=2: the case being tested

    recall = _self_check(index, queries)
    assert recall >= RECALL_TARGET
    assert index.manifest.ef > 2 and index.manifest.recall_at_10 == round(recall, 4)
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path, "image", "space")
    assert loaded.manifest.ef == index.manifest.ef
    assert loaded.recall_check(queries) >= RECALL_TARGET  # searches use the raised ef


def test_a_graph_at_the_target_keeps_its_ef():
    rng = np.random.default_rng(4)
    index = VectorIndex.build("text", "space", np.arange(1, 1001), _unit(rng, 1000, 16))
    recall = _self_check(index, _unit(rng, 50, 16))
    assert recall >= RECALL_TARGET and index.manifest.ef == 128
