"""What the search understood, part by part: drop a part, or pin it to one value (a facet filter)."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

LABELS = {"kind": "kind", "person": "for", "colour": "colour", "brand": "brand", "price": "price"}
FIT = 0.5  # a value weighing less than this share of the best one is not offered


def choices(understood: Any, changed: bool) -> list[tuple[str, tuple]]:
    """(label, action) for every part: ("drop", facet, None) or ("pin", facet, value); ("reset", "", None) when
    the user already changed something. Only values that fit the words are offered: those weighing at least
    FIT of the best (as the understood line shows them), not every value the words came near."""
    out: list[tuple[str, tuple]] = []
    parts = understood.parts if understood is not None else {}
    for facet in sorted(parts, key=lambda f: list(LABELS).index(f) if f in LABELS else len(LABELS)):
        values, name = parts[facet], LABELS.get(facet, facet)
        best = max(values.values(), default=0.0)
        fitting = [v for v, w in values.items() if w >= FIT * best]
        out.append((f"drop  {name}: {' / '.join(fitting[:3])}", ("drop", facet, None)))
        for value in fitting[:8]:
            out.append((f"only  {name} = {value}", ("pin", facet, value)))
    if understood is not None and understood.price is not None:
        from mmtui.query.understanding.parse import price_text

        out.append((f"drop  price: {price_text(understood.price)}", ("drop", "price", None)))
    if changed:
        out.append(("restore what was understood", ("reset", "", None)))
    return out


class UnderstoodDialog(ModalScreen[tuple | None]):
    """Lists the parts of the understanding; dismisses with the chosen action or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Close")]

    def __init__(self, understood: Any, changed: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.understood = understood
        self.items = choices(understood, changed)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("What the search understood", classes="dialog-title")
            label = self.understood.label() if self.understood is not None else ""
            yield Static(label or "Nothing in these words names a kind, person, colour, brand or price.",
                         classes="dialog-message")
            yield OptionList(*(Option(text, id=str(i)) for i, (text, _) in enumerate(self.items)), id="parts")
            yield Static("Enter: apply · Esc: close. A part pinned to one value becomes a filter.",
                         classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#parts").focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.items[int(event.option.id)][1])
