"""A search service's query understanding: the catalog's facets and Lexicon, made once per generation of the
products table (and when the learned settings change), and the understood ranking step SearchService.search calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class State:
    key: tuple
    facets: Any  # mmtui.catalog.facets.Facets
    understander: Any  # mmtui.query.understanding.parse.Understander, None when the catalog has no kind facet
    params: dict
    pools: dict = field(default_factory=dict)  # understood kinds/persons -> rowids (the kind list's pool)


def _key(store: Any) -> tuple:
    n, top = store.db.execute("SELECT count(*), max(rowid) FROM products").fetchone()
    return n, top, store.get_meta("understanding") or "", store.get_meta("last_build") or ""


class QueryUnderstanding:
    """The query understanding of one search service: what the catalog's facets and words are (State), made on
    first use and again when the products or the learned settings change.

    `words_off()` says whether the model has no sentence model behind it (then words are matched by spelling
    and use alone); `cache_dir` keeps the word vectors of the catalog's facet values between processes; `near(text)`
    gives the rowids of the products nearest to words in the search space (None when the model is not loaded),
    whose kinds are evidence for the kind, and `near_among(text, rowids)` those among some products
    (mmtui.query.understanding.parse.Understander)."""

    def __init__(self, store: Any, cache_dir: Path | None, words_off: Callable[[], bool] = lambda: False,
                 near: Callable[[str], Any] | None = None, near_among: Callable[[str, Any], Any] | None = None
                 ) -> None:
        self.store, self.cache_dir, self.words_off, self.near = store, cache_dir, words_off, near
        self.near_among = near_among
        self._state: State | None = None

    @property
    def made(self) -> bool:
        """Whether the state was made (lexical searches use it once it is, without waiting for it)."""
        return self._state is not None

    def reset(self) -> None:
        self._state = None

    def state(self) -> State:
        """The current State, made again when the products or the learned settings changed."""
        from mmtui.catalog.facets import load_facets
        from mmtui.query.understanding.parse import Understander, learned_params, lexicon_for

        store = self.store
        version = (store.db.execute("PRAGMA data_version").fetchone()[0], store.db.conn.total_changes)
        current = self._state
        if current is not None and current.key[0] == version:
            return current
        key = (version, _key(store))
        if current is not None and current.key[1] == key[1]:
            current.key = key
            return current
        facets = load_facets(store)
        params = learned_params(store)
        understander = None
        if "kind" in facets.codes:
            off = self.words_off() or store.get_meta("base_model") == "fake"
            lexicon = lexicon_for(store, facets, self.cache_dir, params.get("parse"), embed=False if off else None)
            understander = Understander(lexicon, self.near, self.near_among)
        self._state = State(key, facets, understander, params)
        return self._state

    def understand(self, query: str, drop=()) -> Any:
        """What the query asks for in this catalog's facets, without the parts in `drop`; None when the catalog
        has no kind facet to understand."""
        state = self.state()
        if state.understander is None:
            return None
        understood = state.understander(query)
        return understood.without(drop) if drop else understood

    def kind_pool(self, understood: Any, allowed: np.ndarray | None) -> np.ndarray:
        """Rowids of the understood kind (and person) that `allowed` allows: the kind list's pool."""
        from mmtui.query.understanding.rank import kind_rowids

        state = self.state()
        key = tuple((f, tuple(sorted(understood.parts.get(f, {}).items()))) for f in ("kind", "person"))
        pool = state.pools.get(key)
        if pool is None:
            if len(state.pools) > 256:
                state.pools.clear()
            pool = state.pools[key] = kind_rowids(state.facets, understood)
        if allowed is not None:
            # both are sorted unique rowids: a binary search (intersect1d re-sorted `allowed`, ~0.5 s at 500k rows)
            if len(allowed) > 1 and (np.diff(allowed) <= 0).any():
                allowed = np.unique(allowed)
            at = np.minimum(np.searchsorted(allowed, pool), max(len(allowed) - 1, 0))
            pool = pool[allowed[at] == pool] if len(allowed) else pool[:0]
        return pool


KindSearch = Callable[[np.ndarray], list]  # pool rowids -> [(rowid, score)] nearest to the query, best first


def kind_list(understanding: QueryUnderstanding, understood: Any, allowed: np.ndarray | None,
              kind_search: KindSearch) -> list:
    """The nearest products of the understood kind (and person) to the query (kind_search over the pool)."""
    pool = understanding.kind_pool(understood, allowed)
    return kind_search(pool) if len(pool) else []


def understood_hits(understanding: QueryUnderstanding, query: str, understood: Any, ranked: dict,
                    weights: dict | None, k: int, allowed: np.ndarray | None, rrf_k: int, kind_search: KindSearch
                    ) -> list[tuple[int, float, dict, dict]]:
    """Hybrid candidates + the nearest products of the understood kind (and person), fused by weighted RRF (as
    mmtui.query.hybrid.fuse_ranked does, with rrf_k) and re-ranked by mmtui.query.understanding.rank:
    [(rowid, score, signals, shares)]. Signals and shares are worked out for the k kept only."""
    from mmtui.query.understanding.rank import ranking_weights, scores

    state = understanding.state()
    w = ranking_weights(state.params)
    weights = dict(weights or {})
    if w["list"] > 0:
        extra = kind_list(understanding, understood, allowed, kind_search)
        if extra:
            ranked = {**ranked, "kind": extra}
            weights["kind"] = w["list"]
    fused: dict[int, float] = {}
    for name, hits in ranked.items():
        weight = float(weights.get(name, 0.0))
        if weight <= 0:
            continue
        for rank, (rowid, _) in enumerate(hits, start=1):
            fused[rowid] = fused.get(rowid, 0.0) + weight / (rrf_k + rank)
    if not fused:
        return []
    rowids = np.fromiter(fused.keys(), np.int64, len(fused))
    best = sum(v for v in weights.values() if v > 0) / (rrf_k + 1)
    base = np.fromiter(fused.values(), np.float64, len(fused)) / best
    total, bonus = scores(rowids, base, state.facets, understood, w)
    pinned = pinned_rowid(understanding.store, query, ranked)
    if pinned is not None and pinned in fused:  # first, with a score just above the rest (finite: JSON, display)
        total[int(np.flatnonzero(rowids == pinned)[0])] = float(total.max()) + 1e-6
    keep = np.argsort(-total, kind="stable")[:k]
    chosen = {int(rowids[i]): i for i in keep}
    signals: dict[int, dict[str, float]] = {r: {} for r in chosen}
    parts: dict[int, dict[str, float]] = {r: {} for r in chosen}
    for name, hits in ranked.items():
        weight = float(weights.get(name, 0.0))
        for rank, (rowid, score) in enumerate(hits, start=1):
            if rowid in chosen:
                signals[rowid][name] = round(float(score), 4)
                if weight > 0:
                    parts[rowid][name] = weight / (rrf_k + rank)
    out = []
    for rowid, i in chosen.items():
        signals[rowid]["understood"] = round(float(bonus[i]), 4)
        out.append((rowid, float(total[i]), signals[rowid], _shares(parts[rowid])))
    return out


def pinned_rowid(store: Any, query: str, ranked: dict) -> int | None:
    """The words' best match when the query spells out its title (rank.spells_title): it stays first."""
    from mmtui.query.understanding.rank import spells_title

    top = (ranked.get("lexical") or [None])[0]
    if top is None:
        return None
    rows = store.rows([top[0]])
    return int(top[0]) if rows and spells_title(query, rows[0].get("title") or "") else None


def _shares(parts: dict[str, float]) -> dict[str, float]:
    """Each signal's share of the fused (RRF) part of the score, rounded, adding up to exactly 1."""
    total = sum(parts.values())
    if total <= 0:
        return {}
    shares = {name: round(c / total, 4) for name, c in parts.items()}
    top = max(shares, key=shares.get)
    shares[top] = round(shares[top] + 1.0 - sum(shares.values()), 4)
    return shares
