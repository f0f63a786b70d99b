"""The results list: one row per hit with thumbnail, title, attributes and the score of each signal."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import ListItem, ListView, Static

from ...search import Hit
from .thumbnail import Thumbnail

SIGNAL_NAMES = {"image": "img", "text": "txt", "lexical": "lex"}


def format_price(price: float | None) -> str:
    if price is None:
        return ""
    return f"{price:,.0f}" if float(price).is_integer() else f"{price:,.2f}"


def facts_line(hit: Hit) -> str:
    """category · colour · gender · brand · price, skipping what is empty."""
    parts = [hit.category, hit.colour, hit.gender, hit.brand, format_price(hit.price)]
    return " · ".join(p for p in parts if p)


def signals_text(hit: Hit) -> Text:
    text = Text()
    text.append(f"{hit.score:.3f}", style="bold")
    for name, value in hit.signals.items():
        text.append("  ")
        text.append(SIGNAL_NAMES.get(name, name), style="dim")
        text.append(f" {value:.2f}")
    return text


def hit_text(hit: Hit) -> Text:
    title = Text(f"{hit.rank:>2} ", style="dim")
    title.append(hit.title or hit.id, style="bold")
    lines = [title, Text(facts_line(hit), style="italic"), signals_text(hit)]
    out = Text("\n").join(lines)
    out.no_wrap = True
    out.overflow = "ellipsis"
    return out


class ResultItem(ListItem):
    """One hit. `hit` is kept so actions (details, more like this) know the product."""

    def __init__(self, hit: Hit, image_class: Any | None) -> None:
        super().__init__(id=None)
        self.hit = hit
        self.image_class = image_class

    def compose(self) -> ComposeResult:
        with Horizontal(classes="result-row"):
            if self.image_class is not None:
                yield Thumbnail(self.image_class, has_image=bool(self.hit.image_path), classes="thumb")
            yield Static(hit_text(self.hit), classes="result-text")

    @property
    def thumbnail(self) -> Thumbnail | None:
        found = self.query(Thumbnail)
        return found.first() if found else None


class ResultsList(ListView):
    """A ListView of ResultItem; `hits` are in rank order."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Details"),
        Binding("m", "screen.more_like_this", "More like this"),
    ]

    async def set_hits(self, hits: list[Hit], image_class: Any | None) -> None:
        """Replace the rows; returns once they are mounted (so thumbnails can be drawn into them)."""
        await self.clear()
        if hits:
            await self.extend([ResultItem(h, image_class) for h in hits])
            self.index = 0

    @property
    def current_hit(self) -> Hit | None:
        item = self.highlighted_child
        return item.hit if isinstance(item, ResultItem) else None
