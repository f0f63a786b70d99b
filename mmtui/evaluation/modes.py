"""`mmtui eval --compare-modes`: how each search mode does on the same queries of one catalog.

Rows: text-only (lexical BM25; the product-text vector), + image (naive: the image vector alone; RRF of text and
image vectors), + fusion (the fused product vector), and hybrid (plain RRF; learned weights). Columns: R@10 and
nDCG@10 per query set: "title" (each title -> its own product) and "attribute" (queries like
"black casual shoes for men" from the catalog's fields, relevant = every product with that type, colour and
gender). Every query is run once per signal; the rows are fusions of the same candidate lists, so they differ only
by how the signals are combined. The pool is one split's products (test by default), as in `mmtui eval --split`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from mmtui.index.fused import fusion_info
from mmtui.query.hybrid import default_weights, hybrid_weights
from mmtui.catalog.queries import EvalQuery, attribute_queries, category_queries, split_queries
from mmtui.train.weights.hybrid import RankedQuery, ranked_queries, score_weightings

ROWS: tuple[tuple[str, str, dict[str, float] | None], ...] = (
    ("text-only", "lexical (BM25)", {"lexical": 1.0}),
    ("text-only", "text vector", {"text": 1.0}),
    ("+ image (naive)", "image vector", {"image": 1.0}),
    ("+ image (naive)", "RRF text + image", {"text": 1.0, "image": 1.0}),
    ("+ fusion", "fused vector", {"fused": 1.0}),
    ("hybrid", "RRF, equal weights", None),  # default_weights()
    ("hybrid", "learned weights", {}),  # meta "hybrid"; skipped when nothing was learned
)
SIGNAL_ORDER = ("lexical", "image", "text", "fused")


@dataclass
class ModesReport:
    pool: str  # "split:test" or "catalog"
    pool_size: int
    model: str
    n_queries: dict[str, int]
    rows: list[dict[str, Any]]  # group, label, weights, <set>/recall@10, <set>/ndcg@10
    fusion_weight: float | None = None
    tags: bool = False  # whether products carried enrichment tags (lexical sees them)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_query_sets(store: Any, split: str = "test", *, attribute_store: Any = None) -> dict[str, list[EvalQuery]]:
    """Title queries, attribute queries and category queries of `split` (the sets the catalog's fields allow).
    `attribute_store`: generate the attribute and category queries (and their relevance) from another store of the
    same catalog, e.g. the full one when `store` lost its colours."""
    sets = {"title": split_queries(store, split), "attribute": attribute_queries(attribute_store or store, split),
            "category": category_queries(attribute_store or store, split)}
    return {name: queries for name, queries in sets.items() if queries or name == "title"}


def compare_modes(service: Any, query_sets: dict[str, Sequence[EvalQuery]], *, split: str | None = "test",
                  progress: Any = None) -> ModesReport:
    """Score every row of ROWS on every query set (pool: the split's products; None: the whole catalog)."""
    store = service.store
    pool = None
    if split is not None:
        pool = np.array(sorted(r for r, s in store.splits().items() if s == split), dtype=np.int64)
    queries: list[RankedQuery] = []
    counts: dict[str, int] = {}
    for name, qs in query_sets.items():
        texts = [q for q in qs if q.text]
        rowid = store.rowid_of(sorted({pid for q in texts for pid in q.relevant if q.relevant[pid] >= 1}))
        relevant = [[rowid[p] for p, g in q.relevant.items() if g >= 1 and p in rowid] for q in texts]
        if pool is not None:
            inside = set(pool.tolist())
            relevant = [[r for r in rel if r in inside] for rel in relevant]
        keep = [i for i, rel in enumerate(relevant) if rel]
        counts[name] = len(keep)
        queries += ranked_queries(service, name, [texts[i].text for i in keep], [relevant[i] for i in keep],
                                  pool=pool, progress=progress)
    learned, was_learned = hybrid_weights(store)
    notes = []
    if "fused" not in service.indexes:
        notes.append("no fused index: run build-index again to add it")
    rows = []
    for group, label, weights in ROWS:
        if weights is None:
            weights = default_weights()
        elif weights == {}:
            if not was_learned:
                notes.append("no learned hybrid weights: run `mmtui train hybrid` (row left out)")
                continue
            weights = learned
        signals = [s for s in SIGNAL_ORDER if weights.get(s, 0) > 0]
        if any(s != "lexical" and s not in service.indexes for s in signals):
            continue
        vector = np.array([[weights.get(s, 0.0) for s in SIGNAL_ORDER]])
        figures = score_weightings(queries, SIGNAL_ORDER, vector)
        row = {"group": group, "label": label, "weights": {s: weights[s] for s in signals}}
        for name in query_sets:
            for metric in ("recall@10", "ndcg@10"):
                value = figures.get(f"{name}/{metric}")
                row[f"{name}/{metric}"] = round(float(value[0]), 4) if value is not None else None
        rows.append(row)
    info = fusion_info(store)
    tagged = store.db.execute("SELECT count(*) FROM products WHERE coalesce(tags, '') != ''").fetchone()[0]
    return ModesReport(pool=f"split:{split}" if split else "catalog", pool_size=len(pool) if pool is not None
                       else store.product_count(), model=getattr(service, "model_name", "?"), n_queries=counts,
                       rows=rows, fusion_weight=(info or {}).get("image_weight", None), tags=tagged > 0, notes=notes)
