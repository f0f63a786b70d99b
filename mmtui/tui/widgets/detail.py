"""The detail pane: a large image and every attribute of the highlighted product."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from mmtui.query.service import Hit
from mmtui.tui.widgets.results import format_price
from mmtui.tui.widgets.thumbnail import Thumbnail

HIDDEN_FIELDS = {"image_path", "image_status", "attributes", "signals", "rank", "score", "text", "row", "source",
                 "image_ref", "image_size"}


def is_bookkeeping(key: str) -> bool:
    """Store internals (row ids, content hashes, mtimes) are not product attributes."""
    return key in HIDDEN_FIELDS or key.startswith("rowid") or key.endswith(("_sha", "_ns"))


def attribute_rows(hit: Hit, product: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Every stored field and attribute, in a stable order, empty values left out."""
    data: dict[str, Any] = {"id": hit.id, "title": hit.title, "category": hit.category, "colour": hit.colour,
                            "gender": hit.gender, "brand": hit.brand, "price": format_price(hit.price)}
    if product:
        attrs = product.get("attributes") or {}
        for key, value in product.items():
            if not is_bookkeeping(key):
                data[key] = format_price(value) if key == "price" and isinstance(value, (int, float)) else value
        for key, value in (attrs.items() if isinstance(attrs, dict) else []):
            if not is_bookkeeping(key):
                data.setdefault(key, value)
    for key, value in (hit.attributes or {}).items():
        if not is_bookkeeping(key):
            data.setdefault(key, value)
    if hit.image_status and hit.image_status != "ok":
        data["image"] = hit.image_status
    return [(k, str(v)) for k, v in data.items() if v not in (None, "", [], {})]


class DetailPane(VerticalScroll):
    """Shows one hit; the screen loads the product record and the image in workers."""

    DEFAULT_CSS = """
    DetailPane > #detail-image { width: 28; height: 14; margin: 0 0 1 0; }
    """

    def __init__(self, image_class: Any | None, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.image_class = image_class
        self.hit: Hit | None = None
        self.rows: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        if self.image_class is not None:
            yield Thumbnail(self.image_class, id="detail-image")
        yield Static(Text("Highlight a result to see its details.", style="dim"), id="detail-text")

    def show(self, hit: Hit | None, product: dict[str, Any] | None = None) -> None:
        self.hit = hit
        text = self.query_one("#detail-text", Static)
        self.rows = []
        if hit is None:
            text.update(Text("Highlight a result to see its details.", style="dim"))
            self.show_image(None)
            return
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", max_width=12, overflow="fold")
        table.add_column(overflow="fold")
        self.rows = attribute_rows(hit, product)
        for key, value in self.rows:
            table.add_row(key.replace("_", " "), value)
        scores = "  ".join(f"{k} {v:.3f}" for k, v in hit.signals.items())
        table.add_row("score", f"{hit.score:.3f}  ({scores})" if scores else f"{hit.score:.3f}")
        text.update(table)

    def show_image(self, image: Any | None) -> None:
        for thumb in self.query("#detail-image").results(Thumbnail):
            thumb.show(image)
