"""`mmtui eval`: retrieval quality on a queries file, a split, or mode by mode."""

from __future__ import annotations

from pathlib import Path

import click

from mmtui.cli.options import count
from mmtui.cli.common import data_dir_option, json_option, model_options, print_json, settings_from, where_option


# -- eval -------------------------------------------------------------------------------------
@click.command("eval")
@click.argument("queries", required=False, type=click.Path(path_type=Path))
@click.option("--split", "split", type=click.Choice(["train", "val", "test"]), default=None,
              help="Evaluate on a split of the catalog itself: each product's title finds its own image.")
@click.option("--pool", type=click.Choice(["split", "catalog"]), default="split", show_default=True,
              help="With --split: search among the split's products, or the whole catalog.")
@click.option("--compare", is_flag=True, help="Compare every trained model with zero-shot on the split (seed 000 table).")
@click.option("--compare-modes", "compare_modes_", is_flag=True,
              help="Seed 004's table: every mode on title and attribute queries of the split (R@10, nDCG@10), "
                   "then shopper-phrased queries (P@10, nDCG@10) with and without query understanding.")
@click.option("--mode", type=click.Choice(["image", "text", "lexical", "fused", "hybrid"]), default=None,
              help="Search mode [default: hybrid for a queries file, image for --split].")
@click.option("-k", "k", type=count(1, 10_000), default=10, show_default=True,
              help="Cut-off shown next to the standard ones (1-10000).")
@where_option
@data_dir_option
@model_options
@json_option
def eval_cmd(queries, split, pool, compare, compare_modes_, mode, k, wheres, data_dir, model, checkpoint, device,
             as_json) -> None:
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
    from mmtui.cli.render import out
    from mmtui.store.filters import parse_where

    settings = settings_from(data_dir, model, checkpoint, device)
    if compare_modes_:
        _compare_modes(settings, queries, split or "test", pool, as_json)
        return
    if sum(bool(x) for x in (queries, split and not compare, compare)) != 1:
        raise click.UsageError("give QUERIES.jsonl, or --split test, or --compare (or --compare-modes)")
    if split and mode and mode != "image":
        raise click.UsageError("--split measures title -> image retrieval: drop --mode or use --mode image")
    filters = [parse_where(w) for w in wheres]
    from mmtui.cli import reports
    from mmtui.evaluation import evaluate

    if compare:
        report = evaluate.compare_models(settings, split or "test")
        if as_json:
            print_json(report.to_json())
        else:
            out.print(reports.compare_table(report))
            out.print(f"[dim]saved to {report.path}[/]")
        return
    from mmtui.cli.render import progress_printer
    from mmtui.query.service import SearchService

    service = SearchService.open(settings)
    with progress_printer(lines_when_piped=True) as progress:  # stderr: stdout stays pure JSON with --json
        if queries:
            report = evaluate.evaluate_file(service, queries, mode=mode or "hybrid", k=k, filters=filters,
                                            progress=progress)
        else:
            report = evaluate.evaluate_split(service, split, k=k, pool=pool, filters=filters, progress=progress)
    path = evaluate.save_eval_report(settings, report)
    if as_json:
        print_json(report.to_json())
        return
    out.print(reports.eval_table(report))
    skips = reports.skips_table(report.skips)
    if skips is not None:
        out.print(skips)
    out.print(f"[dim]saved to {path}[/]")


def _compare_modes(settings, queries, split, pool, as_json) -> None:
    from mmtui.evaluation import evaluate
    from mmtui.cli.render import out, progress_printer
    from mmtui.cli.reports import modes_table, shopper_table
    from mmtui.evaluation.modes import compare_modes, default_query_sets
    from mmtui.query.service import SearchService

    service = SearchService.open(settings)
    sets = default_query_sets(service.store, split)
    if queries:
        sets["file"], _ = evaluate.load_queries(queries)
    from mmtui.evaluation.shopper import compare_shopper, shopper_query_sets

    with progress_printer(quiet=as_json):
        report = compare_modes(service, sets, split=split if pool == "split" else None)
        shopper = compare_shopper(service, shopper_query_sets(service.store, split), split=split)
    if as_json:
        print_json({**report.to_json(), "shopper": shopper.to_json()})
        return
    out.print(modes_table(report))
    for note in report.notes:
        out.print(f"[dim]{note}[/]")
    out.print(shopper_table(shopper))
