"""The filter panel: the search mode, the results' facets (kind, colour, person, brand, price band, each value with
how many of the current results have it: choosing one narrows the results in place), the order, and a price range
(a filter the search itself applies)."""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Button, Input, Label, Select

from mmtui.store.filters import Filter
from mmtui.query.service import MODES

FACET_FIELDS = ("kind", "colour", "person", "brand", "price")  # counted over the results (mmtui.query.arrange)
FACET_LABELS = {"kind": "Kind", "colour": "Colour", "person": "For", "brand": "Brand", "price": "Price band"}
SORT_LABELS = {"relevance": "relevance", "price": "price: low to high", "-price": "price: high to low"}


def facet_options(values: list[tuple[str, int]], ordered: bool = False) -> list[tuple[str, str]]:
    """Select options "Value (count)" -> value, most frequent first (`ordered`: in the order given)."""
    if not ordered:
        values = sorted(values, key=lambda vc: (-vc[1], str(vc[0])))
    return [(f"{value} ({count:,})", str(value)) for value, count in values if value not in (None, "")]


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
        self._posted: tuple | None = None  # the state last reported (Changed)

    def on_mount(self) -> None:
        self.post_message(self.Ready())

    def compose(self) -> ComposeResult:
        yield Label("Mode", classes="facet-label")
        yield Select([(m, m) for m in MODES], value=self._initial_mode, allow_blank=False, id="mode", compact=True)
        yield Label("Sort", classes="facet-label")
        yield Select([(label, key) for key, label in SORT_LABELS.items()], value="relevance", allow_blank=False,
                     id="sort", compact=True)
        yield Label("In these results", classes="facet-label", id="counted-label")
        for field in FACET_FIELDS:
            yield Label(FACET_LABELS[field], classes="facet-label", id=f"label-{field}")
            yield Select([], prompt=f"any {field}", id=f"facet-{field}", compact=True)
        yield Label("Price range (search)", classes="facet-label", id="price-label")
        with Horizontal(id="price-range"):
            yield Input(placeholder="min", id="price-min", type="number", compact=True)
            yield Input(placeholder="max", id="price-max", type="number", compact=True)
        yield Button("Clear filters", id="clear-filters", variant="default", compact=True)

    def set_facets(self, facets: dict[str, Any]) -> None:
        """The catalog's price range (service.facets()) as the price inputs' placeholders."""
        price = facets.get("price")
        self.query_one("#price-range").display = bool(price)
        self.query_one("#price-label").display = bool(price)
        if price:
            low, high = price
            self.query_one("#price-min", Input).placeholder = f"min {low:,.0f}"
            self.query_one("#price-max", Input).placeholder = f"max {high:,.0f}"

    def set_result_facets(self, counted: Any) -> None:
        """Fill the facets with their counts over the current results (mmtui.query.arrange.ResultFacets; None: no
        results). A choice still offered is kept; one no longer offered is let go."""
        self._quiet = True
        try:
            facets = counted.facets if counted is not None else {}
            self.query_one("#counted-label", Label).update(
                f"In the top {counted.counted} results" if counted is not None else "In these results")
            for field in FACET_FIELDS:
                select = self.query_one(f"#facet-{field}", Select)
                values = [(v.value, v.count) for v in facets.get(field, [])]
                options = facet_options(values, ordered=field == "price")
                old = select.value
                select.set_options(options)
                if old is not Select.NULL and any(v == old for _, v in options):
                    select.value = old
                shown = bool(options)
                select.display = shown
                self.query_one(f"#label-{field}").display = shown
        finally:
            self._quiet = False
            self._posted = self._state()

    @property
    def mode(self) -> str:
        value = self.query_one("#mode", Select).value
        return str(value) if value is not Select.NULL else "hybrid"

    @mode.setter
    def mode(self, value: str) -> None:
        self.query_one("#mode", Select).value = value

    @property
    def sort(self) -> str:
        value = self.query_one("#sort", Select).value
        return str(value) if value is not Select.NULL else "relevance"

    @sort.setter
    def sort(self, value: str) -> None:
        self.query_one("#sort", Select).value = value

    def chosen(self) -> dict[str, str]:
        """facet -> the value chosen (the results are narrowed to it in place)."""
        out = {}
        for field in FACET_FIELDS:
            value = self.query_one(f"#facet-{field}", Select).value
            if value is not Select.NULL:
                out[field] = str(value)
        return out

    def filters(self) -> list[Filter]:
        """The filters the search applies: the price range."""
        return price_filters(self.query_one("#price-min", Input).value, self.query_one("#price-max", Input).value)

    def set_filter(self, field: str, value: str | None) -> None:
        select = self.query_one(f"#facet-{field}", Select)
        select.value = Select.NULL if value is None else value

    def clear(self) -> None:
        for field in FACET_FIELDS:
            self.query_one(f"#facet-{field}", Select).clear()
        self.query_one("#price-min", Input).value = ""
        self.query_one("#price-max", Input).value = ""

    def _state(self) -> tuple:
        return self.mode, self.sort, tuple(sorted(self.chosen().items())), tuple(self.filters())

    @on(Select.Changed)
    @on(Input.Changed)
    def _changed(self, event: Message) -> None:
        """Changed once per real change: refilling the choices (set_result_facets) changes nothing."""
        event.stop()
        state = self._state()
        if not self._quiet and state != self._posted:
            self._posted = state
            self.post_message(self.Changed())

    @on(Button.Pressed, "#clear-filters")
    def _clear_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.clear()
