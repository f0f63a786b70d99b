"""Rich output for the command line: progress bars and tables. Only the CLI imports this."""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, \
    TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .progress import ProgressEvent

out = Console()
err = Console(stderr=True)

STAGE_LABELS = {
    "read": "reading catalog", "images": "checking images", "model": "loading model",
    "encode-images": "encoding images", "encode-titles": "encoding titles", "encode-texts": "encoding texts",
    "index": "building indexes", "features": "extracting features", "train": "training", "eval": "evaluating",
}


class RateColumn(ProgressColumn):
    """Items per second."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} it/s" if speed else "", style="progress.data.speed")


@contextlib.contextmanager
def progress_printer(quiet: bool = False) -> Iterator:
    """A ProgressCallback drawing one rich bar per stage on stderr (when quiet, only the notice that the command
    waits for another process writing to the data dir)."""
    if quiet:
        yield lambda event: err.print(f"[dim]{event.message}[/]", soft_wrap=True) if event.stage == "wait" else None
        return
    columns = [SpinnerColumn(), TextColumn("{task.description:<20}"), BarColumn(), MofNCompleteColumn(),
               RateColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    with Progress(*columns, console=err, transient=False) as bar:
        tasks: dict[str, int] = {}

        def on_event(event: ProgressEvent) -> None:
            label = STAGE_LABELS.get(event.stage, event.stage)
            if event.total is None:
                if event.message:
                    err.print(f"[dim]{event.message}[/]") if not err.is_terminal else bar.console.print(
                        f"[dim]{event.message}[/]")
                return
            task = tasks.get(event.stage)
            if task is None:
                task = tasks[event.stage] = bar.add_task(label, total=event.total)
            bar.update(task, completed=event.done, total=event.total)

        yield on_event


def print_build_report(report, settings) -> None:
    out.print(f"[bold green]Indexed {report.products:,} products[/] ({report.with_image:,} with images) "
              f"from {report.catalog} with model [bold]{report.model}[/] in {report.seconds:.1f} s")
    out.print(f"  added {report.added:,}, changed {report.updated:,}, removed {report.removed:,}")
    if report.encoded_images:
        out.print(f"  encoded {report.encoded_images:,} images at {report.images_per_s:,.1f} images/s")
    if report.encoded_texts:
        out.print(f"  encoded {report.encoded_texts:,} texts at {report.texts_per_s:,.1f} texts/s")
    if not report.encoded_images and not report.encoded_texts:
        out.print("  nothing to encode: every vector was already cached")
    for name, recall in report.ann_recall_at_10.items():
        kind = report.index_kind.get(name, "")
        out.print(f"  {name} index: {kind}" + (f", recall@10 vs exact search {recall:.3f}" if kind == "hnsw" else ""))
    if report.rejects_by_reason:
        table = Table(title="Rejects by reason", title_justify="left")
        table.add_column("reason")
        table.add_column("count", justify="right")
        for reason, n in report.rejects_by_reason.items():
            table.add_row(reason, f"{n:,}")
        out.print(table)
        out.print(f"  {report.rejected_rows:,} rows are not in the index; products whose image was rejected are "
                  f"kept and searchable by text. Details: mmtui rejects"
                  + (f" --data-dir {settings.data_dir}" if str(settings.data_dir) != "index" else ""))
    else:
        out.print("  no rejects")


def print_hits(result) -> None:
    if not result.hits:
        out.print(f"No results for {result.query!r} (mode {result.mode}).")
        return
    table = Table(title=f"{result.mode} search: {result.query}  ({result.took_ms:.0f} ms)", title_justify="left")
    for name, justify in (("#", "right"), ("id", "left"), ("title", "left"), ("category", "left"),
                          ("colour", "left"), ("score", "right")):
        table.add_column(name, justify=justify, overflow="fold" if name == "title" else "ellipsis")
    shares = any(getattr(h, "shares", None) for h in result.hits)
    if shares:
        table.add_column("signals", overflow="fold")
    for hit in result.hits:
        title = hit.title + ("" if hit.image_status == "ok" else " [dim](no image)[/]")
        tags = getattr(hit, "tags", None) or []
        if tags:
            title += f" [dim]· {', '.join(tags[:3])}[/]"
        row = [str(hit.rank), hit.id, title, hit.category, hit.colour, f"{hit.score:.4f}"]
        if shares:
            row.append(" · ".join(f"{SHORT.get(k, k)} {v:.0%}" for k, v in sorted(
                (hit.shares or {}).items(), key=lambda kv: -kv[1]) if v > 0))
        table.add_row(*row)
    out.print(table)


SHORT = {"lexical": "lex", "image": "img", "text": "txt", "fused": "fus"}


def print_rejects(counts: dict, rows: list[dict]) -> None:
    if not counts:
        out.print("No rejects in the last build.")
        return
    out.print(", ".join(f"{reason}: {n:,}" for reason, n in counts.items()))
    table = Table()
    for name in ("id", "source", "row", "reason", "detail", "kept"):
        table.add_column(name)
    for r in rows:
        table.add_row(str(r["product_id"] or ""), r["source"] or "", str(r["row"] or ""), r["reason"],
                      r["detail"] or "", "yes" if r["kept"] else "no")
    out.print(table)
