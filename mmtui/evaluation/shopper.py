"""Shopper-phrased queries measured mode by mode (`mmtui eval --compare-modes`, benchmarks/shopper_queries.py).

Sets (each query's relevance: grade 1 = right kind for the right person, 2 = and right colour; mmtui.catalog.phrasings):
- "shopper": held-out phrasings of the test split's (kind, person, colour) groups: title nouns for kinds, other
  words for the person, other word orders. The ranking never learned from these phrasings.
- "catalog": the same groups in the catalog's own words ("black casual shoes for men").
- any queries file given (e.g. a hand-written one), scored the same way.
Rows: each plain mode, hybrid as it ranked before query understanding ("hybrid, words only"), and the default
(hybrid with understanding). Each query is run through SearchService.search, as a user's would be.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from mmtui.evaluation.evaluate import EvalQuery
from mmtui.metrics import ndcg_at_k, precision_at_k, recall_at_k

ROWS = (("lexical", "lexical (BM25)", False), ("text", "text vector", False), ("image", "image vector", False),
        ("fused", "fused vector", False), ("hybrid", "hybrid, words only (before)", False),
        ("hybrid", "hybrid + understanding (default)", True))


@dataclass
class ShopperReport:
    pool: str
    model: str
    n_queries: dict[str, int]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shopper_query_sets(store: Any, split: str = "test", *, limit: int | None = 300, seed: int = 0,
                       pool: str = "catalog") -> dict[str, list[EvalQuery]]:
    """{"shopper": held-out phrasings, "catalog": the catalog's own words} for `split`'s groups."""
    from mmtui.catalog.phrasings import catalog_phrasing, phrased_queries

    held = phrased_queries(store, split, "heldout", pool=pool, limit=limit, seed=seed)
    own = [catalog_phrasing(q) for q in phrased_queries(store, split, "heldout", pool=pool, limit=limit, seed=seed)]
    return {"shopper": [EvalQuery(relevant=q.relevant, text=q.text) for q in held],
            "catalog": [EvalQuery(relevant=q.relevant, text=q.text) for q in own]}


def score_mode(service: Any, queries: Sequence[EvalQuery], mode: str, understand: bool, filters=None,
               k: int = 10) -> dict[str, float]:
    """Mean P@10, nDCG@10 and R@10 of the queries in one mode, and the p50 latency (ms)."""
    p, n, r, took = [], [], [], []
    for q in queries:
        result = service.search(q.text, k=k, mode=mode, filters=filters, understand=understand)
        ranked = [h.id for h in result.hits]
        p.append(precision_at_k(ranked, q.relevant, k))
        n.append(ndcg_at_k(ranked, q.relevant, k))
        r.append(recall_at_k(ranked, q.relevant, k))
        took.append(result.took_ms)
    if not p:
        return {}
    return {"p@10": float(np.mean(p)), "ndcg@10": float(np.mean(n)), "recall@10": float(np.mean(r)),
            "ms_p50": float(np.median(took))}


def compare_shopper(service: Any, sets: dict[str, Sequence[EvalQuery]], *, pool: str = "catalog",
                    split: str = "test", rows=ROWS, progress: Any = None) -> ShopperReport:
    """Every row of ROWS on every set. pool "split": searches see only `split`'s products (a --where split=)."""
    from mmtui.store.filters import Filter

    filters = [Filter("split", "=", split)] if pool == "split" else None
    service.load_model()
    out_rows = []
    for mode, label, understand in rows:
        if mode == "fused" and "fused" not in service.indexes:
            continue
        row: dict[str, Any] = {"mode": mode, "label": label, "understanding": understand}
        for name, queries in sets.items():
            figures = score_mode(service, queries, mode, understand, filters)
            for key, value in figures.items():
                row[f"{name}/{key}"] = round(value, 4)
        out_rows.append(row)
        if progress is not None:
            progress(label)
    best: dict[str, Any] = {"mode": "", "label": "best possible", "understanding": None}  # P@10 < 1 where < 10 relevant
    for name, queries in sets.items():
        if queries:
            best[f"{name}/p@10"] = round(float(np.mean([min(10, sum(g >= 1 for g in q.relevant.values())) / 10
                                                        for q in queries])), 4)
            best[f"{name}/ndcg@10"] = best[f"{name}/recall@10"] = 1.0
    out_rows.append(best)
    examples = []
    for q in list(sets.get("shopper", []))[:5]:
        u = service.understand(q.text)
        examples.append({"query": q.text, "understood": u.label() if u is not None else ""})
    return ShopperReport(pool=pool if pool == "catalog" else f"split:{split}", model=getattr(service, "model_name", "?"),
                         n_queries={n: len(q) for n, q in sets.items()}, rows=out_rows, examples=examples)


def spec_queries(store: Any, path: str | Path, split: str | None = None) -> list[EvalQuery]:
    """Queries written by hand as facet specs, one JSON object a line: {"query": "ladies black watches",
    "kind": ["Watches"], "person": ["Women"] or null, "colour": ["Black"] or null}. Relevance over the catalog (or
    `split`'s products): grade 1 = one of the kinds for one of the persons (unisex counts for men and women),
    grade 2 = and one of the colours (every right product is grade 2 when no colour is asked)."""
    from mmtui.catalog.facets import kind_of

    sql = "SELECT id, article_type, category, gender, colour FROM products"
    params: list = []
    if split is not None:
        sql += " WHERE split = ?"
        params.append(split)
    products = [(str(r[0]), kind_of(r[1], r[2]).lower(), str(r[3] or "").lower(), str(r[4] or "").lower())
                for r in store.db.execute(sql, params).fetchall()]
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        spec = json.loads(line)
        kinds = {k.lower() for k in spec["kind"]}
        persons = {p.lower() for p in spec.get("person") or []}
        if persons & {"men", "women"}:
            persons.add("unisex")
        colours = {c.lower() for c in spec.get("colour") or []}
        relevant = {pid: (2 if not colours or colour in colours else 1) for pid, kind, person, colour in products
                    if kind in kinds and (not persons or person in persons)}
        if relevant:
            out.append(EvalQuery(relevant=relevant, text=spec["query"]))
    return out
