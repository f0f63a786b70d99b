"""Retrieval metrics, pure numpy (no torch): the definitions of `mmtui eval`'s figures (docs/metrics.md).

A ranking is a list of product ids, best first. Relevance is a dict id -> integer grade; grade >= 1 is
relevant (higher is more relevant), grade 0 means "judged, not relevant". Ids are compared as strings.

- recall@k    = |relevant in top k| / min(k, |relevant|)   (one relevant item: the hit rate)
- MRR         = 1 / rank of the first relevant hit, 0 if none in the top 100
- nDCG@k      = DCG@k / IDCG@k with gain 2^grade - 1 and discount log2(rank + 1); IDCG from the query's own grades
- precision@k = |relevant in top k| / k   (k, not the number retrieved)

`score_rankings` averages these over queries and returns the contract's keys. `ranks_of_targets` and
`metrics_from_ranks` are the vectorised form for the one-relevant-item protocol (exact search over a
similarity matrix), used by model comparison and validation during training.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

MRR_DEPTH = 100  # MRR counts a hit only within the top 100
RECALL_KS = (1, 3, 5, 10)
NDCG_K = 10
PRECISION_K = 10
METRIC_KEYS = ("n_queries", "recall@1", "recall@3", "recall@5", "recall@10", "mrr", "ndcg@10", "p@10")

Relevance = Mapping[str, int]


def _ids(ranked: Sequence[object]) -> list[str]:
    """Ids as strings. A repeated id keeps its slot but counts once (it becomes "" , which matches nothing),
    so a service that returns duplicates is not rewarded for them."""
    seen: set[str] = set()
    out: list[str] = []
    for item in ranked:
        key = str(item)
        out.append("" if key in seen else key)
        seen.add(key)
    return out


def _grades(relevance: Relevance) -> dict[str, int]:
    return {str(k): int(v) for k, v in relevance.items()}


def _relevant(relevance: Relevance) -> set[str]:
    return {k for k, g in _grades(relevance).items() if g >= 1}


def recall_at_k(ranked: Sequence[object], relevance: Relevance, k: int) -> float:
    """|relevant in top k| / min(k, |relevant|); 0.0 when nothing is relevant."""
    if k < 1:
        raise ValueError("k must be >= 1")
    relevant = _relevant(relevance)
    if not relevant:
        return 0.0
    found = sum(1 for pid in _ids(ranked)[:k] if pid in relevant)
    return found / min(k, len(relevant))


def precision_at_k(ranked: Sequence[object], relevance: Relevance, k: int = PRECISION_K) -> float:
    """|relevant in top k| / k (a short ranking is not rewarded for being short)."""
    if k < 1:
        raise ValueError("k must be >= 1")
    relevant = _relevant(relevance)
    return sum(1 for pid in _ids(ranked)[:k] if pid in relevant) / k


def reciprocal_rank(ranked: Sequence[object], relevance: Relevance, depth: int = MRR_DEPTH) -> float:
    """1 / rank of the first relevant id within the top `depth`, else 0.0. The mean over queries is MRR."""
    relevant = _relevant(relevance)
    for rank, pid in enumerate(_ids(ranked)[:depth], start=1):
        if pid in relevant:
            return 1.0 / rank
    return 0.0


mrr = reciprocal_rank  # per query; the mean over queries is what the reports call MRR


def ndcg_at_k(ranked: Sequence[object], relevance: Relevance, k: int = NDCG_K) -> float:
    """DCG@k / ideal DCG@k, gain 2^grade - 1, discount log2(rank + 1). 0.0 when nothing is relevant."""
    if k < 1:
        raise ValueError("k must be >= 1")
    grades = _grades(relevance)
    gains = np.array([2.0 ** max(grades.get(pid, 0) if pid else 0, 0) - 1.0 for pid in _ids(ranked)[:k]], dtype=np.float64)
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = float(gains @ discounts[: len(gains)])
    ideal = np.sort(np.array([2.0 ** g - 1.0 for g in grades.values() if g >= 1], dtype=np.float64))[::-1][:k]
    idcg = float(ideal @ discounts[: len(ideal)])
    return dcg / idcg if idcg > 0 else 0.0


def score_rankings(rankings: Sequence[Sequence[object]], relevances: Sequence[Relevance]) -> dict[str, float]:
    """Mean metrics over queries: {"n_queries", "recall@1", "recall@3", "recall@5", "recall@10", "mrr",
    "ndcg@10", "p@10"}. Every query must have at least one relevant id (callers skip the others)."""
    if len(rankings) != len(relevances):
        raise ValueError(f"{len(rankings)} rankings but {len(relevances)} relevance dicts")
    if not rankings:
        raise ValueError("no queries to score")
    per_query = {key: [] for key in METRIC_KEYS[1:]}
    for ranked, relevance in zip(rankings, relevances):
        if not _relevant(relevance):
            raise ValueError("a query has no relevant id (grade >= 1); skip it before scoring")
        for k in RECALL_KS:
            per_query[f"recall@{k}"].append(recall_at_k(ranked, relevance, k))
        per_query["mrr"].append(reciprocal_rank(ranked, relevance))
        per_query["ndcg@10"].append(ndcg_at_k(ranked, relevance, NDCG_K))
        per_query["p@10"].append(precision_at_k(ranked, relevance, PRECISION_K))
    out: dict[str, float] = {"n_queries": len(rankings)}
    out.update({key: float(np.mean(values)) for key, values in per_query.items()})
    return out


# -- one relevant item per query, from a similarity matrix -------------------------------------------------

def ranks_of_targets(scores: np.ndarray, targets: Sequence[int] | np.ndarray) -> np.ndarray:
    """1-based rank of each query's target column in its score row (higher score = better).

    Ties are counted against the target (rank = number of items scoring >= the target), so a tie never
    inflates a figure. scores: (n_queries, n_items); targets: (n_queries,) column indices.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets, dtype=np.int64)
    if scores.ndim != 2 or targets.shape != (scores.shape[0],):
        raise ValueError("scores must be (n, m) and targets (n,)")
    target_scores = scores[np.arange(scores.shape[0]), targets]
    return (scores >= target_scores[:, None]).sum(axis=1).astype(np.int64)


def metrics_from_ranks(ranks: Sequence[int] | np.ndarray) -> dict[str, float]:
    """The contract's metrics when each query has exactly one relevant item (grade 1) at the given rank."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("no queries to score")
    out: dict[str, float] = {"n_queries": int(ranks.size)}
    for k in RECALL_KS:
        out[f"recall@{k}"] = float(np.mean(ranks <= k))
    out["mrr"] = float(np.mean(np.where(ranks <= MRR_DEPTH, 1.0 / ranks, 0.0)))
    out["ndcg@10"] = float(np.mean(np.where(ranks <= NDCG_K, 1.0 / np.log2(ranks + 1.0), 0.0)))
    out["p@10"] = float(np.mean(ranks <= PRECISION_K)) / PRECISION_K
    return out


def paired_retrieval(queries: np.ndarray, items: np.ndarray, *, chunk: int = 2048) -> dict[str, float]:
    """Query i's one relevant item is item i (e.g. title i -> image i), exact search over all items.

    Returns the contract's metrics plus the modality gap: "cos_match" (mean cosine of matching pairs),
    "cos_random" (mean cosine of all non-matching pairs) and "gap" = cos_match - cos_random.
    Rows are L2-normalised here, so cosine = dot product.
    """
    q = _normalise(queries)
    v = _normalise(items)
    if q.shape != v.shape or q.shape[0] == 0:
        raise ValueError("queries and items must be non-empty and of the same shape (pairs)")
    n = q.shape[0]
    ranks = np.empty(n, dtype=np.int64)
    diag = total = 0.0
    for start in range(0, n, chunk):  # chunks keep memory at chunk x n, whatever the pool size
        end = min(start + chunk, n)
        sims = q[start:end] @ v.T
        ranks[start:end] = ranks_of_targets(sims, np.arange(start, end))
        diag += float(np.trace(sims, offset=start, dtype=np.float64))
        total += float(sims.sum(dtype=np.float64))
    out = metrics_from_ranks(ranks)
    out["cos_match"] = diag / n
    out["cos_random"] = (total - diag) / (n * (n - 1)) if n > 1 else 0.0
    out["gap"] = out["cos_match"] - out["cos_random"]
    return out


def beats_chance(hits: float, n: int, p0: float, z: float = 3.0) -> bool:
    """Whether `hits` successes out of `n` tries are more than `z` standard deviations above what chance (success
    probability `p0` each, binomial) gives: e.g. titles finding their own picture in the top 10 of a random ranking
    of N pictures, p0 = 10 / N."""
    if n <= 0 or p0 >= 1.0:
        return False
    return hits > n * p0 + z * (n * p0 * (1.0 - p0)) ** 0.5


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError("expected a 2-d array of vectors")
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


# -- per query, judged share, and comparing two rankers -----------------------------------------------------

JUDGED_K = 10


def judged_at_k(ranked: Sequence[object], relevance: Relevance, k: int = JUDGED_K) -> float:
    """Share of the top k retrieved that carries a judgement (any grade, 0 included), over min(k, retrieved):
    ir_measures' Judged@k; 0.0 for an empty ranking. A low figure says the other metrics count many unjudged
    hits as not relevant, which they may not be."""
    if k < 1:
        raise ValueError("k must be >= 1")
    grades = _grades(relevance)
    top = _ids(ranked)[:k]
    return sum(1 for pid in top if pid and pid in grades) / len(top) if top else 0.0


def query_metrics(ranked: Sequence[object], relevance: Relevance) -> dict[str, float]:
    """One query's figures under the contract's names, plus judged@10 (what per-query tables show)."""
    out = {f"recall@{k}": recall_at_k(ranked, relevance, k) for k in RECALL_KS}
    out["mrr"] = reciprocal_rank(ranked, relevance)
    out["ndcg@10"] = ndcg_at_k(ranked, relevance, NDCG_K)
    out["p@10"] = precision_at_k(ranked, relevance, PRECISION_K)
    out["judged@10"] = judged_at_k(ranked, relevance, JUDGED_K)
    return out


EXACT_MAX = 16  # up to 2^16 sign patterns: the randomisation test enumerates them all (an exact p-value)


def paired_randomisation(a: Sequence[float], b: Sequence[float], *, rounds: int = 10_000,
                         seed: int = 0) -> float:
    """Two-sided p-value of a paired randomisation (sign-flip) test on the mean of a - b over queries.

    Under the null hypothesis the two rankers are exchangeable on each query, so each per-query difference is as
    likely with either sign. Up to EXACT_MAX queries every sign pattern is enumerated (exact); above, `rounds`
    random patterns from a seeded generator, with the observed one counted in ((hits + 1) / (rounds + 1), so a
    p-value is never 0). All differences zero: 1.0."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or len(d) != len(np.asarray(b)):
        raise ValueError("a and b must be 1-d and of the same length (one value per query, paired)")
    n = len(d)
    if n == 0 or not np.any(d):
        return 1.0
    observed = abs(d.mean()) - 1e-12  # tolerance: equal means found by another sum order still count
    if n <= EXACT_MAX:
        patterns = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1) * 2 - 1  # every +-1 pattern
        means = np.abs(patterns @ d) / n
        return float(np.mean(means >= observed))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, rounds, 2048):
        m = min(2048, rounds - start)
        signs = rng.integers(0, 2, size=(m, n)) * 2 - 1
        hits += int(np.sum(np.abs(signs @ d) / n >= observed))
    return (hits + 1) / (rounds + 1)


def wins_losses_ties(a: Sequence[float], b: Sequence[float], tol: float = 1e-9) -> tuple[int, int, int]:
    """Per query: a better than b by more than `tol`, worse, or within it."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return int(np.sum(d > tol)), int(np.sum(d < -tol)), int(np.sum(np.abs(d) <= tol))
