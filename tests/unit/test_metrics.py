"""Metrics against hand-computed cases and against a naive loop-based reference on random rankings."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mmtui.metrics import (
    METRIC_KEYS, metrics_from_ranks, mrr, ndcg_at_k, paired_retrieval, precision_at_k, ranks_of_targets, recall_at_k,
    score_rankings,
)

# -- hand-computed ---------------------------------------------------------------------------------------

RANKED = ["a", "b", "c", "d", "e"]


def test_recall_hand_computed():
    rel = {"b": 1, "e": 2, "z": 1}  # 3 relevant, 2 of them retrieved at ranks 2 and 5
    assert recall_at_k(RANKED, rel, 1) == 0.0
    assert recall_at_k(RANKED, rel, 2) == pytest.approx(1 / 2)  # min(2, 3) = 2
    assert recall_at_k(RANKED, rel, 3) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, rel, 5) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, rel, 10) == pytest.approx(2 / 3)


def test_recall_single_relevant_is_hit_rate():
    assert recall_at_k(RANKED, {"c": 1}, 3) == 1.0
    assert recall_at_k(RANKED, {"c": 1}, 2) == 0.0


def test_grade_zero_is_not_relevant():
    rel = {"a": 0, "b": 1}
    assert recall_at_k(RANKED, rel, 1) == 0.0
    assert mrr(RANKED, rel) == 0.5
    assert precision_at_k(RANKED, rel, 10) == pytest.approx(0.1)


def test_mrr_hand_computed_and_depth():
    assert mrr(RANKED, {"c": 1, "e": 1}) == pytest.approx(1 / 3)
    assert mrr(RANKED, {"x": 1}) == 0.0
    long = [str(i) for i in range(200)]
    assert mrr(long, {"99": 1}) == pytest.approx(1 / 100)
    assert mrr(long, {"100": 1}) == 0.0  # rank 101: outside the top 100


def test_ndcg_hand_computed():
    rel = {"b": 2, "d": 1, "z": 3}
    # DCG = (2^2-1)/log2(3) + (2^1-1)/log2(5); IDCG over grades 3,2,1 = 7/1 + 3/log2(3) + 1/log2(4)
    dcg = 3 / math.log2(3) + 1 / math.log2(5)
    idcg = 7 + 3 / math.log2(3) + 1 / 2
    assert ndcg_at_k(RANKED, rel, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["z", "b", "d"], rel, 10) == pytest.approx(1.0)
    assert ndcg_at_k(RANKED, {"x": 1}, 10) == 0.0


def test_precision_divides_by_k_not_by_retrieved():
    assert precision_at_k(["a", "b"], {"a": 1, "b": 1}, 10) == pytest.approx(0.2)


def test_ids_compared_as_strings_and_duplicates_count_once():
    assert recall_at_k([15970, 3], {"15970": 1}, 1) == 1.0
    assert recall_at_k(["a", "a", "b"], {"a": 1, "b": 1}, 2) == pytest.approx(0.5)


def test_score_rankings_keys_and_means():
    out = score_rankings([["a", "b"], ["b", "a"]], [{"a": 1}, {"a": 1}])
    assert tuple(out) == METRIC_KEYS
    assert out["n_queries"] == 2
    assert out["recall@1"] == pytest.approx(0.5)
    assert out["mrr"] == pytest.approx(0.75)
    with pytest.raises(ValueError):
        score_rankings([["a"]], [{"a": 0}])
    with pytest.raises(ValueError):
        score_rankings([], [])


def test_ranks_of_targets_ties_count_against_target():
    scores = np.array([[0.9, 0.5, 0.5], [0.1, 0.2, 0.3]])
    assert ranks_of_targets(scores, [1, 0]).tolist() == [3, 3]
    assert ranks_of_targets(scores, [0, 2]).tolist() == [1, 1]


def test_paired_retrieval_modality_gap():
    q = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    v = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    out = paired_retrieval(q, v)
    # sims = [[1, .6], [0, .8]]: query 0 rank 1, query 1 rank 1
    assert out["recall@1"] == 1.0
    assert out["cos_match"] == pytest.approx(0.9)
    assert out["cos_random"] == pytest.approx(0.3)
    assert out["gap"] == pytest.approx(0.6)


# -- naive reference, straight from the definitions -----------------------------------------------------

def naive(ranked, relevance):
    relevant = [i for i, g in relevance.items() if g >= 1]
    out = {}
    for k in (1, 3, 5, 10):
        hits = 0
        for pid in ranked[:k]:
            if pid in relevant:
                hits += 1
        out[f"recall@{k}"] = hits / min(k, len(relevant))
    rr = 0.0
    for position in range(min(100, len(ranked))):
        if ranked[position] in relevant:
            rr = 1.0 / (position + 1)
            break
    out["mrr"] = rr
    dcg = 0.0
    for position in range(min(10, len(ranked))):
        grade = relevance.get(ranked[position], 0)
        dcg += (2 ** grade - 1) / math.log2(position + 2)
    ideal = sorted(relevance.values(), reverse=True)
    idcg = 0.0
    for position in range(min(10, len(ideal))):
        idcg += (2 ** ideal[position] - 1) / math.log2(position + 2)
    out["ndcg@10"] = dcg / idcg
    hits = 0
    for pid in ranked[:10]:
        if pid in relevant:
            hits += 1
    out["p@10"] = hits / 10
    return out


def random_case(rng: random.Random):
    pool = [f"p{i}" for i in range(150)]
    ranked = rng.sample(pool, rng.randint(0, 120))
    judged = rng.sample(pool, rng.randint(1, 15))
    relevance = {pid: rng.randint(0, 3) for pid in judged}
    relevance[judged[0]] = rng.randint(1, 3)  # at least one relevant
    return ranked, relevance


def test_metrics_match_naive_reference_on_random_rankings():
    rng = random.Random(7)
    cases = [random_case(rng) for _ in range(300)]
    for ranked, relevance in cases:
        expected = naive(ranked, relevance)
        for k in (1, 3, 5, 10):
            assert recall_at_k(ranked, relevance, k) == pytest.approx(expected[f"recall@{k}"])
        assert mrr(ranked, relevance) == pytest.approx(expected["mrr"])
        assert ndcg_at_k(ranked, relevance, 10) == pytest.approx(expected["ndcg@10"])
        assert precision_at_k(ranked, relevance, 10) == pytest.approx(expected["p@10"])
    agg = score_rankings([c[0] for c in cases], [c[1] for c in cases])
    for key in ("recall@1", "recall@10", "mrr", "ndcg@10", "p@10"):
        assert agg[key] == pytest.approx(np.mean([naive(*c)[key] for c in cases]))


def test_vectorised_ranks_agree_with_ranked_lists():
    rng = np.random.default_rng(3)
    q = rng.standard_normal((120, 8)).astype(np.float32)
    v = rng.standard_normal((120, 8)).astype(np.float32)
    sims = q @ v.T
    rankings = [[str(j) for j in np.argsort(-row)] for row in sims]
    relevances = [{str(i): 1} for i in range(len(q))]
    expected = score_rankings(rankings, relevances)
    got = metrics_from_ranks(ranks_of_targets(sims, np.arange(len(q))))
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value)


def test_paired_retrieval_chunks_give_the_same_figures():
    rng = np.random.default_rng(5)
    q = rng.standard_normal((50, 4)).astype(np.float32)
    v = (q + rng.standard_normal((50, 4))).astype(np.float32)
    whole, chunked = paired_retrieval(q, v), paired_retrieval(q, v, chunk=7)
    assert set(whole) == set(chunked)
    for key in whole:
        assert chunked[key] == pytest.approx(whole[key], abs=1e-6)
