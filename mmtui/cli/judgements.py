"""`mmtui judgements`: the relevance judgements made in the TUI, listed, exported, and what to judge next."""

from __future__ import annotations

from pathlib import Path

import click

from mmtui.cli.common import Group, data_dir_option, json_option, print_json, settings_from
from mmtui.cli.options import count


@click.group("judgements", cls=Group, invoke_without_command=True)
@data_dir_option
@json_option
@click.pass_context
def judgements(ctx: click.Context, data_dir, as_json) -> None:
    """Your relevance judgements (2 relevant, 1 partly, 0 not relevant), made in the TUI.

    With no subcommand: one row per judged query, its counts by grade and how much of its top 10 (as last
    shown) is judged. They are kept in DATA_DIR/judgements.db, keyed by product id, across rebuilds.

    \b
    Examples:
      mmtui judgements
      mmtui judgements export --jsonl judged.jsonl --qrels judged.qrels
      mmtui judgements suggest --rankers hybrid,lexical
      mmtui eval --judged --per-query
    """
    if ctx.invoked_subcommand is not None:
        return
    from mmtui.cli.reports import interleaving_table, judgements_table
    from mmtui.cli.render import out
    from mmtui.evaluation.judged import summary
    from mmtui.store.judgements import JudgementStore

    store = JudgementStore(settings_from(data_dir))
    rows = summary(store)
    interleaved = store.interleavings()
    if as_json:
        print_json({"path": str(store.path), "queries": rows, "judgements": store.count(),
                    "interleavings": interleaved})
        return
    if not rows:
        out.print(f"No judgements yet in {store.path}.\n"
                  "In `mmtui tui`, go to the results and press 2 (relevant), 1 (partly) or 0 (not relevant); "
                  "n jumps to the next unjudged result.", highlight=False)
        return
    out.print(judgements_table(rows))
    table = interleaving_table(interleaved)
    if table is not None:
        out.print(table)
    out.print(f"[dim]{store.count()} judgements in {store.path}[/]", highlight=False)


@judgements.command("export")
@click.option("--jsonl", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the eval file `mmtui eval FILE` reads (queries with a relevant result).")
@click.option("--qrels", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write TREC qrels (QID 0 DOCID GRADE), qids as in `mmtui eval --run`.")
@data_dir_option
@json_option
def export_cmd(jsonl, qrels, data_dir, as_json) -> None:
    """Export the judgements as an eval JSONL file and/or TREC qrels.

    \b
    Example:
      mmtui judgements export --jsonl judged.jsonl --qrels judged.qrels
    """
    from mmtui.cli.render import out
    from mmtui.evaluation.judged import export_jsonl, export_qrels
    from mmtui.store.judgements import JudgementStore

    if not jsonl and not qrels:
        raise click.UsageError("give --jsonl FILE, --qrels FILE or both")
    store = JudgementStore(settings_from(data_dir))
    if not store.count():
        raise click.ClickException(f"no judgements in {store.path} yet: judge results in `mmtui tui` first")
    written = {}
    if jsonl:
        written["jsonl"] = {"path": str(jsonl), "queries": export_jsonl(store, jsonl)}
    if qrels:
        written["qrels"] = {"path": str(qrels), "queries": export_qrels(store, qrels)}
    if as_json:
        print_json(written)
        return
    for kind, info in written.items():
        out.print(f"{kind}: {info['queries']} queries -> {info['path']}", highlight=False)


@judgements.command("suggest")
@click.option("--rankers", default="hybrid,lexical", show_default=True,
              help="Comma-separated rankers to pool: hybrid, hybrid-equal, hybrid-plain, lexical, text, image, fused.")
@click.option("--queries", "queries_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Also consider these queries not judged yet (a text file, one query per line, or eval JSONL).")
@click.option("-n", "limit", type=count(1, 10_000), default=20, show_default=True, help="How many queries to list.")
@data_dir_option
@json_option
def suggest_cmd(rankers, queries_file, limit, data_dir, as_json) -> None:
    """What to judge next: queries and results where the rankers disagree or the top 10 is not judged.

    Pools each ranker's top 10 and lists the queries with most ranking weight on unjudged results first,
    each with those results, best rank first.

    \b
    Example:
      mmtui judgements suggest --rankers hybrid,lexical --queries my-queries.txt -n 10
    """
    import json

    from mmtui.cli.render import out
    from mmtui.cli.reports import suggestions_table
    from mmtui.evaluation.judged import suggest
    from mmtui.query.service import SearchService
    from mmtui.store.judgements import JudgementStore

    settings = settings_from(data_dir)
    names = [r.strip() for r in rankers.split(",") if r.strip()]
    extra: list[str] = []
    if queries_file:
        for line in queries_file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    line = str(json.loads(line).get("query") or "").strip()
                except (ValueError, AttributeError):
                    line = ""
            if line:
                extra.append(line)
    service = SearchService.open(settings)
    try:
        found = suggest(service, JudgementStore(settings), names, extra=extra, limit=limit)
    finally:
        service.close()
    if as_json:
        print_json({"rankers": names, "suggestions": [s.to_json() for s in found]})
        return
    if not found:
        out.print("Nothing to suggest: every pooled top 10 is judged (or there is no query yet: judge some in the "
                  "TUI, or give --queries).", highlight=False)
        return
    out.print(suggestions_table(found))
