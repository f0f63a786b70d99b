"""Learning the image weight w of the fused product vectors (mmtui.index.fused) on the validation split.

A grid search over w maximises nDCG@10 (or recall@10) over title queries (from cached vectors) and attribute
queries (mmtui.catalog.queries, encoded with the model); the fit is saved to the store's meta under "fusion", where
mmtui.index.fused.fusion_weight reads it at the next reindex.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from mmtui.errors import MmtuiError
from mmtui.index.fused import DEFAULT_WEIGHT, META_KEY, fuse, product_vectors
from mmtui.encoders.projection import search_space
from mmtui.catalog.queries import attribute_queries, category_queries

GRID = tuple(round(x, 2) for x in np.linspace(0.0, 1.0, 21))
NDCG_K = 10


# -- scoring over a similarity matrix ---------------------------------------------------------------------------

def matrix_metrics(scores: np.ndarray, relevant: np.ndarray, k: int = NDCG_K) -> dict[str, float]:
    """Mean nDCG@k and recall@k (binary relevance) of queries (rows) over a pool (columns).

    scores: (q, n) similarities; relevant: (q, n) bool. recall@k = found / min(k, |relevant|), as in metrics.py."""
    per = matrix_metrics_per_query(scores, relevant, k)
    return {key: float(v.mean()) if len(v) else 0.0 for key, v in per.items()}


def matrix_metrics_per_query(scores: np.ndarray, relevant: np.ndarray, k: int = NDCG_K) -> dict[str, np.ndarray]:
    scores = np.asarray(scores, np.float32)
    relevant = np.asarray(relevant, bool)
    q, n = scores.shape
    if q == 0:
        return {f"ndcg@{k}": np.zeros(0), f"recall@{k}": np.zeros(0)}
    kk = min(k, n)
    top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    hits = np.take_along_axis(relevant, top, axis=1).astype(np.float64)
    discount = 1.0 / np.log2(np.arange(2, kk + 2))
    dcg = hits @ discount
    n_rel = relevant.sum(axis=1)
    ideal = np.cumsum(discount)[np.clip(np.minimum(n_rel, kk) - 1, 0, None)]
    ndcg = np.where(n_rel > 0, dcg / np.where(ideal > 0, ideal, 1.0), 0.0)
    recall = np.where(n_rel > 0, hits.sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1), 0.0)
    return {f"ndcg@{k}": ndcg, f"recall@{k}": recall}


# -- learning the weight ----------------------------------------------------------------------------------------

@dataclass
class QuerySet:
    """Query vectors (already in the search space) and, per query, the pool positions that are relevant."""
    name: str
    vectors: np.ndarray  # (q, d)
    relevant: np.ndarray  # (q, n) bool over the pool


@dataclass
class FusionFit:
    image_weight: float
    metric: str
    score: float  # the metric at image_weight, mean over the query sets
    default_score: float  # the metric at DEFAULT_WEIGHT
    by_weight: dict[str, float] = field(default_factory=dict)  # "0.35" -> score
    by_set: dict[str, dict[str, float]] = field(default_factory=dict)  # query set -> {metric: value} at the best w
    n_queries: dict[str, int] = field(default_factory=dict)
    pool: int = 0
    split: str = "val"
    space: str = ""
    learned_at: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def fit_fusion_weight(text: np.ndarray, image: np.ndarray, query_sets: Sequence[QuerySet], *,
                      grid: Sequence[float] = GRID, metric: str = "ndcg@10") -> FusionFit:
    """Grid search of w in fuse(text, image, w) maximising `metric` ("ndcg@10" or "recall@10"), averaged over
    the query sets (each set counts once, whatever its size). Ties go to the weight closest to DEFAULT_WEIGHT."""
    sets = [s for s in query_sets if len(s.vectors)]
    if not sets:
        raise MmtuiError("no validation query to learn the fusion weight from",
                         "build the index from a catalog with images and titles (the val split must not be empty)")
    by_weight: dict[float, float] = {}
    per_set: dict[float, dict[str, dict[str, float]]] = {}
    for w in sorted(set(float(x) for x in grid) | {DEFAULT_WEIGHT}):
        fused = fuse(text, image, w)
        figures = {s.name: matrix_metrics(s.vectors @ fused.T, s.relevant) for s in sets}
        per_set[w] = figures
        by_weight[w] = float(np.mean([f[metric] for f in figures.values()]))
    best = max(by_weight, key=lambda w: (round(by_weight[w], 9), -abs(w - DEFAULT_WEIGHT)))
    return FusionFit(image_weight=best, metric=metric, score=by_weight[best], default_score=by_weight[DEFAULT_WEIGHT],
                     by_weight={f"{w:.2f}": round(v, 6) for w, v in by_weight.items()}, by_set=per_set[best],
                     n_queries={s.name: len(s.vectors) for s in sets}, pool=len(text))


def title_query_set(store: Any, projector: Any, base: str, pool_ids: np.ndarray) -> QuerySet:
    """The title protocol on the pool: each pool product with an image and a title vector -> its own product."""
    ids, titles = store.vectors(base, "title", pool_ids.tolist())
    img_ids, _ = store.vectors(base, "image", pool_ids.tolist())
    keep = np.isin(ids, img_ids)
    ids, titles = ids[keep], titles[keep]
    position = {int(r): i for i, r in enumerate(pool_ids)}
    relevant = np.zeros((len(ids), len(pool_ids)), bool)
    for qi, r in enumerate(ids):
        relevant[qi, position[int(r)]] = True
    vectors = projector.text(titles) if len(ids) else np.zeros((0, 0), np.float32)
    return QuerySet("title", vectors, relevant)


def text_query_set(name: str, texts: Sequence[str], relevant_ids: Sequence[Sequence[int]], pool_ids: np.ndarray,
                   encode: Callable[[list[str]], np.ndarray], projector: Any) -> QuerySet:
    """Free-text queries (e.g. attribute queries) encoded with `encode`, relevance given as rowids."""
    position = {int(r): i for i, r in enumerate(pool_ids)}
    relevant = np.zeros((len(texts), len(pool_ids)), bool)
    for qi, rel in enumerate(relevant_ids):
        for r in rel:
            if int(r) in position:
                relevant[qi, position[int(r)]] = True
    keep = relevant.any(axis=1)
    texts = [t for t, k in zip(texts, keep) if k]
    if not texts:
        return QuerySet(name, np.zeros((0, 0), np.float32), relevant[keep])
    vectors = projector.text(np.concatenate([encode(texts[i:i + 256]) for i in range(0, len(texts), 256)]))
    return QuerySet(name, vectors, relevant[keep])


def learn_fusion_weight(settings: Any, store: Any, *, encoder: Any = None, split: str = "val",
                        metric: str = "ndcg@10", grid: Sequence[float] = GRID, save: bool = True,
                        attribute_store: Any = None) -> FusionFit:
    """Learn w on `split` (pool = the split's products): title queries from cached vectors, plus attribute
    queries ("black casual shoes for men", from the catalog's fields) when an encoder is given. Saves the fit
    to meta "fusion" when `save`; the fused index picks it up at the next reindex."""
    space, projector = search_space(store, settings)
    base = store.get_meta("base_fingerprint")
    pool = np.array(sorted(r for r, s in store.splits().items() if s == split), dtype=np.int64)
    ids, text, image = product_vectors(store, projector, base, pool.tolist())
    sets = [title_query_set(store, projector, base, ids)]
    if encoder is not None:
        for name, queries in (("attribute", attribute_queries(attribute_store or store, split)),
                              ("category", category_queries(attribute_store or store, split))):
            rowid = store.rowid_of(sorted({pid for q in queries for pid in q.relevant}))
            sets.append(text_query_set(name, [q.text for q in queries],
                                       [[rowid[p] for p in q.relevant if p in rowid] for q in queries], ids,
                                       encoder.encode_texts, projector))
    fit = fit_fusion_weight(text, image, sets, grid=grid, metric=metric)
    fit.split, fit.space, fit.learned_at = split, space, time.strftime("%Y-%m-%dT%H:%M:%S")
    if save:
        store.set_meta(META_KEY, json.dumps(fit.to_json()))
    return fit
