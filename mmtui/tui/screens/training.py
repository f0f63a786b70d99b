"""Training screen (F3): train an adapter in the background with a live loss curve; promotion shown at the end."""

from __future__ import annotations

import threading
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Checkbox, Footer, Input, Label, ProgressBar, Static

from mmtui.progress import Cancelled
from mmtui.tui.host import AppHost
from mmtui.tui.messages import WorkProgressed
from mmtui.tui.widgets.curves import CurvePlot
from mmtui.tui.screens.build import throttled
from mmtui.tui.screens.work import WorkScreen


def result_text(result: dict[str, Any]) -> Text:
    """Promotion banner: which checkpoint, promoted or not, with its validation R@10."""
    metrics = result.get("metrics") or {}
    r10 = metrics.get("val_r10")
    score = f" (val R@10 {r10:.3f})" if isinstance(r10, (int, float)) else ""
    name = result.get("name", "the new checkpoint")
    if result.get("promoted"):
        return Text(f"✔ {name} was promoted{score}: searches now use it.", style="bold green")
    reason = (result.get("promotion") or {}).get("reason") if isinstance(result.get("promotion"), dict) else None
    text = Text(f"✘ {name} was not promoted{score}", style="bold yellow")
    text.append(f": {reason}" if reason else ": it did not beat the active model (tick 'force' to promote anyway).")
    return text


class TrainingScreen(WorkScreen):
    """Runs train_adapter on a daemon thread; ctrl+x cancels between batches."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "start", "Train"),
        Binding("ctrl+x", "cancel", "Cancel"),
    ]
    INPUT_ID, STATUS_ID = "#epochs", "#train-line"
    CANCELLING = "cancelling after this batch…"
    BUSY = "Training is running: ctrl+x cancels it."
    app: AppHost

    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict[str, Any]] = []
        self.cancel_event: threading.Event | None = None
        self.running = False
        self.epochs = 10

    def compose(self) -> ComposeResult:
        yield Label("Train an adapter (residual head over the frozen model)", classes="work-title")
        with Horizontal(classes="form-row"):
            yield Label("Epochs")
            yield Input(value="10", type="integer", id="epochs")
            yield Checkbox("force promotion", id="force")
            yield Button("Train", variant="primary", id="start")
            yield Button("Cancel", id="cancel", disabled=True)
        yield Static("ctrl+s trains; ctrl+x cancels (the best epoch so far is kept).", id="train-line",
                     classes="work-line")
        yield ProgressBar(id="train-progress", show_eta=True, classes="work-bar")
        yield Static(id="train-result", classes="work-result")
        yield CurvePlot(id="loss-plot")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#start").focus()
        self.query_one(CurvePlot).show([], "loss per epoch")

    @on(Button.Pressed, "#start")
    @on(Input.Submitted, "#epochs")
    def action_start(self) -> None:
        if self.running:
            return
        try:
            epochs = int(self.query_one("#epochs", Input).value)
            if not 1 <= epochs <= 1000:
                raise ValueError
        except ValueError:
            self.app.notify("Epochs must be a whole number from 1 to 1000.", severity="warning")
            return
        self._train(epochs, self.query_one("#force", Checkbox).value)

    @on(Button.Pressed, "#cancel")
    @work(exclusive=True, group="train", exit_on_error=False)
    async def _train(self, epochs: int, force: bool) -> None:
        app = self.app
        self.epochs, self.history = epochs, []
        self.cancel_event = threading.Event()
        self._set_running(True)
        self.query_one("#train-result", Static).update("")
        self.query_one(CurvePlot).show([], "loss per epoch", epochs)
        self.query_one("#train-progress", ProgressBar).update(total=None, progress=0)
        try:
            result = await app.run_long(app.train_fn, app.settings, epochs=epochs, force=force,
                                        progress=throttled(self.post_message), cancel=self.cancel_event)
        except Cancelled as exc:
            self._finish(Text(f"Cancelled. {exc.hint}", style="yellow"))
            return
        except Exception as exc:
            self._finish(Text("Training failed: see the dialog.", style="red"))
            app.show_error(exc, title="Training failed", dialog=True)
            return
        result = result if isinstance(result, dict) else {}
        if result.get("history") and not self.history:
            self.history = list(result["history"])
            self.query_one(CurvePlot).show(self.history, "loss per epoch", epochs)
        bar = self.query_one("#train-progress", ProgressBar)
        bar.update(total=1, progress=1)
        self._finish(result_text(result))
        app.notify(str(result_text(result)), title="Training finished", timeout=6, markup=False)
        if result.get("promoted"):
            app.data_changed()

    def _finish(self, text: Text) -> None:
        self.query_one("#train-result", Static).update(text)
        self._set_running(False)

    def on_work_progressed(self, message: WorkProgressed) -> None:
        event = message.event
        bar = self.query_one("#train-progress", ProgressBar)
        bar.update(total=event.total, progress=event.done)
        line = Text(event.stage, style="bold")
        if event.message:
            line.append(f" · {event.message}")
        metrics = event.metrics or {}
        if metrics:
            row = {k: v for k, v in metrics.items()}
            self.history.append(row)
            self.query_one(CurvePlot).show(self.history, "loss per epoch", self.epochs)
            shown = [f"{k} {v:.4f}" for k, v in row.items() if k != "epoch" and isinstance(v, float)]
            line.append("  " + "  ".join(shown), style="dim")
        elif self.history:
            last = self.history[-1]
            line.append(f"  last epoch: train {last.get('train_loss', float('nan')):.4f} "
                        f"val R@10 {last.get('val_r10', float('nan')):.3f}", style="dim")
        self.query_one("#train-line", Static).update(line)
