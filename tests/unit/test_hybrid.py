"""Hybrid ranking: weighted RRF with per-signal shares, weights learned on validation, filters in eval."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmtui.build.pipeline import build_index
from mmtui.encoders import FakeEncoder
from mmtui.errors import QueryError
from mmtui.evaluation.evaluate import EvalQuery, run_eval
from mmtui.store.filters import parse_where
from mmtui.query.hybrid import default_weights, fuse_ranked, hybrid_weights
from mmtui.query.service import SearchService
from mmtui.train.weights.hybrid import RankedQuery, fit_hybrid_weights, learn_hybrid_weights, validation_queries


def rrf_fuse(ranked, k):
    """Plain reciprocal rank fusion, straight from its definition: the reference for equal weights."""
    fused = {}
    for hits in ranked.values():
        for rank, (rowid, _) in enumerate(hits, start=1):
            fused[rowid] = fused.get(rowid, 0.0) + 1.0 / (60 + rank)
    return [(rowid, score, None) for rowid, score in sorted(fused.items(), key=lambda item: -item[1])[:k]]


@pytest.fixture
def service(tiny_catalog, fake_settings):
    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    return SearchService.open(fake_settings, encoder=FakeEncoder())


def test_equal_weights_match_plain_rrf_and_shares_add_up():
    ranked = {"lexical": [(1, 9.0), (2, 5.0)], "image": [(2, 0.4), (3, 0.3), (1, 0.2)], "text": [(3, 0.9)]}
    fused = fuse_ranked(ranked, 10)
    assert [(r, round(s, 9)) for r, s, _ in rrf_fuse(ranked, 10)] == [(r, round(s, 9)) for r, s, _, _ in fused]
    for rowid, score, signals, shares in fused:
        assert sum(shares.values()) == pytest.approx(1.0, abs=1e-9)
        assert set(shares) == set(signals)
    first = fused[0]
    assert first[0] == 2 and first[3]["lexical"] == pytest.approx((1 / 62) / (1 / 62 + 1 / 61), abs=1e-4)


def test_a_zero_weight_signal_adds_no_candidates():
    ranked = {"lexical": [(1, 9.0)], "image": [(2, 0.4), (1, 0.2)]}
    fused = fuse_ranked(ranked, 10, {"lexical": 1.0, "image": 0.0})
    assert [r for r, *_ in fused] == [1]
    assert fused[0][3] == {"lexical": 1.0} and fused[0][2] == {"lexical": 9.0, "image": 0.2}


def test_hybrid_hits_carry_shares_that_add_up(service):
    result = service.search("red shirt", k=8, mode="hybrid")
    for hit in result.hits:
        assert sum(hit.shares.values()) == pytest.approx(1.0, abs=1e-9)
        assert set(hit.shares) <= set(hit.signals)
    assert "shares" in result.to_json()["hits"][0]


def _queries(n: int, good: str, seed: int = 0) -> list[RankedQuery]:
    """Queries whose relevant item is first in signal `good`, while the other signals agree on the same wrong
    items and rank the relevant one low (so plain RRF is misled)."""
    rng = np.random.default_rng(seed)
    out = []
    for q in range(n):
        target = 1000 + q
        wrong = [int(x) for x in rng.choice(900, 30, replace=False)]
        ranked = {}
        for name in ("lexical", "image", "text", "fused"):
            if name == good:
                ranked[name] = [(target, 1.0)] + [(o, 0.5) for o in rng.permutation(wrong).tolist()]
            else:
                ranked[name] = [(o, 0.5) for o in wrong[:25]] + [(target, 0.1)]
        out.append(RankedQuery("title", f"q{q}", ranked, frozenset({target})))
    return out


def test_learned_weights_favour_the_informative_signal():
    fit = fit_hybrid_weights(_queries(40, "image"))
    assert max(fit.weights, key=fit.weights.get) == "image"
    assert fit.score > fit.equal_score + 0.1
    assert fit.single["image"] == pytest.approx(1.0)


def test_learning_keeps_equal_weights_when_nothing_is_better():
    queries = [RankedQuery("title", "q", {s: [(1, 1.0), (2, 0.5)] for s in ("lexical", "image", "text")},
                           frozenset({1}))]
    fit = fit_hybrid_weights(queries)
    assert fit.weights == {"lexical": 1.0, "image": 1.0, "text": 1.0} and fit.score == fit.equal_score


def test_learn_saves_weights_the_service_then_uses(service):
    assert hybrid_weights(service.store) == (default_weights(), False)
    queries = validation_queries(service, "train")
    assert {q.set_name for q in queries} == {"title", "attribute", "category"}
    fit = learn_hybrid_weights(service, split="train")
    weights, learned = hybrid_weights(service.store)
    assert learned and weights == fit.weights
    assert json.loads(service.store.get_meta("hybrid"))["split"] == "train"
    hits = service.search("red shirt", k=5, mode="hybrid").hits
    used = {s for s, w in fit.weights.items() if w > 0}
    # "kind": the understood kind's own candidate list ("red shirt" names the kind Shirt), mmtui.query.understanding.rank
    assert hits and all(set(h.shares) <= used | {"kind"} for h in hits)


def test_where_filters_flow_through_eval(service):
    queries = [EvalQuery(relevant={"10": 1}, text="black shirt"), EvalQuery(relevant={"4": 1}, text="blue shirt")]
    unfiltered = run_eval(service, queries, mode="hybrid", k=10)
    filtered = run_eval(service, queries, mode="hybrid", k=10, filters=[parse_where("colour=Black")])
    assert filtered.metrics["recall@10"] < unfiltered.metrics["recall@10"]  # the blue shirt is filtered out
    with pytest.raises(QueryError, match="unknown filter field"):
        parse_where("flavour=sweet")
    with pytest.raises(QueryError, match="number"):
        parse_where("price<cheap")


def test_train_hybrid_learns_both_and_compare_modes_reports_every_row(tiny_catalog, fake_settings):
    from mmtui.index.fused import fusion_weight
    from mmtui.train.weights.hybrid import train_hybrid
    from mmtui.cli.reports import modes_markdown
    from mmtui.evaluation.modes import compare_modes, default_query_sets

    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    fusion, fit = train_hybrid(fake_settings, encoder=FakeEncoder(), split="train")
    service = SearchService.open(fake_settings, encoder=FakeEncoder())
    assert fusion_weight(service.store) == fusion.image_weight
    assert service.indexes["fused"].manifest.extra["image_weight"] == fusion.image_weight
    assert hybrid_weights(service.store) == (fit.weights, True)
    report = compare_modes(service, default_query_sets(service.store, "train"), split="train")
    labels = [r["label"] for r in report.rows]
    assert labels == ["lexical (BM25)", "text vector", "image vector", "RRF text + image", "fused vector",
                      "RRF, equal weights", "learned weights"]
    assert report.n_queries["title"] == 10 and report.n_queries["attribute"] == 11  # + the scarf (no image)
    assert all(0.0 <= r["attribute/ndcg@10"] <= 1.0 for r in report.rows)
    assert "| text-only | lexical (BM25) |" in modes_markdown(report)
