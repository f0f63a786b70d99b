"""What every command shares: the error-to-message group, the common options, settings and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mmtui.config import Settings
from mmtui.errors import MmtuiError


class Group(click.Group):
    """Turns MmtuiError from any command into a message and a hint, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except MmtuiError as exc:
            raise click.ClickException(f"{exc.message}\n  hint: {exc.hint}" if exc.hint else exc.message) from None


def data_dir_option(f):
    return click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="Where the index lives [env MMTUI_DATA_DIR; default ./index].")(f)


def model_options(f):
    f = click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Local weights file for an openclip model (offline use).")(f)
    f = click.option("--device", default=None,
                     help="cpu, cuda, cuda:N or mps [env MMTUI_DEVICE; default: CUDA when available].")(f)
    return click.option("--model", default=None,
                        help="lite (default, offline) or openclip:ARCH/PRETRAINED [env MMTUI_MODEL].")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def where_option(f):
    return click.option("--where", "wheres", multiple=True, metavar="EXPR",
                        help="Filter, repeatable: colour=Black, gender!=Men, category~Shoes, \"price<50\" "
                             "(quote < and >: the shell reads them as redirections).")(f)


def no_wait_option(f):
    """--no-wait for commands that write to the data dir: fail at once if another process is writing there."""

    def remember(ctx: click.Context, _param, value: bool) -> bool:
        if value:
            ctx.meta["mmtui.lock_timeout"] = 0.0
        return value

    return click.option("--no-wait", is_flag=True, expose_value=False, callback=remember,
                        help="If another mmtui process is writing to the data dir, fail at once instead of "
                             "waiting for it [env MMTUI_LOCK_TIMEOUT: seconds to wait, default 600].")(f)


def settings_from(data_dir=None, model=None, checkpoint=None, device=None) -> Settings:
    """Settings for a command: its own options, else those given before it (mmtui --data-dir DIR search ...)."""
    ctx = click.get_current_context(silent=True)
    lock_timeout = ctx.meta.get("mmtui.lock_timeout") if ctx is not None else None
    given = ctx.find_root().params if ctx is not None else {}
    return Settings.load(data_dir=data_dir or given.get("data_dir"), model=model or given.get("model"),
                         checkpoint=checkpoint or given.get("checkpoint"), device=device or given.get("device"),
                         lock_timeout=lock_timeout)


def print_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))
