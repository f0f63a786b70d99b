"""The `mmtui` command line: one click group, a module per command group. Heavy modules are imported inside
the commands, so `mmtui --help` loads neither torch nor textual; library errors become one message and a hint.
"""

from __future__ import annotations

import sys

import click

from mmtui.cli import build, data, doctor, duplicates, evaluate, judgements, models, search, train, tui
from mmtui.cli.common import Group, data_dir_option, model_options


@click.group(cls=Group, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mmtui")
@data_dir_option
@model_options
@click.pass_context
def cli(ctx: click.Context, data_dir, model, checkpoint, device) -> None:
    """Search a product catalog by words or by picture, offline.

    \b
    Quick start:
      mmtui build-index sample_catalog
      mmtui search "navy blue shirt for men"
      mmtui search --image sample_catalog/images/12969.jpg
      mmtui tui

    With no command, opens the terminal UI. --data-dir and the model options given here hold for the
    command that follows (mmtui --data-dir shop search "red dress").
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui.tui, data_dir=data_dir, model=model, checkpoint=checkpoint, device=device)


for command in (build.build_index_cmd, build.enrich, search.search, duplicates.duplicates, evaluate.eval_cmd,
                train.train, models.models, models.use, data.check, data.rejects, judgements.judgements, tui.tui,
                doctor.doctor):
    cli.add_command(command)


def main() -> None:  # pragma: no cover
    cli(prog_name="mmtui")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
