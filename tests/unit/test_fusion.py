"""Fused product vectors: the fusion rule, the weight learned on validation, the fused index and mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmtui.build.pipeline import build_index
from mmtui.encoders import FakeEncoder
from mmtui.errors import IndexMismatchError
from mmtui.index.fused import DEFAULT_WEIGHT, fuse, fusion_weight
from mmtui.metrics import ndcg_at_k, recall_at_k
from mmtui.query.service import SearchService
from mmtui.store.db import Store
from mmtui.train.weights.fusion import QuerySet, fit_fusion_weight, learn_fusion_weight, matrix_metrics


def _norm(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_fuse_mixes_and_keeps_text_for_products_without_image():
    text = _norm(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    image = np.array([[0.0, 1.0], [0.0, 0.0]], np.float32)  # the second product has no image
    out = fuse(text, image, 0.5)
    assert np.allclose(out[0], _norm(np.array([[0.5, 0.5]]))[0], atol=1e-6)
    assert np.allclose(out[1], text[1])
    assert np.allclose(fuse(text, image, 1.0)[0], image[0])


def test_matrix_metrics_agree_with_the_reference_metrics():
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((6, 40)).astype(np.float32)
    relevant = rng.random((6, 40)) < 0.15
    relevant[:, 0] = True
    got = matrix_metrics(scores, relevant)
    ranked = [[str(j) for j in np.argsort(-row, kind="stable")] for row in scores]
    rel = [{str(j): 1 for j in np.flatnonzero(r)} for r in relevant]
    assert got["ndcg@10"] == pytest.approx(np.mean([ndcg_at_k(a, b, 10) for a, b in zip(ranked, rel)]), abs=1e-6)
    assert got["recall@10"] == pytest.approx(np.mean([recall_at_k(a, b, 10) for a, b in zip(ranked, rel)]), abs=1e-6)


def test_learned_weight_beats_the_fixed_weight_when_images_carry_the_signal():
    rng = np.random.default_rng(0)
    n, d = 300, 24
    truth = _norm(rng.standard_normal((n, d)))
    image = _norm(truth + 0.3 * rng.standard_normal((n, d)))  # images show the product
    text = _norm(0.3 * truth + rng.standard_normal((n, d)))  # texts mostly noise (sparse text)
    queries = QuerySet("q", _norm(truth + 0.3 * rng.standard_normal((n, d))).astype(np.float32), np.eye(n, dtype=bool))
    fit = fit_fusion_weight(text, image, [queries])
    assert fit.image_weight > DEFAULT_WEIGHT
    assert fit.score > fit.default_score + 0.05
    assert fit.by_weight[f"{fit.image_weight:.2f}"] == pytest.approx(fit.score, abs=1e-6)


def test_learn_on_validation_saves_the_weight(paired_store):
    settings, store = paired_store  # product text = its title: on title queries text alone is best
    fit = learn_fusion_weight(settings, store, split="val")
    assert fit.score > fit.default_score
    assert fit.image_weight < DEFAULT_WEIGHT
    assert fit.n_queries["title"] == sum(1 for s in store.splits().values() if s == "val")
    assert fusion_weight(store) == fit.image_weight
    assert json.loads(store.get_meta("fusion"))["split"] == "val"


def test_fused_index_and_mode(tiny_catalog, fake_settings):
    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    service = SearchService.open(fake_settings, encoder=FakeEncoder())
    assert "fused" in service.indexes and len(service.indexes["fused"]) == 13  # the scarf has text only
    store = service.store
    scarf = store.rowid_of(["99"])["99"]
    base = store.get_meta("base_fingerprint")
    _, text = store.vectors(base, "text", [scarf])
    assert np.allclose(service.indexes["fused"].vector_of(scarf), text[0], atol=1e-6)
    hits = service.search("red shirt", k=5, mode="fused").hits
    assert len(hits) == 5 and all(h.shares == {"fused": 1.0} for h in hits)


def test_fused_mode_without_a_fused_index_is_a_clear_error(tiny_catalog, fake_settings):
    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    _as_written_before_fused_indexes(fake_settings.ann_dir)
    service = SearchService.open(fake_settings, encoder=FakeEncoder())
    assert service.search("red shirt", mode="hybrid").hits  # the other modes still work
    with pytest.raises(IndexMismatchError, match="fused"):
        service.search("red shirt", mode="fused")


def test_reindex_uses_the_learned_weight(tiny_catalog, fake_settings):
    from mmtui.build.pipeline import reindex

    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    store = Store.open(fake_settings.db_path)
    store.set_meta("fusion", json.dumps({"image_weight": 1.0}))
    reindex(fake_settings, store=store)
    service = SearchService.open(fake_settings, encoder=FakeEncoder())
    rowid = store.rowid_of(["1"])["1"]
    assert np.allclose(service.indexes["fused"].vector_of(rowid), service.indexes["image"].vector_of(rowid), atol=1e-6)


def _as_written_before_fused_indexes(ann_dir) -> None:
    """The ann/ of an older version: its files directly in ann/ (no generations), and no fused index."""
    import shutil

    from mmtui.index.generations import current

    gen = current(ann_dir)
    for path in gen.dir.iterdir():
        if not path.name.startswith("fused."):
            shutil.copy2(path, ann_dir / path.name)
    (ann_dir / "CURRENT.json").unlink()
    shutil.rmtree(gen.dir)
