"""SearchService: a query (text or image) -> vectors -> candidates -> fusion and filters -> Hits.

One service per process: the store, the ANN indexes and the model are opened once and reused.
The model is loaded on first use (or explicitly with `load_model()`, which the TUI calls in a worker).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MODES = ("image", "text", "lexical", "hybrid")


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

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    mode: str
    hits: list[Hit]
    query: str | None = None  # the text, or the image path for image queries
    kind: str = "text"  # "text" | "image"
    took_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"query": self.query, "kind": self.kind, "mode": self.mode, "took_ms": round(self.took_ms, 2),
                "hits": [h.to_json() for h in self.hits]}
