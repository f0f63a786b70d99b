"""Ranking that respects what a query was understood to ask for (mmtui.query.understanding.parse).

When a query names a kind of product, the hybrid candidates get one more candidate list — the nearest products of
that kind (and person) by the query's own vector, so there are enough of them to choose from — and are re-ordered by

    score(p) = base(p) + w_kind * kind(p) + w_person * person(p) + w_colour * colour(p) + w_brand * brand(p)

base(p): p's fused (weighted RRF) score over the most any product can get (0..1); kind(p) etc.: the weight the
understanding gives p's value (0..1; a "unisex" product half-matches a query for men or women). The weights make a
product of the right kind for the right person outrank one that only has the colour; they are learned on the
catalog's own generated queries (mmtui.train.weights.understanding) and kept in meta "understanding". A query that names no
kind is ranked as before. Price phrases are filters (price_filters), whatever the mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmtui.catalog.facets import FACETS, Facets, singular, words

DEFAULT_WEIGHTS = {"kind": 0.5, "person": 0.5, "colour": 0.25, "brand": 0.1, "list": 1.0}  # until learned
UNISEX = "unisex"
UNISEX_CREDIT = 0.5
LIST_MIN = 0.5  # values weighing at least this much of the best one make the kind list


def ranking_weights(params: dict | None) -> dict[str, float]:
    weights = dict(DEFAULT_WEIGHTS)
    for key, value in ((params or {}).get("weights") or {}).items():
        if key in weights:
            weights[key] = float(value)
    return weights


def match(facets: Facets, understanding: Any, rowids: np.ndarray) -> dict[str, np.ndarray]:
    """facet -> (len(rowids),) how well each product's value fits what was understood, 0..1."""
    out: dict[str, np.ndarray] = {}
    for facet in FACETS:
        wanted = understanding.parts.get(facet)
        if not wanted or facet not in facets.codes:
            continue
        index = facets.value_index(facet)
        table = np.zeros(len(facets.values[facet]) + 1, np.float32)  # last slot: no value (code -1)
        for value, w in wanted.items():
            table[index[value.lower()]] = w
        if facet == "person" and UNISEX in index and UNISEX not in {v.lower() for v in wanted}:
            table[index[UNISEX]] = UNISEX_CREDIT * max(wanted.values())
        codes = facets.codes[facet]
        safe = np.clip(rowids, 0, len(codes) - 1)
        code = np.where(rowids < len(codes), codes[safe], -1)
        out[facet] = table[code]
    return out


def kind_rowids(facets: Facets, understanding: Any) -> np.ndarray:
    """The products of the understood kinds (and persons, unisex included): the extra candidate list's pool."""
    keep = np.ones(len(facets.codes["kind"]), bool)
    for facet in ("kind", "person"):
        wanted = understanding.parts.get(facet)
        if not wanted or facet not in facets.codes:
            continue
        index = facets.value_index(facet)
        top = max(wanted.values())
        ok = {index[v.lower()] for v, w in wanted.items() if w >= LIST_MIN * top}
        if facet == "person" and UNISEX in index:
            ok.add(index[UNISEX])
        keep &= np.isin(facets.codes[facet], list(ok))
    return np.flatnonzero(keep).astype(np.int64)


PIN_MIN_WORDS = 4  # a query of this many content words or more, all in one title, is that title


def spells_title(query: str, title: str) -> bool:
    """Whether the query spells out a product's title: at least PIN_MIN_WORDS content words, every one of them in
    the title. Such a query asks for that product, not for its kind: it stays first whatever the understanding
    adds (titles, model names and pasted product names lose nothing to it)."""
    from mmtui.query.understanding.parse import STOP_WORDS

    asked = {singular(w) for w in words(query)} - STOP_WORDS
    return len(asked) >= PIN_MIN_WORDS and asked <= {singular(w) for w in words(title)}


def scores(rowids: np.ndarray, base: np.ndarray, facets: Facets, understanding: Any,
           weights: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(total, facet part) per candidate: base (0..1) + the weighted facet matches."""
    bonus = np.zeros(len(rowids))
    for facet, fit in match(facets, understanding, rowids).items():
        bonus += weights.get(facet, 0.0) * fit
    return base + bonus, bonus


def rerank(merged: list[tuple[int, float, dict, dict]], facets: Facets, understanding: Any,
           weights: dict[str, float], best_possible: float) -> list[tuple[int, float, dict, dict]]:
    """Re-order fused hits [(rowid, score, signals, shares)] by base + facet matches; signals gain "understood"
    (the facet part of the score). The kind list is the signal "kind" in signals and shares."""
    if not merged:
        return merged
    rowids = np.array([r for r, *_ in merged], np.int64)
    base = np.array([s for _, s, *_ in merged], np.float64) / max(best_possible, 1e-12)
    total, bonus = scores(rowids, base, facets, understanding, weights)
    order = np.argsort(-total, kind="stable")
    return [(merged[i][0], float(total[i]), {**merged[i][2], "understood": round(float(bonus[i]), 4)}, merged[i][3])
            for i in order]


def price_filters(price: tuple[float | None, float | None] | None) -> list:
    """(low, high) -> [Filter price>=low, Filter price<=high]."""
    from mmtui.store.filters import Filter

    if price is None:
        return []
    low, high = price
    out = []
    if low is not None:
        out.append(Filter("price", ">=", float(low)))
    if high is not None:
        out.append(Filter("price", "<=", float(high)))
    return out
