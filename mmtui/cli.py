"""The `mmtui` command line: a thin click group. Heavy modules are imported inside the commands,
so `mmtui --help` loads neither torch nor textual. Library errors become one clear message + hint here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .config import Settings
from .errors import MmtuiError


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
    f = click.option("--device", default=None, help="cpu, cuda, cuda:1 [default: CUDA when available].")(f)
    return click.option("--model", default=None,
                        help="lite (default, offline) or openclip:ARCH/PRETRAINED [env MMTUI_MODEL].")(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(f)


def where_option(f):
    return click.option("--where", "wheres", multiple=True, metavar="EXPR",
                        help="Filter, repeatable: colour=Black, price<50, gender!=Men, category~Shoes.")(f)


def _settings(data_dir=None, model=None, checkpoint=None, device=None) -> Settings:
    return Settings.load(data_dir=data_dir, model=model, checkpoint=checkpoint, device=device)


def _print_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, indent=2, default=str))


@click.group(cls=Group, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mmtui")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Search a product catalog by words or by picture, offline.

    \b
    Quick start:
      mmtui build-index sample_catalog
      mmtui search "navy blue shirt for men"
      mmtui search --image sample_catalog/images/12969.jpg
      mmtui tui

    With no command, opens the terminal UI.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(tui)


# -- build-index ------------------------------------------------------------------------------
@cli.command("build-index")
@click.argument("catalog", type=click.Path(exists=True, path_type=Path))
@data_dir_option
@model_options
@click.option("--columns", default=None, metavar="MAP",
              help="Map our fields to your columns: title=productDisplayName,image=img_url")
@click.option("--batch-size", default=32, show_default=True, help="Images per encoding batch.")
@json_option
def build_index_cmd(catalog, data_dir, model, checkpoint, device, columns, batch_size, as_json) -> None:
    """Read CATALOG (a folder or a CSV/JSONL file), validate it, encode it and build the indexes.

    \b
    Re-running on an unchanged catalog encodes nothing; new or changed products are encoded;
    a build that was killed is finished by the next run.
    \b
    Example:
      mmtui build-index sample_catalog
      mmtui build-index products.jsonl --columns title=name,image=img_url --data-dir shop-index
    """
    from .build import build_index
    from .catalog import parse_columns
    from .console import progress_printer

    settings = _settings(data_dir, model, checkpoint, device)
    mapping = parse_columns(columns) if columns else None
    try:
        with progress_printer(quiet=as_json) as progress:
            report = build_index(settings, catalog, columns=mapping, progress=progress, batch_size=batch_size)
    except KeyboardInterrupt:
        click.echo("Interrupted. Everything encoded so far is saved: run the same command again to finish.",
                   err=True)
        sys.exit(130)
    if as_json:
        _print_json(report.to_json())
        return
    from .console import print_build_report

    print_build_report(report, settings)


# -- search -----------------------------------------------------------------------------------
@cli.command()
@click.argument("text", required=False)
@click.option("--image", "image", type=click.Path(path_type=Path), default=None, help="Search by this picture.")
@click.option("-k", "k", default=10, show_default=True, help="Number of results.")
@click.option("--mode", type=click.Choice(["image", "text", "lexical", "hybrid"]), default=None,
              help="image: vs product images; text: vs product texts; lexical: BM25; hybrid: all fused "
                   "[default: hybrid for text, image for --image].")
@where_option
@data_dir_option
@model_options
@json_option
def search(text, image, k, mode, wheres, data_dir, model, checkpoint, device, as_json) -> None:
    """Find products by TEXT or by --image PATH.

    \b
    Examples:
      mmtui search "black running shoes for men"
      mmtui search "red dress" --mode image -k 20 --where price<50
      mmtui search --image photo.jpg --json
    """
    from .filters import parse_where
    from .search import SearchService

    if bool(text) == bool(image):
        raise click.UsageError('give either TEXT or --image PATH, e.g. mmtui search "blue jeans"')
    filters = [parse_where(w) for w in wheres]
    service = SearchService.open(_settings(data_dir, model, checkpoint, device))
    if image is not None:
        result = service.search_image(image, k=k, mode=mode or "image", filters=filters)
    else:
        result = service.search(text, k=k, mode=mode or "hybrid", filters=filters)
    if as_json:
        _print_json(result.to_json())
        return
    from .console import print_hits

    print_hits(result)


# -- eval -------------------------------------------------------------------------------------
@cli.command("eval")
@click.argument("queries", required=False, type=click.Path(path_type=Path))
@click.option("--split", "split", type=click.Choice(["train", "val", "test"]), default=None,
              help="Evaluate on a split of the catalog itself: each product's title finds its own image.")
@click.option("--pool", type=click.Choice(["split", "catalog"]), default="split", show_default=True,
              help="With --split: search among the split's products, or the whole catalog.")
@click.option("--compare", is_flag=True, help="Compare every trained model with zero-shot on the split (seed 000 table).")
@click.option("--mode", type=click.Choice(["image", "text", "lexical", "hybrid"]), default=None,
              help="Search mode [default: hybrid for a queries file, image for --split].")
@click.option("-k", "k", default=10, show_default=True, help="Cut-off shown next to the standard ones.")
@where_option
@data_dir_option
@model_options
@json_option
def eval_cmd(queries, split, pool, compare, mode, k, wheres, data_dir, model, checkpoint, device, as_json) -> None:
    """Measure retrieval quality: R@1/3/5/10, MRR, nDCG@10, P@10 and latency.

    \b
    QUERIES.jsonl has one query per line:
      {"query": "red summer dress", "relevant": {"15970": 2, "12967": 1}}
      {"image": "photos/shoe.jpg", "relevant": {"12967": 1}}
    \b
    Examples:
      mmtui eval queries.jsonl --mode hybrid --json
      mmtui eval --split test
      mmtui eval --compare
    """
    from .console import out
    from .filters import parse_where

    settings = _settings(data_dir, model, checkpoint, device)
    if sum(bool(x) for x in (queries, split and not compare, compare)) != 1:
        raise click.UsageError("give QUERIES.jsonl, or --split test, or --compare")
    if split and mode and mode != "image":
        raise click.UsageError("--split measures title -> image retrieval: drop --mode or use --mode image")
    filters = [parse_where(w) for w in wheres]
    from . import evaluate

    if compare:
        report = evaluate.compare_models(settings, split or "test")
        if as_json:
            _print_json(report.to_json())
        else:
            out.print(evaluate.compare_table(report))
            out.print(f"[dim]saved to {report.path}[/]")
        return
    from .console import progress_printer
    from .search import SearchService

    service = SearchService.open(settings)
    with progress_printer(quiet=as_json) as progress:
        if queries:
            report = evaluate.evaluate_file(service, queries, mode=mode or "hybrid", k=k, filters=filters,
                                            progress=progress)
        else:
            report = evaluate.evaluate_split(service, split, k=k, pool=pool, filters=filters, progress=progress)
    path = evaluate.save_eval_report(settings, report)
    if as_json:
        _print_json(report.to_json())
        return
    out.print(evaluate.eval_table(report))
    skips = evaluate.skips_table(report.skips)
    if skips is not None:
        out.print(skips)
    out.print(f"[dim]saved to {path}[/]")


# -- rejects ----------------------------------------------------------------------------------
@cli.command()
@click.option("--reason", default=None, help="Only this reason, e.g. image_corrupt.")
@click.option("--limit", default=50, show_default=True)
@data_dir_option
@json_option
def rejects(reason, limit, data_dir, as_json) -> None:
    """List the rows and images the last build rejected, with their reasons.

    \b
    Example:
      mmtui rejects --reason image_missing --limit 20
    """
    from .store import Store

    store = Store.open(_settings(data_dir).db_path)
    where, params = ("reason = ?", [reason]) if reason else ("1", [])
    rows = list(store.db.query(f"SELECT product_id, source, row, reason, detail, kept FROM rejects WHERE {where} "
                               f"ORDER BY id LIMIT ?", [*params, limit]))
    counts = store.rejects_by_reason()
    if as_json:
        _print_json({"counts": counts, "rejects": rows})
        return
    from .console import print_rejects

    print_rejects(counts, rows)


# -- tui --------------------------------------------------------------------------------------
@cli.command()
@data_dir_option
@model_options
def tui(data_dir=None, model=None, checkpoint=None, device=None) -> None:
    """Open the terminal UI (search as you type, thumbnails, filters, training).

    \b
    Example:
      mmtui tui --data-dir index
    """
    from .tui.app import run

    run(_settings(data_dir, model, checkpoint, device))


def main() -> None:  # pragma: no cover
    cli(prog_name="mmtui")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
