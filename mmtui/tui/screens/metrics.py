"""Metrics screen (F2): the eval reports as one table, and the training curves of each checkpoint."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, OptionList, Static
from textual.widgets.option_list import Option

from mmtui.tui.host import AppHost
from mmtui.tui.widgets.curves import CurvePlot

TIMESTAMPED_COPY = re.compile(r"^compare-.*-\d{8}-\d{6}$")
COLUMNS = (("report", "report"), ("model", "model"), ("mode", "mode"), ("queries", "n_queries"),
           ("R@1", "recall@1"), ("R@5", "recall@5"), ("R@10", "recall@10"), ("MRR", "mrr"), ("nDCG@10", "ndcg@10"),
           ("p50 ms", "latency_ms_p50"))


def _rows_in(data: Any, name: str) -> list[dict[str, Any]]:
    """Eval rows in one report file: a row, a list of rows, or a dict holding a list of rows."""
    if isinstance(data, list):
        return [dict(r, report=r.get("report", name)) for r in data if isinstance(r, dict)]
    if not isinstance(data, dict):
        return []
    if "recall@10" in data or "mrr" in data:
        return [dict(data, report=data.get("report", name))]
    rows = []
    for key, value in data.items():
        if isinstance(value, list):  # e.g. a compare report: {"split": "test", "rows": [{"label": ..}, ..]}
            rows += [dict(r, report=r.get("report", name), model=r.get("label") or r.get("name") or r.get("model"),
                          mode=r.get("mode") or (f"split {data['split']}" if data.get("split") else ""))
                     for r in value if isinstance(r, dict) and ("recall@10" in r or "mrr" in r)]
        elif isinstance(value, dict) and ("recall@10" in value or "mrr" in value):
            rows.append(dict(value, report=f"{name}:{key}", model=value.get("model", key)))
    return rows


def read_reports(reports_dir: Path) -> list[dict[str, Any]]:
    """Every eval row found in reports_dir/*.json, best R@10 first; unreadable files are skipped."""
    rows: list[dict[str, Any]] = []
    if not reports_dir.is_dir():
        return rows
    for path in sorted(reports_dir.glob("*.json")):
        if TIMESTAMPED_COPY.match(path.stem):
            continue  # compare-<split>.json holds the latest; its dated copies would repeat it
        try:
            rows += _rows_in(json.loads(path.read_text()), path.stem)
        except (OSError, ValueError):
            continue
    return sorted(rows, key=lambda r: -(r.get("recall@10") or 0) if isinstance(r.get("recall@10"), (int, float))
                  else 0)


def read_histories(checkpoints_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """{checkpoint name: history rows} from checkpoints_dir/<name>/history.json."""
    out: dict[str, list[dict[str, Any]]] = {}
    if not checkpoints_dir.is_dir():
        return out
    for path in sorted(checkpoints_dir.glob("*/history.json")):
        try:
            history = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(history, list):
            out[path.parent.name] = [r for r in history if isinstance(r, dict)]
    return out


def cell(value: Any) -> str | Text:
    if isinstance(value, float):
        return Text(f"{value:.3f}", justify="right")
    if isinstance(value, int):
        return Text(f"{value:,}", justify="right")
    return "" if value is None else str(value)


class MetricsScreen(Screen):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("r", "reload", "Reload")]
    app: AppHost

    def __init__(self) -> None:
        super().__init__()
        self.histories: dict[str, list[dict[str, Any]]] = {}

    def compose(self) -> ComposeResult:
        yield Label("Metrics", classes="work-title")
        yield DataTable(id="metrics-table", zebra_stripes=True, cursor_type="row")
        yield Static(id="metrics-empty", classes="empty")
        yield Label("Training curves", classes="work-title")
        with Horizontal(id="curves"):
            yield OptionList(id="checkpoints")
            yield CurvePlot(id="curve-plot")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.action_reload()

    @work(exclusive=True, group="metrics", exit_on_error=False)
    async def action_reload(self) -> None:
        settings = self.app.settings
        try:
            rows, histories = await asyncio.gather(asyncio.to_thread(read_reports, settings.reports_dir),
                                                   asyncio.to_thread(read_histories, settings.checkpoints_dir))
        except Exception as exc:
            self.app.show_error(exc, title="Cannot read the metrics")
            return
        self.show_reports(rows)
        self.show_histories(histories)

    def show_reports(self, rows: list[dict[str, Any]]) -> None:
        table = self.query_one("#metrics-table", DataTable)
        table.clear(columns=True)
        columns = [(label, key) for label, key in COLUMNS if key == "report" or any(r.get(key) for r in rows)]
        for label, key in columns:
            table.add_column(label, key=key)
        best = max((r.get("recall@10") for r in rows if isinstance(r.get("recall@10"), (int, float))), default=None)
        for row in rows:
            cells = [cell(row.get(key)) for _, key in columns]
            if best is not None and row.get("recall@10") == best:
                cells = [Text(str(c), style="bold green", justify="right" if i > 2 else "left")
                         for i, c in enumerate(cells)]
            table.add_row(*cells)
        table.display = bool(rows)
        empty = self.query_one("#metrics-empty", Static)
        empty.display = not rows
        empty.update(f"No eval reports in {self.app.settings.reports_dir} yet.\n"
                     "→ run `mmtui eval QUERIES.jsonl` (or `mmtui eval --compare`) to make one.")

    def show_histories(self, histories: dict[str, list[dict[str, Any]]]) -> None:
        self.histories = histories
        options = self.query_one("#checkpoints", OptionList)
        options.clear_options()
        plot = self.query_one(CurvePlot)
        if not histories:
            options.add_option(Option(Text("no checkpoints yet\n(F3 trains one)", style="dim"), disabled=True))
            plot.show([], "no training curves yet")
            return
        for name, history in histories.items():
            best = max((r.get("val_r10") for r in history if isinstance(r.get("val_r10"), (int, float))),
                       default=None)
            label = Text(name, style="bold")
            label.append(f"\n{len(history)} epochs" + (f" · R@10 {best:.3f}" if best is not None else ""),
                         style="dim")
            options.add_option(Option(label, id=name))
        options.highlighted = len(histories) - 1

    @on(OptionList.OptionHighlighted, "#checkpoints")
    def _checkpoint_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        name = event.option.id
        if name in self.histories:
            self.query_one(CurvePlot).show(self.histories[name], name)
