"""The results list: one row per hit with thumbnail, title, attributes and the score of each signal."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import ListItem, ListView, Static

from mmtui.query.service import Hit
from mmtui.tui.thumbnails import pixels_for
from mmtui.tui.widgets.thumbnail import Thumbnail

SIGNAL_NAMES = {"image": "img", "text": "txt", "lexical": "lex"}
GRADE_MARKS = {2: ("✔2 ", "bold green"), 1: ("~1 ", "bold yellow"), 0: ("✘0 ", "bold red")}  # judgements


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
    if not hit.signals and not hit.score:
        return text  # a blind (interleaved) row: scores would tell which ranker it came from
    text.append(f"{hit.score:.3f}", style="bold")
    for name, value in hit.signals.items():
        text.append("  ")
        text.append(SIGNAL_NAMES.get(name, name), style="dim")
        text.append(f" {value:.2f}")
    return text


def text_key(hit: Hit, grade: int | None = None, label: str = "") -> tuple:
    """Everything hit_text shows: rows whose key is unchanged need no redraw."""
    return (hit.rank, hit.title, hit.id, facts_line(hit), hit.score, tuple(hit.signals.items()), grade, label)


def hit_text(hit: Hit, grade: int | None = None, label: str = "") -> Text:
    """`label`: what the row stands for besides the hit ("+3 colours", "liked")."""
    title = Text(f"{hit.rank:>2} ", style="dim")
    if grade in GRADE_MARKS:
        mark, style = GRADE_MARKS[grade]
        title.append(mark, style=style)
    title.append(hit.title or hit.id, style="bold")
    if label:
        title.append(f"  {label}", style="cyan")
    lines = [title, Text(facts_line(hit), style="italic"), signals_text(hit)]
    out = Text("\n").join(lines)
    out.no_wrap = True
    out.overflow = "ellipsis"
    return out


class ResultItem(ListItem):
    """One hit. `hit` is kept so actions (details, more like this) know the product.

    Rows are reused from one query to the next (`set_hit`): updating two widgets is far cheaper than
    unmounting and mounting a row's four."""

    def __init__(self, hit: Hit, image_class: Any | None, grade: int | None = None, label: str = "") -> None:
        super().__init__(id=None)
        self.hit = hit
        self.grade = grade  # the user's judgement of this hit for the query shown (None: not judged)
        self.label = label
        self.image_class = image_class
        self._thumbnail = (Thumbnail(image_class, has_image=bool(hit.image_path), classes="thumb")
                           if image_class is not None else None)
        self._text = Static(hit_text(hit, grade, label), classes="result-text")

    def compose(self) -> ComposeResult:
        # no Horizontal container: the row itself lays out horizontally (app.tcss), one widget less per row
        if self._thumbnail is not None:
            yield self._thumbnail
        yield self._text

    def set_hit(self, hit: Hit, grade: int | None = None, label: str = "") -> None:
        """Show another hit in this row: new text, the thumbnail back to its placeholder until it is drawn.

        What does not change is not touched (the same product's image stays; the same text is not redrawn)."""
        old, self.hit = self.hit, hit
        old_grade, self.grade = self.grade, grade
        old_label, self.label = self.label, label
        if text_key(hit, grade, label) != text_key(old, old_grade, old_label):
            self._text.update(hit_text(hit, grade, label), layout=False)  # a fixed 3-line box: no layout pass needed
        if self._thumbnail is not None and (hit.image_path != old.image_path or not hit.image_path):
            self._thumbnail.reset(bool(hit.image_path))

    def set_grade(self, grade: int | None) -> None:
        if grade != self.grade:
            self.grade = grade
            self._text.update(hit_text(self.hit, grade, self.label), layout=False)
            self.set_class(grade is not None, "-judged")

    @property
    def thumbnail(self) -> Thumbnail | None:
        return self._thumbnail


class ResultsList(ListView):
    """A ListView of ResultItem; `hits` are in rank order."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Details"),
        Binding("m", "screen.more_like_this", "More like this"),
        Binding("2", "screen.judge(2)", "Relevant"),
        Binding("1", "screen.judge(1)", "Partly"),
        Binding("0", "screen.judge(0)", "Not relevant"),
        Binding("x", "screen.judge(-1)", "Forget judgement", show=False),
        Binding("n", "screen.next_unjudged", "Next unjudged"),
    ]

    @property
    def items(self) -> list[ResultItem]:
        return [node for node in self._nodes if isinstance(node, ResultItem)]

    async def set_hits(self, hits: list[Hit], image_class: Any | None, grades: dict[str, int] | None = None,
                       labels: dict[str, str] | None = None) -> None:
        """Show these hits, first highlighted; returns once the rows are mounted (so thumbnails can be drawn).
        `grades`: the user's judgements of the query, shown on the rows; `labels`: id -> "+3 colours", "liked".

        Rows already there are updated in place; only the difference in count is mounted or removed."""
        rows = self.items
        grades, labels = grades or {}, labels or {}
        with self.app.batch_update():
            for row, hit in zip(rows, hits):
                row.set_hit(hit, grades.get(hit.id), labels.get(hit.id, ""))
                row.set_class(hit.id in grades, "-judged")
            if len(rows) > len(hits):
                await self.remove_children(rows[len(hits):])
            elif len(hits) > len(rows):
                await self.extend([ResultItem(h, image_class, grades.get(h.id), labels.get(h.id, ""))
                                   for h in hits[len(rows):]])
            self.index = 0 if hits else None
            self.scroll_home(animate=False, immediate=True)

    @property
    def current_hit(self) -> Hit | None:
        item = self.highlighted_child
        return item.hit if isinstance(item, ResultItem) else None


class SearchResultsList(ResultsList):
    """The search screen's results: refine (r), like / not like (+ / -), variants (v) and sort (s) besides the
    judging keys; the compare and region screens keep those keys for their own (s swaps in compare)."""

    BINDINGS = [
        Binding("r", "screen.refine", "Refine", show=False),
        Binding("plus,equals_sign", "screen.example(True)", "Like", show=False),
        Binding("minus", "screen.example(False)", "Not like", show=False),
        Binding("v", "screen.toggle_variants", "Variants", show=False),
        Binding("s", "screen.cycle_sort", "Sort", show=False),
    ]


async def load_thumbnails(app, items: list[ResultItem]) -> None:
    """Read and shrink these rows' thumbnails in one thread call (off the UI thread), then draw them together on
    the rows that still show the same hit (rows are reused)."""
    if app.image_class is None or not items:
        return
    size = pixels_for(app.image_protocol, 6, 3)
    wanted = [(item, item.hit) for item in items]
    images = await asyncio.to_thread(lambda: [app.thumbnails.get(hit.image_path, size) for _, hit in wanted])
    with app.batch_update():
        for (item, hit), image in zip(wanted, images):
            if item.is_mounted and item.hit is hit and item.thumbnail is not None:
                item.thumbnail.show(image)
