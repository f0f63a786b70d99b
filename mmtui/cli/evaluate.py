"""`mmtui eval`: retrieval quality on a queries file, a split, or mode by mode."""

from __future__ import annotations

from pathlib import Path

import click

from mmtui.cli.options import RegionCount, count
from mmtui.cli.common import data_dir_option, json_option, model_options, print_json, settings_from, where_option


# -- eval -------------------------------------------------------------------------------------
RANKER_NAMES = ("hybrid", "hybrid-equal", "hybrid-plain", "lexical", "text", "image", "fused")


@click.command("eval")
@click.argument("queries", required=False, type=click.Path(path_type=Path))
@click.option("--judged", is_flag=True, help="Evaluate on your own judgements (made in the TUI) instead of a file.")
@click.option("--split", "split", type=click.Choice(["train", "val", "test"]), default=None,
              help="Evaluate on a split of the catalog itself: each product's title finds its own image.")
@click.option("--pool", type=click.Choice(["split", "catalog"]), default="split", show_default=True,
              help="With --split: search among the split's products, or the whole catalog.")
@click.option("--compare", is_flag=True, help="Compare every trained model with the base model on the split (R@1/5/10, MRR).")
@click.option("--compare-modes", "compare_modes_", is_flag=True,
              help="Compare the search modes on title and attribute queries of the split (R@10, nDCG@10), "
                   "then shopper-phrased queries (P@10, nDCG@10) with and without query understanding.")
@click.option("--compare-runs", "compare_runs_", nargs=2, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, metavar="A B", help="Compare two TREC run files (from --run) on QUERIES, --judged or --qrels.")
@click.option("--qrels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="With --compare-runs: the judgements as a TREC qrels file.")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["image", "text", "lexical", "fused", "hybrid"]),
              help="Search mode [default: hybrid for queries, image for --split]. Twice: compare the two modes.")
@click.option("--ranker", "rankers", multiple=True, type=click.Choice(RANKER_NAMES),
              help="A named ranker (a mode, or hybrid-equal: equal weights, hybrid-plain: no query understanding). "
                   "Twice: compare the two.")
@click.option("--run", "run_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write what each query returned as a TREC run file (QID Q0 DOCID RANK SCORE NAME).")
@click.option("--per-query", "per_query", is_flag=True, help="Print one row per query, worst first (also in --json).")
@click.option("-k", "k", type=count(1, 10_000), default=10, show_default=True,
              help="Cut-off shown next to the standard ones (1-10000).")
@click.option("--regions", "regions", type=RegionCount(), default=None,
              help="Image queries: propose N regions that look like products (auto: 8), search each and score the "
                   "merged list (shop the look: a room photo whose relevant set is every product in it).")
@where_option
@data_dir_option
@model_options
@json_option
def eval_cmd(queries, judged, split, pool, compare, compare_modes_, compare_runs_, qrels, modes, rankers, run_file,
             per_query, k, regions, wheres, data_dir, model, checkpoint, device, as_json) -> None:
    """Measure retrieval quality: R@1/3/5/10, MRR, nDCG@10, P@10, judged@10 and latency.

    \b
    QUERIES.jsonl has one query per line:
      {"query": "red summer dress", "relevant": {"15970": 2, "12967": 1}}
      {"image": "photos/shoe.jpg", "relevant": {"12967": 1}}
    \b
    Examples:
      mmtui eval queries.jsonl --mode hybrid --json
      mmtui eval --judged --per-query --run hybrid.run
      mmtui eval --judged --mode hybrid --mode lexical
      mmtui eval --judged --compare-runs hybrid.run lexical.run
      mmtui eval rooms.jsonl --mode image --regions auto -k 20
      mmtui eval --split test
      mmtui eval --compare
    """
    from mmtui.cli.render import out
    from mmtui.store.filters import parse_where

    settings = settings_from(data_dir, model, checkpoint, device)
    if compare_modes_:
        _compare_modes(settings, queries, split or "test", pool, as_json)
        return
    if compare_runs_:
        _compare_run_files(settings, compare_runs_, queries, judged, qrels, as_json)
        return
    if sum(bool(x) for x in (queries, judged, split and not compare, compare)) != 1:
        raise click.UsageError("give QUERIES.jsonl, or --judged, or --split test, or --compare (or --compare-modes)")
    choices = [*modes, *rankers]
    if len(choices) > 2:
        raise click.UsageError("compare two rankers at a time: give --mode or --ranker at most twice in all")
    if split and any(m != "image" for m in choices):
        raise click.UsageError("--split measures title -> image retrieval: drop --mode or use --mode image")
    filters = [parse_where(w) for w in wheres]
    if regions is not None and not queries:
        raise click.UsageError("--regions splits the image queries of a QUERIES.jsonl file: give one")
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
    from mmtui.query.service import SearchService

    service = SearchService.open(settings)
    if len(choices) == 2:
        _compare_rankers(settings, service, choices, queries, judged, k, filters, run_file, per_query, as_json,
                         regions)
        return
    report = _evaluate(settings, service, choices[0] if choices else None, queries, judged, split, pool, k, filters,
                       quiet=False, regions=regions)
    path = evaluate.save_eval_report(settings, report)
    if run_file:
        report.write_run(run_file)
    if as_json:
        body = report.to_json()
        if per_query or not split:
            body["queries"] = report.per_query_json()
        print_json(body)
        return
    out.print(reports.eval_table(report))
    out.print(f"[dim]judged@10 {report.judged_at_10:.2f}: share of each query's top 10 that has a judgement "
              f"(unjudged hits count as not relevant)[/]", highlight=False)
    if per_query:
        out.print(reports.per_query_table(report))
    skips = reports.skips_table(report.skips)
    if skips is not None:
        out.print(skips)
    if run_file:
        out.print(f"[dim]run written to {run_file}[/]")
    out.print(f"[dim]saved to {path}[/]")


def _evaluate(settings, service, choice, queries, judged, split, pool, k, filters, quiet, regions=None):
    from mmtui.cli.render import progress_printer
    from mmtui.evaluation import evaluate

    with progress_printer(lines_when_piped=True, quiet=quiet) as progress:  # stderr: stdout stays pure JSON
        if split:
            return evaluate.evaluate_split(service, split, k=k, pool=pool, filters=filters, progress=progress)
        target, mode = service, choice or "hybrid"
        if choice and choice not in ("image", "text", "lexical", "fused", "hybrid"):
            from mmtui.evaluation.judged import RankerService, ranker

            target, mode = RankerService(service, choice), ranker(choice).mode
        if judged:
            from mmtui.evaluation.judged import require_judged
            from mmtui.store.judgements import JudgementStore

            store = JudgementStore(settings)
            found, _ = require_judged(store)
            report = evaluate.run_eval(target, found, mode=mode, k=k, filters=filters, progress=progress,
                                       source=f"judged:{store.path}")
        else:
            report = evaluate.evaluate_file(target, queries, mode=mode, k=k, filters=filters, progress=progress,
                                            regions=regions)
        if choice and choice != mode:
            report.mode = choice
        return report


def _compare_rankers(settings, service, choices, queries, judged, k, filters, run_file, per_query, as_json,
                     regions=None) -> None:
    from mmtui.cli import reports
    from mmtui.cli.render import out
    from mmtui.evaluation.runs import compare_runs

    a, b = (_evaluate(settings, service, c, queries, judged, None, "split", k, filters, quiet=as_json, regions=regions)
            for c in choices)
    if run_file:
        for report in (a, b):
            report.write_run(run_file.with_name(f"{run_file.stem}-{report.mode}{run_file.suffix}"), report.mode)
    labels = {row["qid"]: row["label"] for row in a.per_query}
    cmp = compare_runs({q: ids for q, (ids, _) in a.runs.items()}, {q: ids for q, (ids, _) in b.runs.items()},
                       {**b.qrels, **a.qrels}, name_a=a.mode, name_b=b.mode, labels=labels)
    if as_json:
        print_json({**cmp.to_json(), "reports": {"a": a.to_json(), "b": b.to_json()}})
        return
    out.print(reports.eval_table(a))
    out.print(reports.eval_table(b))
    out.print(reports.run_comparison_table(cmp))
    if per_query:
        out.print(_comparison_rows(cmp))


def _comparison_rows(cmp):
    from rich.table import Table

    table = Table(title="per query nDCG@10, largest difference first", title_justify="left")
    for head in ("query", "A", "B", "A - B"):
        table.add_column(head, justify="left" if head == "query" else "right", max_width=50, overflow="ellipsis")
    for r in sorted(cmp.per_query, key=lambda r: -abs(r["ndcg@10_a"] - r["ndcg@10_b"])):
        table.add_row(r["label"], f"{r['ndcg@10_a']:.3f}", f"{r['ndcg@10_b']:.3f}",
                      f"{r['ndcg@10_a'] - r['ndcg@10_b']:+.3f}")
    return table


def _compare_run_files(settings, files, queries, judged, qrels_file, as_json) -> None:
    from mmtui.cli import reports
    from mmtui.cli.render import out
    from mmtui.evaluation.runs import compare_runs, query_id, read_qrels, read_run

    if sum(bool(x) for x in (queries, judged, qrels_file)) != 1:
        raise click.UsageError("--compare-runs needs the judgements: QUERIES.jsonl, --judged or --qrels FILE")
    labels: dict[str, str] = {}
    if qrels_file:
        qrels = read_qrels(qrels_file)
    else:
        from mmtui.evaluation.evaluate import load_queries, query_text

        if judged:
            from mmtui.evaluation.judged import require_judged
            from mmtui.store.judgements import JudgementStore

            found, _ = require_judged(JudgementStore(settings))
        else:
            found, _ = load_queries(queries)
        qrels = {query_id(q.kind, query_text(q)): q.relevant for q in found}
        labels = {query_id(q.kind, query_text(q)): q.label for q in found}
    (run_a, name_a), (run_b, name_b) = read_run(files[0]), read_run(files[1])
    cmp = compare_runs(run_a, run_b, qrels, name_a=name_a or str(files[0]), name_b=name_b or str(files[1]),
                       labels=labels)
    if as_json:
        print_json(cmp.to_json())
        return
    out.print(reports.run_comparison_table(cmp))
    if cmp.missing:
        out.print(f"[dim]left out: {cmp.missing}[/]", highlight=False)


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
