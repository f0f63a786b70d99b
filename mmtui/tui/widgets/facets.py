"""Facets and mode: category, colour, gender (with counts), price range, and the search mode."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select

from mmtui.store.filters import Filter
from mmtui.query.service import MODES

FACET_FIELDS = ("category", "colour", "gender")


def facet_options(values: list[tuple[str, int]]) -> list[tuple[str, str]]:
    """Select options "Value (count)" -> value, most frequent first."""
    ordered = sorted(values, key=lambda vc: (-vc[1], str(vc[0])))
    return [(f"{value} ({count:,})", str(value)) for value, count in ordered if value not in (None, "")]


def price_filters(low: str, high: str) -> list[Filter]:
    """price>=low and price<=high for whichever bound is a number."""
    out = []
    for text, op in ((low, ">="), (high, "<=")):
        try:
            out.append(Filter("price", op, float(text)))
        except ValueError:
            continue
    return out


class FacetPanel(VerticalScroll):
    """Posts `FacetPanel.Changed` when the mode or any filter changes."""

    class Changed(Message):
        pass

    class Ready(Message):
        """Mounted: its choices can be filled (the screen mounts the panel the first time it is shown)."""

    def __init__(self, mode: str = "hybrid", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._initial_mode = mode
        self._quiet = False

    def on_mount(self) -> None:
        self.post_message(self.Ready())

    def compose(self) -> ComposeResult:
        yield Label("Mode", classes="facet-label")
        yield Select([(m, m) for m in MODES], value=self._initial_mode, allow_blank=False, id="mode", compact=True)
        for field in FACET_FIELDS:
            yield Label(field.capitalize(), classes="facet-label")
            yield Select([], prompt=f"any {field}", id=f"facet-{field}", compact=True)
        yield Label("Price", classes="facet-label", id="price-label")
        with Horizontal(id="price-range"):
            yield Input(placeholder="min", id="price-min", type="number", compact=True)
            yield Input(placeholder="max", id="price-max", type="number", compact=True)
        yield Button("Clear filters", id="clear-filters", variant="default", compact=True)

    def set_facets(self, facets: dict[str, Any]) -> None:
        """Fill the choices from service.facets(); current choices are kept when still offered."""
        self._quiet = True
        try:
            for field in FACET_FIELDS:
                select = self.query_one(f"#facet-{field}", Select)
                options = facet_options(list(facets.get(field) or []))
                old = select.value
                select.set_options(options)
                if old is not Select.NULL and any(v == old for _, v in options):
                    select.value = old
            price = facets.get("price")
            shown = bool(price)
            self.query_one("#price-range").display = shown
            self.query_one("#price-label").display = shown
            if price:
                low, high = price
                self.query_one("#price-min", Input).placeholder = f"min {low:,.0f}"
                self.query_one("#price-max", Input).placeholder = f"max {high:,.0f}"
        finally:
            self._quiet = False

    @property
    def mode(self) -> str:
        value = self.query_one("#mode", Select).value
        return str(value) if value is not Select.NULL else "hybrid"

    @mode.setter
    def mode(self, value: str) -> None:
        self.query_one("#mode", Select).value = value

    def filters(self) -> list[Filter]:
        out = []
        for field in FACET_FIELDS:
            value = self.query_one(f"#facet-{field}", Select).value
            if value is not Select.NULL:
                out.append(Filter(field, "=", str(value)))
        out += price_filters(self.query_one("#price-min", Input).value, self.query_one("#price-max", Input).value)
        return out

    def set_filter(self, field: str, value: str | None) -> None:
        select = self.query_one(f"#facet-{field}", Select)
        select.value = Select.NULL if value is None else value

    def clear(self) -> None:
        for field in FACET_FIELDS:
            self.query_one(f"#facet-{field}", Select).clear()
        self.query_one("#price-min", Input).value = ""
        self.query_one("#price-max", Input).value = ""

    @on(Select.Changed)
    @on(Input.Changed)
    def _changed(self, event: Message) -> None:
        event.stop()
        if not self._quiet:
            self.post_message(self.Changed())

    @on(Button.Pressed, "#clear-filters")
    def _clear_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.clear()
