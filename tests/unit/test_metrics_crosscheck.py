"""mmtui's metrics against trec_eval (through ir-measures and pytrec_eval) on generated runs and qrels.

Graded and binary judgements, unjudged hits, duplicates-free rankings with tied scores. Where the definitions
agree the figures must be identical to 1e-9; where they differ (docs/judgements.md, "Metric definitions") the
test checks the stated relation instead:
- recall@k: mmtui divides by min(k, |relevant|), trec_eval by |relevant|.
- ties: trec_eval orders tied scores by document id, descending; mmtui scores the order the ranker returned.
  The runs here are read back in trec_eval's order, as mmtui.evaluation.runs.read_run does (ir-measures' own
  Judged@k provider breaks ties by doc id ascending: that one is checked in its order).
- MRR: mmtui counts a first hit within the top 100; these runs are shorter, so trec_eval's RR is the same.
"""

from __future__ import annotations

import numpy as np
import pytest

ir_measures = pytest.importorskip("ir_measures")

from mmtui import metrics  # noqa: E402
from mmtui.evaluation.runs import ranking_from_scores  # noqa: E402

GRADES = {0: 0, 1: 1, 2: 3, 3: 7}  # mmtui's gain 2^g - 1, given to trec_eval as a gain table


def generated(seed: int, graded: bool, n_queries: int = 40):
    """qrels {qid: {doc: grade}} and a run {qid: {doc: score}} with many tied scores and unjudged documents."""
    rng = np.random.default_rng(seed)
    qrels, run = {}, {}
    for q in range(n_queries):
        docs = [f"d{i:03d}" for i in rng.choice(300, size=60, replace=False)]
        judged = docs[: rng.integers(5, 40)]
        top = 3 if graded else 1
        grades = {d: int(rng.integers(0, top + 1)) for d in judged}
        if not any(g >= 1 for g in grades.values()):
            grades[judged[0]] = 1
        qid = f"q{q}"
        qrels[qid] = grades
        retrieved = [docs[i] for i in rng.permutation(len(docs))[: rng.integers(1, 50)]]
        # coarse scores: about one in three tied with a neighbour
        run[qid] = {d: float(rng.integers(0, 20)) / 4 for d in retrieved}
    return qrels, run


def trec(measures, qrels, run):
    out = {}
    for m in ir_measures.iter_calc(measures, qrels, run):
        out[(str(m.measure), m.query_id)] = m.value
    return out


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_trec_eval(graded, seed):
    qrels, run = generated(seed, graded)
    nDCG = ir_measures.nDCG(gains=GRADES)@10
    measures = [nDCG, ir_measures.P@10, ir_measures.RR, ir_measures.Judged@10,
                *(ir_measures.R@k for k in metrics.RECALL_KS)]
    ref = trec(measures, qrels, run)
    checked = 0
    for qid, scores in run.items():
        ranked = ranking_from_scores(scores)
        rel = qrels[qid]
        n_rel = sum(1 for g in rel.values() if g >= 1)
        assert metrics.ndcg_at_k(ranked, rel, 10) == pytest.approx(ref[(str(nDCG), qid)], abs=1e-9)
        assert metrics.precision_at_k(ranked, rel, 10) == pytest.approx(ref[("P@10", qid)], abs=1e-9)
        assert metrics.reciprocal_rank(ranked, rel) == pytest.approx(ref[("RR", qid)], abs=1e-9)
        # Judged@10 comes from ir-measures' own provider, which breaks ties by doc id ascending (not trec_eval)
        ascending = [d for d, _ in sorted(scores.items(), key=lambda x: (-x[1], x[0]))]
        assert metrics.judged_at_k(ascending, rel, 10) == pytest.approx(ref[("Judged@10", qid)], abs=1e-9)
        for k in metrics.RECALL_KS:  # the one stated difference: mmtui caps the denominator at k
            ours = metrics.recall_at_k(ranked, rel, k)
            assert ours * min(k, n_rel) / n_rel == pytest.approx(ref[(f"R@{k}", qid)], abs=1e-9)
        checked += 1
    assert checked == len(run)


def test_ties_are_ordered_as_trec_eval_orders_them():
    """Equal scores: the larger document id first (trec_eval's rule), so a run file means one ranking."""
    scores = {"a": 1.0, "c": 1.0, "b": 2.0, "d": 1.0}
    assert ranking_from_scores(scores) == ["b", "d", "c", "a"]
    qrels = {"q": {"a": 1}}
    ref = trec([ir_measures.RR], qrels, {"q": scores})
    assert metrics.reciprocal_rank(ranking_from_scores(scores), qrels["q"]) == ref[("RR", "q")] == 0.25


def test_mean_over_queries_matches_trec_eval_aggregate():
    qrels, run = generated(7, True)
    nDCG = ir_measures.nDCG(gains=GRADES)@10
    agg = ir_measures.calc_aggregate([nDCG, ir_measures.P@10], qrels, run)
    ids = sorted(run)
    ours = metrics.score_rankings([ranking_from_scores(run[q]) for q in ids], [qrels[q] for q in ids])
    assert ours["ndcg@10"] == pytest.approx(agg[nDCG], abs=1e-9)
    assert ours["p@10"] == pytest.approx(agg[ir_measures.P@10], abs=1e-9)


def test_paired_randomisation_matches_scipy_exact_test():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    for n in (5, 9, 14):
        a, b = rng.random(n), rng.random(n) * 0.8
        ref = stats.permutation_test((a, b), lambda x, y: np.mean(x - y), permutation_type="samples",
                                     n_resamples=np.inf, alternative="two-sided")
        assert metrics.paired_randomisation(a, b) == pytest.approx(ref.pvalue, abs=1e-9)


def test_paired_randomisation_sampled_is_seeded_and_close_to_the_exact_figure():
    rng = np.random.default_rng(4)
    a, b = rng.random(30), rng.random(30)
    p1 = metrics.paired_randomisation(a, b, rounds=20_000, seed=1)
    assert p1 == metrics.paired_randomisation(a, b, rounds=20_000, seed=1)
    stats = pytest.importorskip("scipy.stats")
    ref = stats.permutation_test((a, b), lambda x, y: np.mean(x - y), permutation_type="samples",
                                 n_resamples=200_000, alternative="two-sided", random_state=0).pvalue
    assert abs(p1 - ref) < 0.02
    # a clear difference on many queries is significant; identical rankers never are
    assert metrics.paired_randomisation(a + 0.5, a) < 0.001
    assert metrics.paired_randomisation(a, a) == 1.0
    assert metrics.wins_losses_ties([1, 0.5, 0.2], [0.5, 0.5, 0.3]) == (1, 1, 1)
