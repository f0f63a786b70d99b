"""What a search returns: Hit (one product, with each signal's score) and SearchResult (a query's hits); the modes
and the bound on k.

Kept apart from mmtui.query.service so that the modules the service calls (mmtui.query.regions) can build
results without importing the service.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MODES = ("image", "text", "lexical", "hybrid", "fused")


@dataclass
class Hit:
    id: str
    title: str
    score: float
    rank: int = 0
    category: str = ""
    colour: str = ""
    gender: str = ""
    brand: str = ""
    price: float | None = None
    image_path: str | None = None  # a local, validated image file, or None (text-only product)
    image_status: str = "ok"
    signals: dict[str, float] = field(default_factory=dict)  # per-signal score, e.g. {"image": 0.31}
    attributes: dict[str, Any] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)  # each signal's share of the fused score (sums to 1)
    tags: list[str] = field(default_factory=list)  # zero-shot image tags (mmtui.build.enrich), e.g. ["blue", "striped"]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    mode: str
    hits: list[Hit]
    query: str | None = None  # the text, or the image path for image queries
    kind: str = "text"  # "text" | "image"
    took_ms: float = 0.0
    understood: Any = None  # a text query's mmtui.query.understanding.parse.Understanding (None: nothing to read)
    notes: list[str] = field(default_factory=list)  # what was left out or matched nothing, for the user
    parts: Any = None  # mmtui.query.compound.Compound of a query searched with compound=True
    facets: Any = None  # mmtui.query.arrange.ResultFacets of its hits, when asked for

    def to_json(self) -> dict[str, Any]:
        out = {"query": self.query, "kind": self.kind, "mode": self.mode, "took_ms": round(self.took_ms, 2),
               "hits": [h.to_json() for h in self.hits]}
        if self.parts is not None:
            out["parts"] = self.parts.to_json()
        if self.facets is not None:
            out["facets"] = self.facets.to_json()
        if self.understood is not None:
            out["understood"] = self.understood.to_json()
        if self.notes:
            out["notes"] = list(self.notes)
        return out


MAX_K = 10_000


def _check_k(k) -> None:
    """k is a whole number of hits from 1 to MAX_K (hybrid used to return every candidate for k=-1)."""
    import numbers

    from mmtui.errors import QueryError

    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= MAX_K:
        raise QueryError(f"k={k!r} is not a number of results", f"ask for 1 to {MAX_K:,} results, e.g. -k 10")
