"""Switch model (F5): the base model and trained checkpoints, the active one marked."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

METRIC_KEYS = ("val_r10", "recall@10", "r10", "mrr", "ndcg@10")


def model_label(model: dict[str, Any]) -> Text:
    text = Text("● " if model.get("active") else "  ", style="bold green" if model.get("active") else "")
    text.append(str(model.get("name", "?")), style="bold" if model.get("active") else "")
    text.append(f"  {model.get('kind', '')}", style="dim")
    metrics = model.get("metrics") or {}
    shown = [f"{k} {metrics[k]:.3f}" for k in METRIC_KEYS if isinstance(metrics.get(k), (int, float))]
    if shown:
        text.append("  " + "  ".join(shown[:2]), style="italic")
    return text


class ModelScreen(ModalScreen[str | None]):
    """Dismisses with the chosen model name, or None."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, models: list[dict[str, Any]]) -> None:
        super().__init__(classes="dialog-screen")
        self.models = models

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            yield Label("Switch model", classes="dialog-title")
            if self.models:
                yield OptionList(*[Option(model_label(m), id=str(m.get("name"))) for m in self.models], id="models")
            else:
                yield Static("No models found.", classes="dialog-message")
            yield Static("Enter: use the highlighted model · Esc: cancel. Train one with F3.", classes="dialog-hint")

    def on_mount(self) -> None:
        for option_list in self.query(OptionList):
            active = [i for i, m in enumerate(self.models) if m.get("active")]
            option_list.highlighted = active[0] if active else 0
            option_list.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
