"""Hybrid ranking: lexical (BM25), image, text and fused signals combined by weighted reciprocal rank fusion.

    fused score(p) = sum over signals s of  weight_s / (RRF_K + rank_s(p))      (rank from 1; absent -> 0)

The weights are learned on the validation split (mmtui.train.weights.hybrid.learn_hybrid_weights: a grid over each
signal's weight, maximising nDCG@10 over title queries and attribute queries) and kept in the store's meta under
"hybrid";
until then every signal of DEFAULT_SIGNALS weighs 1 (plain RRF). Each hit carries the share of each signal in
its fused score (`shares`, summing to 1), next to the raw per-signal scores (`signals`).
"""

from __future__ import annotations

import json
from typing import Any

RRF_K = 60
SIGNALS = ("lexical", "image", "text", "fused")
DEFAULT_SIGNALS = ("lexical", "image", "text")  # plain RRF (the fallback) over these, as hybrid always did
META_KEY = "hybrid"
CANDIDATES = 100

Ranked = dict[str, list[tuple[int, float]]]  # signal -> [(rowid, score)] best first


def default_weights() -> dict[str, float]:
    return {s: 1.0 for s in DEFAULT_SIGNALS}


def hybrid_weights(store: Any) -> tuple[dict[str, float], bool]:
    """(weights, learned?): the learned weights from meta "hybrid", else equal weights (plain RRF)."""
    raw = store.get_meta(META_KEY)
    if raw:
        try:
            info = json.loads(raw)
            weights = {str(k): float(v) for k, v in info["weights"].items() if k in SIGNALS}
            if any(v > 0 for v in weights.values()):
                return weights, True
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    return default_weights(), False


def fuse_ranked(ranked: Ranked, k: int, weights: dict[str, float] | None = None
                ) -> list[tuple[int, float, dict[str, float], dict[str, float]]]:
    """Weighted RRF of ranked lists -> [(rowid, fused score, {signal: raw score}, {signal: share})], best first.

    A signal missing from `weights` weighs 0 (None: every signal weighs 1). Shares are each signal's part of the
    fused score and add up to 1 for every hit with a positive score. Ties keep first-seen order."""
    fused: dict[int, float] = {}
    parts: dict[int, dict[str, float]] = {}
    raw = {name: dict(hits) for name, hits in ranked.items()}  # each signal's scores, read for the top k only
    for name, hits in ranked.items():
        w = 1.0 if weights is None else float(weights.get(name, 0.0))
        if w <= 0:
            continue  # a signal that weighs nothing neither adds candidates nor moves them
        for rank, (rowid, score) in enumerate(hits, start=1):
            contribution = w / (RRF_K + rank)
            fused[rowid] = fused.get(rowid, 0.0) + contribution
            parts.setdefault(rowid, {})[name] = contribution
    best = sorted(fused.items(), key=lambda item: -item[1])[:k]
    out = []
    for rowid, score in best:
        own = parts.get(rowid, {})
        shares = {name: round(c / score, 4) for name, c in own.items()} if score > 0 else {}
        signals = {name: round(float(scores[rowid]), 4) for name, scores in raw.items() if rowid in scores}
        out.append((rowid, score, signals, _fix_sum(shares)))
    return out


def _fix_sum(shares: dict[str, float]) -> dict[str, float]:
    """Rounded shares that add up to exactly 1 (the rounding error goes to the largest share)."""
    if not shares:
        return shares
    top = max(shares, key=shares.get)
    shares[top] = round(shares[top] + 1.0 - sum(shares.values()), 4)
    return shares
