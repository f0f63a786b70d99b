"""`mmtui duplicates`: near-identical products (the same picture, or the same title up to colour and size words)."""

from __future__ import annotations

from pathlib import Path

import click

from mmtui.cli.common import data_dir_option, json_option, model_options, print_json, settings_from
from mmtui.cli.options import count, fraction


@click.command()
@click.option("--threshold", type=fraction(), default=0.97, show_default=True,
              help="Cosine of two products' image vectors from which their pictures count as the same, "
                   "e.g. --threshold 0.95 for looser matches.")
@click.option("--by", "by", type=click.Choice(["both", "picture", "title"]), default="both", show_default=True,
              help="Look for the same picture, the same title (up to colour and size words), or both.")
@click.option("--limit", type=count(1), default=20, show_default=True,
              help="Groups printed per kind (--json and --report list them all).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the whole list as Markdown, e.g. --report duplicates.md.")
@data_dir_option
@model_options
@json_option
def duplicates(threshold, by, limit, report_path, data_dir, model, checkpoint, device, as_json) -> None:
    """Find near-identical products in the built catalog.

    Same picture: products whose image vectors' cosine is at least --threshold
    (an exact comparison of every pair). Same title: titles equal once the
    catalog's colour words and size words are left out (one product in several
    colours or sizes: the variants `mmtui search --collapse` shows as one row).

    \b
    Examples:
      mmtui duplicates
      mmtui duplicates --threshold 0.95 --by picture --json
      mmtui duplicates --report duplicates.md
    """
    from mmtui.cli.render import print_duplicates, progress_printer
    from mmtui.query.duplicates import find_duplicates
    from mmtui.query.service import SearchService

    service = SearchService.open(settings_from(data_dir, model, checkpoint, device))
    with progress_printer(quiet=as_json) as progress:
        report = find_duplicates(service, threshold, pictures=by != "title", titles=by != "picture",
                                 progress=progress)
    if report_path is not None:
        from mmtui.cli.reports import duplicates_markdown

        report_path.write_text(duplicates_markdown(report), encoding="utf-8")
    if as_json:
        print_json(report.to_json())
        return
    print_duplicates(report, limit)
    if report_path is not None:
        click.echo(f"wrote {report_path}")
