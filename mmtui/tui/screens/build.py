"""Build screen (F4): build-index over a catalog with a progress bar, then the rejects by reason."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Footer, Input, Label, ProgressBar, Static

from mmtui.progress import Cancelled, ProgressEvent, counted
from mmtui.tui.host import AppHost
from mmtui.tui.messages import WorkProgressed
from mmtui.tui.screens.work import WorkScreen

THROTTLE_S = 0.05


def throttled(post: Any, min_gap: float = THROTTLE_S) -> Any:
    """A progress callback that forwards at most one event per min_gap, but always stage changes and the end."""
    state = {"last": 0.0, "stage": None}

    def callback(event: ProgressEvent) -> None:
        now = time.monotonic()
        final = event.total is not None and event.done >= event.total
        if final or event.stage != state["stage"] or now - state["last"] >= min_gap or event.metrics:
            state["last"], state["stage"] = now, event.stage
            post(WorkProgressed(event))

    return callback


def report_table(report: Any) -> Table:
    """The build summary and the rejects by reason, from a BuildReport."""
    table = Table(title="Index built", title_justify="left", show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    for label, attr in (("products", "products"), ("with image", "with_image"), ("added", "added"),
                        ("updated", "updated"), ("removed", "removed"), ("images encoded", "encoded_images"),
                        ("texts encoded", "encoded_texts"), ("rows rejected", "rejected_rows")):
        value = getattr(report, attr, None)
        if value is not None:
            table.add_row(label, f"{value:,}")
    seconds = getattr(report, "seconds", None)
    if seconds is not None:
        table.add_row("time", f"{seconds:.1f} s")
    for name, encoding in (getattr(report, "encodings", None) or {}).items():
        table.add_row(f"read {name} as", encoding)
    adaptation = getattr(report, "adaptation", None) or {}
    if adaptation:
        table.add_row("", "")
        table.add_row(Text("model", style="bold underline"), "")
        table.add_row(Text(adaptation.get("message", ""), style="italic"), "")
        before, after = adaptation.get("before") or {}, adaptation.get("after") or {}
        for name, figures in before.items():
            for metric, label in (("r10", "R@10"), ("ndcg@10", "nDCG@10")):
                if figures.get(metric) is not None:
                    now = (after.get(name) or {}).get(metric)
                    table.add_row(f"  {name} {label}", f"{figures[metric]:.3f} shipped"
                                  + (f" → {now:.3f} adapted" if now is not None else ""))
    ranking = getattr(report, "ranking", None) or {}
    if ranking.get("weights"):
        used = ", ".join(f"{s} {w:g}" for s, w in ranking["weights"].items() if w > 0)
        table.add_row("hybrid weights", used)
        for signal in ranking.get("at_chance") or []:
            table.add_row(Text(f"  {signal}: at chance, no vote", style="yellow"), "")
    rejects = getattr(report, "rejects_by_reason", None) or {}
    if rejects:
        table.add_row("", "")
        table.add_row(Text("rejects by reason", style="bold underline"), "")
        for reason, count in sorted(rejects.items(), key=lambda rc: -rc[1]):
            table.add_row(f"  {reason}", f"{count:,}")
    else:
        table.add_row("rejects", "none")
    return table


class BuildScreen(WorkScreen):
    """Runs build_index on a daemon thread; `c` cancels (work done so far is kept)."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "start", "Build"),
        Binding("ctrl+x", "cancel", "Cancel"),
    ]
    INPUT_ID, STATUS_ID = "#catalog", "#build-stage"
    CANCELLING = "cancelling… (stops at the next safe point)"
    BUSY = "A build is running: ctrl+x cancels it (what is done is kept)."
    app: AppHost

    def __init__(self, catalog: str | None = None, autostart: bool = False) -> None:
        super().__init__()
        self.catalog = catalog
        self.autostart = autostart
        self.cancel_event: threading.Event | None = None
        self.running = False
        self.stage = ""
        self.report: Any = None  # the last BuildReport

    def compose(self) -> ComposeResult:
        yield Label("Build the index", classes="work-title")
        with Horizontal(classes="form-row"):
            yield Label("Catalog")
            default = self.catalog or (str(self.app.sample_catalog) if self.app.sample_catalog else "")
            yield Input(value=default, placeholder="folder or CSV/JSONL file", id="catalog")
            yield Button("Build", variant="primary", id="start")
            yield Button("Cancel", id="cancel", disabled=True)
        yield Static(f"into {self.app.settings.data_dir} · model {self.app.settings.model or 'as built, else lite'}", classes="work-line dim")
        yield Static("Enter or ctrl+s builds; ctrl+x cancels (what is done is kept).", id="build-stage",
                     classes="work-line")
        yield ProgressBar(id="build-progress", show_eta=True, classes="work-bar")
        yield Static(id="build-result", classes="work-result")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#start").focus()
        if self.autostart:
            self.action_start()

    @on(Input.Submitted, "#catalog")
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if self.running:
            return
        catalog = self.query_one("#catalog", Input).value.strip().strip("'\"")
        if not catalog:
            self.app.notify("Give a catalog folder or file.", severity="warning")
            return
        path = Path(catalog).expanduser()
        if not path.exists():
            self.app.notify(f"{path} does not exist\n→ give a catalog folder or a CSV/JSONL file", severity="error",
                            title="No such catalog", markup=False)
            return
        self._build(path)

    @on(Button.Pressed, "#cancel")
    @work(exclusive=True, group="build", exit_on_error=False)
    async def _build(self, catalog: Path) -> None:
        app = self.app
        self.cancel_event = threading.Event()
        self._set_running(True)
        self.query_one("#build-result", Static).update("")
        self.query_one("#build-progress", ProgressBar).update(total=None, progress=0)
        app.model_state = "building"
        await app.release_service()  # the build rewrites the store; reopen afterwards
        started = time.monotonic()
        try:
            report = await app.run_long(app.build_fn, app.settings, catalog, progress=throttled(self.post_message),
                                        cancel=self.cancel_event)
        except Cancelled as exc:
            self._finish(Text(f"Cancelled. {exc.hint}", style="yellow"), ok=False)
            app.data_changed(quiet=True)
            return
        except Exception as exc:
            self._finish(Text("The build failed: see the notification.", style="red"), ok=False)
            app.show_error(exc, title="Build failed", dialog=True)
            app.data_changed(quiet=True)
            return
        self.report = report
        bar = self.query_one("#build-progress", ProgressBar)
        bar.update(total=1, progress=1)
        self.query_one("#build-stage", Static).update(
            Text(f"done in {time.monotonic() - started:.1f} s · Esc: back to search", style="bold"))
        self._finish(report_table(report), ok=True)
        app.notify(f"{counted(getattr(report, 'products', 0), 'product')} indexed.", title="Build finished", timeout=5)
        app.data_changed()

    def _finish(self, renderable: Any, ok: bool) -> None:
        result = self.query_one("#build-result", Static)
        result.update(renderable)
        result.set_class(ok, "ok")
        result.set_class(not ok, "bad")
        self._set_running(False)

    def on_work_progressed(self, message: WorkProgressed) -> None:
        event = message.event
        bar = self.query_one("#build-progress", ProgressBar)
        if event.stage != self.stage:
            self.stage = event.stage
            bar.update(total=event.total, progress=0)
        bar.update(total=event.total, progress=event.done)
        counts = f" {event.done:,}/{event.total:,}" if event.total else (f" {event.done:,}" if event.done else "")
        line = Text(event.stage, style="bold")
        line.append(counts)
        if event.message:
            line.append(f" · {event.message}", style="dim")
        self.query_one("#build-stage", Static).update(line)
