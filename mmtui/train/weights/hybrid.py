"""Learning the hybrid weights (mmtui.query.hybrid) on the validation split, and `mmtui train hybrid`.

Each validation query's candidate lists per signal are ranked once (`ranked_queries`); a grid over every signal's
weight then scores each weighting from those lists alone (`score_weightings`), and the best one by nDCG@10 over
title queries and attribute queries (mmtui.catalog.queries) is saved to the store's meta under "hybrid".
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from mmtui.index.writer import reindex
from mmtui.store.datadir import writes
from mmtui.errors import MmtuiError
from mmtui.metrics import beats_chance
from mmtui.query.hybrid import CANDIDATES, DEFAULT_SIGNALS, META_KEY, RRF_K, SIGNALS, Ranked
from mmtui.progress import ProgressEvent
from mmtui.catalog.queries import attribute_queries, category_queries, split_queries
from mmtui.query.service import SearchService
from mmtui.train.weights.fusion import learn_fusion_weight

GRID = (0.0, 0.25, 0.5, 1.0, 2.0)


# -- fitting ---------------------------------------------------------------------------------------------------

@dataclass
class HybridFit:
    weights: dict[str, float]
    metric: str
    score: float  # mean metric over the query sets with the learned weights
    equal_score: float  # ... with equal weights over DEFAULT_SIGNALS (the fallback)
    single: dict[str, float] = field(default_factory=dict)  # each signal alone
    by_set: dict[str, float] = field(default_factory=dict)
    n_queries: dict[str, int] = field(default_factory=dict)
    split: str = "val"
    space: str = ""
    learned_at: str = ""
    at_chance: list[str] = field(default_factory=list)  # signals that got no vote: no better than chance

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class RankedQuery:
    """One query's candidate lists per signal and its relevant rowids (for learning and mode comparison)."""
    set_name: str
    text: str
    ranked: Ranked
    relevant: frozenset[int]


def _candidate_matrix(q: RankedQuery, signals: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(contributions (m, s) = 1 / (RRF_K + rank) or 0, relevant (m,) bool) over the union of candidates."""
    order: dict[int, int] = {}
    for name in signals:
        for rowid, _ in q.ranked.get(name, []):
            order.setdefault(rowid, len(order))
    contrib = np.zeros((len(order), len(signals)), np.float64)
    for j, name in enumerate(signals):
        for rank, (rowid, _) in enumerate(q.ranked.get(name, []), start=1):
            contrib[order[rowid], j] = 1.0 / (RRF_K + rank)
    relevant = np.zeros(len(order), bool)
    for rowid, i in order.items():
        relevant[i] = rowid in q.relevant
    return contrib, relevant


def score_weightings(queries: Sequence[RankedQuery], signals: Sequence[str], weightings: np.ndarray,
                     k: int = 10) -> dict[str, np.ndarray]:
    """Per weighting (rows of `weightings`, one weight per signal), per query set: mean nDCG@k and recall@k.

    Returns {"<set>/ndcg@10": (g,), "<set>/recall@10": (g,)}. Relevant items outside every candidate list
    count as missed (the ideal DCG uses all of the query's relevant items)."""
    weightings = np.asarray(weightings, np.float64)
    g = len(weightings)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    for q in queries:
        contrib, relevant = _candidate_matrix(q, signals)
        n_rel = len(q.relevant)
        if n_rel == 0:
            continue
        counts[q.set_name] = counts.get(q.set_name, 0) + 1
        nd = sums.setdefault(f"{q.set_name}/ndcg@{k}", np.zeros(g))
        rc = sums.setdefault(f"{q.set_name}/recall@{k}", np.zeros(g))
        if not len(contrib):
            continue
        scores = contrib @ weightings.T  # (m, g)
        kk = min(k, len(scores))
        order = np.argsort(-scores, axis=0, kind="stable")[:kk]  # (kk, g)
        hit = relevant[order] & (np.take_along_axis(scores, order, axis=0) > 0)
        ideal = discount[:min(n_rel, k)].sum()
        nd += (hit * discount[:kk, None]).sum(axis=0) / ideal
        rc += hit.sum(axis=0) / min(n_rel, k)
    return {key: v / counts[key.split("/")[0]] for key, v in sums.items()}


MIN_CHANCE_POOL = 50  # a pool where chance puts a title's product in the top 10 at most 20% of the time


def signals_at_chance(queries: Sequence[RankedQuery], signals: Sequence[str], pool: int, z: float = 3.0) -> list[str]:
    """Vector signals whose title queries (one relevant product each) find their product in the top 10 no more often
    than a random ranking of `pool` products would: fewer than `z` standard deviations above 10/pool (binomial).
    Words are never judged so: a title always finds itself by its words."""
    titles = [q for q in queries if q.set_name == "title" and len(q.relevant) == 1]
    if not titles or pool < MIN_CHANCE_POOL:
        return []  # chance reaches most of a small pool's top 10: no signal could be told from it
    out = []
    for s in signals:
        if s == "lexical":
            continue
        hits = sum(1 for q in titles if any(r in q.relevant for r, _ in q.ranked.get(s, [])[:10]))
        if not beats_chance(hits, len(titles), 10 / pool, z):
            out.append(s)
    return out


def fit_hybrid_weights(queries: Sequence[RankedQuery], *, signals: Sequence[str] = SIGNALS,
                       grid: Sequence[float] = GRID, metric: str = "ndcg@10", pool: int | None = None) -> HybridFit:
    """Grid search over every signal's weight (all combinations of `grid`), maximising the mean over query sets
    of `metric`. Ties go to the weighting closest to equal weights. Weights are scaled so the largest is 1.
    With `pool` (the number of products ranked), a signal at chance (signals_at_chance) gets no vote at all."""
    signals = [s for s in signals if any(q.ranked.get(s) for q in queries)]
    chance = signals_at_chance(queries, signals, pool) if pool else []
    signals = [s for s in signals if s not in chance]
    if not queries or not signals:
        raise MmtuiError("no validation query to learn hybrid weights from",
                         "build the index from a catalog with titles (the val split must not be empty)")
    combos = np.array([c for c in itertools.product(grid, repeat=len(signals)) if any(x > 0 for x in c)], np.float64)
    combos = np.unique(combos / combos.max(axis=1, keepdims=True), axis=0)
    equal = np.array([[1.0 if s in DEFAULT_SIGNALS else 0.0 for s in signals]])
    if not equal.any():
        equal = np.ones((1, len(signals)))
    singles = np.eye(len(signals))
    all_w = np.concatenate([combos, equal, singles])
    figures = score_weightings(queries, signals, all_w)
    sets = sorted({key.split("/")[0] for key in figures})
    objective = np.mean([figures[f"{s}/{metric}"] for s in sets], axis=0)
    distance = np.abs(all_w - equal[0]).sum(axis=1)
    best = max(range(len(combos)), key=lambda i: (round(objective[i], 9), -distance[i]))
    eq = len(combos)
    if objective[eq] >= objective[best] - 1e-9:
        best = eq
    weights = {s: round(float(w), 4) for s, w in zip(signals, all_w[best])}
    return HybridFit(weights=weights, metric=metric, score=float(objective[best]), equal_score=float(objective[eq]),
                     single={s: round(float(objective[eq + 1 + j]), 6) for j, s in enumerate(signals)},
                     by_set={f"{s}/{m}": round(float(figures[f"{s}/{m}"][best]), 6)
                             for s in sets for m in ("ndcg@10", "recall@10")},
                     n_queries={s: sum(1 for q in queries if q.set_name == s and q.relevant) for s in sets},
                     at_chance=chance)


def ranked_queries(service: Any, set_name: str, texts: Sequence[str], relevant: Sequence[Sequence[int]], *,
                   pool: np.ndarray | None = None, signals: Sequence[str] = SIGNALS, n: int = CANDIDATES,
                   progress: Any = None) -> list[RankedQuery]:
    """Each query's top-n candidates per signal from the service's indexes (exact search over `pool` rowids,
    None: every product) and its FTS5 BM25 list (within the pool). Query texts are encoded in batches."""
    out: list[RankedQuery] = []
    vector_signals = [s for s in signals if s != "lexical" and s in service.indexes]
    positions = {}
    for name in vector_signals:
        index = service.indexes[name]
        labels = np.asarray(index.labels)
        keep = np.isin(labels, pool) if pool is not None else np.ones(len(labels), bool)
        positions[name] = (labels[keep], np.asarray(index.vectors)[keep])
    pool_where, pool_params = ("1", [])
    pool_rowids = np.asarray(pool, dtype=np.int64) if pool is not None else None
    if pool is not None:
        marks = ",".join(str(int(r)) for r in pool)  # integers from the store, never user text
        pool_where = f"products.rowid IN ({marks})"
    texts = list(texts)
    for start in range(0, len(texts), 128):
        chunk = texts[start:start + 128]
        vectors = service.projector.text(service.encoder.encode_texts(chunk)) if vector_signals else None
        for i, text in enumerate(chunk):
            ranked: Ranked = {}
            if "lexical" in signals:
                ranked["lexical"] = service.lexical_hits(text, n, pool_where, pool_params, allowed=pool_rowids)
            for name in vector_signals:
                labels, matrix = positions[name]
                scores = matrix @ vectors[i]
                top = np.argsort(-scores, kind="stable")[:n]
                ranked[name] = [(int(labels[j]), float(scores[j])) for j in top]
            out.append(RankedQuery(set_name, text, ranked, frozenset(int(r) for r in relevant[start + i])))
        if progress is not None:
            progress(ProgressEvent(f"rank-{set_name}", min(start + 128, len(texts)), len(texts)))
    return out


def validation_queries(service: Any, split: str = "val", *, progress: Any = None, limit: int | None = None,
                       attribute_store: Any = None) -> list[RankedQuery]:
    """Title queries (each product's title -> itself), attribute queries and category queries of `split`, ranked
    within it.
    `attribute_store`: judge the attribute queries with another store's fields (same catalog ids), e.g. the
    full catalog when this one lost its colours."""
    store = service.store
    pool = np.array(sorted(r for r, s in store.splits().items() if s == split), dtype=np.int64)
    out: list[RankedQuery] = []
    sets = (("title", split_queries(store, split)), ("attribute", attribute_queries(attribute_store or store, split)),
            ("category", category_queries(attribute_store or store, split)))
    for name, queries in sets:
        if limit is not None:
            queries = queries[:limit]
        rowid = store.rowid_of(sorted({pid for q in queries for pid in q.relevant}))
        out += ranked_queries(service, name, [q.text for q in queries],
                              [[rowid[p] for p in q.relevant if p in rowid] for q in queries],
                              pool=pool, progress=progress)
    return out


def learn_hybrid_weights(service: Any, *, split: str = "val", metric: str = "ndcg@10", grid: Sequence[float] = GRID,
                         save: bool = True, progress: Any = None, attribute_store: Any = None) -> HybridFit:
    """Learn the hybrid weights on `split` and save them to meta "hybrid" (used by every later hybrid search)."""
    queries = validation_queries(service, split, progress=progress, attribute_store=attribute_store)
    pool = sum(1 for s in service.store.splits().values() if s == split)
    fit = fit_hybrid_weights(queries, grid=grid, metric=metric, pool=pool)
    fit.split, fit.space, fit.learned_at = split, service.space, time.strftime("%Y-%m-%dT%H:%M:%S")
    if save:
        service.store.set_meta(META_KEY, json.dumps(fit.to_json()))
    return fit


MIN_VAL_PRODUCTS = 20  # below this, weights learned at build time would fit noise: equal weights (plain RRF)


def learn_at_build(settings: Any, store: Any, encoder: Any, *, progress: Any = None) -> dict:
    """build-index's last step: learn the fused image weight and the hybrid weights on the validation products
    (what `mmtui train hybrid` does) whenever the search space or the validation products changed since they were
    last learned; else nothing. Returns {"status", "weights", "at_chance", "single", "image_weight"}."""
    import hashlib

    rows = store.db.execute("SELECT rowid, title_sha, image_sha, text_sha FROM products WHERE split = 'val' "
                            "ORDER BY rowid").fetchall()
    if len(rows) < MIN_VAL_PRODUCTS:
        return {"status": "skipped", "message": f"{len(rows)} validation products: too few to learn from, so hybrid "
                                                "search weighs every signal the same"}
    digest = hashlib.sha1(json.dumps([store.get_meta("index_space"), rows]).encode()).hexdigest()[:16]
    info = json.loads(store.get_meta(META_KEY) or "{}")
    if info.get("build_digest") == digest:
        return {"status": "unchanged", **_summary(info)}
    if info.get("source") == "judgements":  # learned from the user's own judgements: a rebuild keeps them
        return {"status": "kept", **_summary(info),
                "message": "hybrid weights learned from your judgements kept (mmtui train hybrid to relearn)"}
    try:
        fusion, fit = train_hybrid(settings, encoder=encoder, progress=progress)
    except MmtuiError as exc:
        return {"status": "skipped", "message": exc.message}
    saved = {**fit.to_json(), "build_digest": digest}
    store.set_meta(META_KEY, json.dumps(saved))
    return {"status": "learned", **_summary(saved), "image_weight": fusion.image_weight}


def _summary(info: dict) -> dict:
    return {k: info.get(k) for k in ("weights", "at_chance", "single", "score", "equal_score", "n_queries")}


@writes("train hybrid")
def train_hybrid(settings: Any, *, encoder: Any = None, split: str = "val", metric: str = "ndcg@10",
                 progress: Any = None, attribute_store: Any = None) -> tuple[Any, HybridFit]:
    """What `mmtui train hybrid` does: learn the fused image weight on `split`, rebuild the fused index with it
    (from cached vectors), then learn the hybrid weights over all four signals. Returns (FusionFit, HybridFit)."""
    service = SearchService.open(settings, encoder=encoder)
    try:
        fusion = learn_fusion_weight(settings, service.store, encoder=service.encoder, split=split, metric=metric,
                                     attribute_store=attribute_store)
        reindex(settings, store=service.store, progress=progress)
        service.reload()
        fit = learn_hybrid_weights(service, split=split, metric=metric, progress=progress,
                                   attribute_store=attribute_store)
    finally:
        service.close()
    return fusion, fit


# -- learning from the user's judgements ----------------------------------------------------------------------

VAL_SHARE = 0.3  # share of the judged queries held out to choose and report on
MIN_JUDGED = 3  # judged queries needed on each side of the split


def split_by_query(texts: Sequence[str], val_share: float = VAL_SHARE, seed: int = 0) -> tuple[list[int], list[int]]:
    """(train, validation) positions: each query goes to one side by a hash of its text, so the split does not move
    when more queries are judged, and no query is on both sides."""
    import hashlib

    train, val = [], []
    for i, text in enumerate(texts):
        h = int(hashlib.sha1(f"{seed}\t{text}".encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
        (val if h < val_share else train).append(i)
    return train, val


@dataclass
class JudgedFit:
    """Hybrid weights learned on judged queries, and the held-out judged queries before and after."""
    weights: dict[str, float]  # the learned weights (saved only when promoted)
    current: dict[str, float]  # the weights in use before
    promoted: bool
    reason: str
    n_train: int
    n_val: int
    before: dict[str, float]  # mean graded figures on the validation queries with the current weights
    after: dict[str, float]  # ... with the learned weights
    fit: dict = field(default_factory=dict)  # the HybridFit on the training queries
    skipped: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def _held_out(service: Any, queries: Sequence[tuple[str, dict[str, int]]], weights: dict[str, float]) -> dict:
    """Mean nDCG@10, P@10, MRR and judged@10 of real hybrid searches with these weights (graded judgements)."""
    from mmtui.metrics import query_metrics

    rows = [query_metrics([h.id for h in service.search(text, k=100, mode="hybrid", weights=weights).hits], grades)
            for text, grades in queries]
    return {m: round(float(np.mean([r[m] for r in rows])), 6) for m in ("ndcg@10", "p@10", "mrr", "judged@10")}


@writes("train hybrid")
def learn_hybrid_judged(settings: Any, judged: Sequence[tuple[str, dict[str, int]]], *, metric: str = "ndcg@10",
                        grid: Sequence[float] = GRID, force: bool = False, seed: int = 0, encoder: Any = None,
                        progress: Any = None) -> JudgedFit:
    """`mmtui train hybrid --judged`: the hybrid signal weights fitted on the user's judged text queries.

    The queries are split by query (split_by_query); the grid search (fit_hybrid_weights) runs on the training
    side, where a result counts as relevant with grade >= 1 and an unjudged one as not relevant; the learned weights
    replace the current ones only if real hybrid searches of the held-out side score a higher nDCG@10 with them
    (graded, as `mmtui eval` scores), unless `force`."""
    usable = [(t, g) for t, g in judged if any(v >= 1 for v in g.values())]
    train_pos, val_pos = split_by_query([t for t, _ in usable], seed=seed)
    if len(train_pos) < MIN_JUDGED or len(val_pos) < MIN_JUDGED:
        raise MmtuiError(f"{len(usable)} judged text queries with a relevant result split into {len(train_pos)} for "
                         f"training and {len(val_pos)} for validation: at least {MIN_JUDGED} each are needed",
                         "judge more queries in the TUI (2 on a relevant result); about 20 are enough to start")
    train = [usable[i] for i in train_pos]
    val = [usable[i] for i in val_pos]
    service = SearchService.open(settings, encoder=encoder)
    try:
        rowid = service.store.rowid_of(sorted({pid for _, g in usable for pid in g}))
        ranked = ranked_queries(service, "judged", [t for t, _ in train],
                                [[rowid[p] for p, v in g.items() if v >= 1 and p in rowid] for _, g in train],
                                progress=progress)
        fit = fit_hybrid_weights(ranked, grid=grid, metric=metric)
        current = service.hybrid_weights()
        before, after = _held_out(service, val, current), _held_out(service, val, fit.weights)
        better = after["ndcg@10"] > before["ndcg@10"] + 1e-9
        promoted = better or force
        reason = ("better on the held-out judged queries" if better else
                  "forced (not better on the held-out judged queries)" if force else
                  "not better on the held-out judged queries: the current weights stay")
        result = JudgedFit(fit.weights, current, promoted, reason, len(train), len(val), before, after, fit.to_json())
        if promoted:
            fit.split, fit.space, fit.learned_at = "judged", service.space, time.strftime("%Y-%m-%dT%H:%M:%S")
            service.store.set_meta(META_KEY, json.dumps({**fit.to_json(), "source": "judgements",
                                                         "held_out": {"before": before, "after": after,
                                                                      "n_val": len(val)}}))
    finally:
        service.close()
    return result
