"""Rich output for the command line: progress bars and tables. Only the CLI imports this."""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, TextColumn, \
    TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from mmtui.progress import ProgressEvent, counted

out = Console()
err = Console(stderr=True)

STAGE_LABELS = {
    "read": "reading catalog", "images": "checking images", "model": "loading model",
    "encode-images": "encoding images", "encode-titles": "encoding titles", "encode-texts": "encoding texts",
    "index": "building indexes", "features": "extracting features", "train": "training", "eval": "evaluating",
    "adapt": "adapting the model", "rank-title": "ranking titles", "rank-attribute": "ranking attributes",
    "rank-category": "ranking categories",
}


class RateColumn(ProgressColumn):
    """Items per second."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} it/s" if speed else "", style="progress.data.speed")


LINE_STEP = 0.05  # piped stderr: a line each time a stage passes another 5% of its total
LINE_EVERY_S = 10.0  # ... or when this long has passed since the stage's last line


@contextlib.contextmanager
def progress_printer(quiet: bool = False, lines_when_piped: bool = False) -> Iterator:
    """A ProgressCallback drawing one rich bar per stage on stderr (when quiet, only the notice that the
    command waits for another process writing to the data dir).

    lines_when_piped: when stderr is not a terminal (a script, a log file), print plain progress lines there
    instead ("evaluating: 500/10,000 (5%)"), so long work under --json is visibly moving; stdout is untouched."""
    if quiet:
        yield lambda event: err.print(f"[dim]{event.message}[/]", soft_wrap=True) if event.stage == "wait" else None
        return
    if lines_when_piped and not err.is_terminal:
        yield _line_printer()
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
        for task in bar.tasks:  # a stage that ended early (training stopped before its last epoch) ends here
            if not task.finished:
                bar.update(task.id, total=task.completed)


def _line_printer():
    import sys
    import time

    last: dict[str, tuple[float, float]] = {}  # stage -> (share printed, monotonic time)

    def on_event(event: ProgressEvent) -> None:
        label = STAGE_LABELS.get(event.stage, event.stage)
        if not event.total:
            if event.message:
                print(f"{label}: {event.message}", file=sys.stderr, flush=True)
            return
        share = min(1.0, event.done / event.total)
        now = time.monotonic()
        shown, at = last.get(event.stage, (-1.0, 0.0))
        if share >= 1.0 or share - shown >= LINE_STEP or now - at >= LINE_EVERY_S:
            if share == shown:
                return
            last[event.stage] = (share, now)
            print(f"{label}: {event.done:,}/{event.total:,} ({share:.0%})", file=sys.stderr, flush=True)

    return on_event


def print_build_report(report, settings) -> None:
    out.print(f"[bold green]Indexed {counted(report.products, 'product')}[/] ({report.with_image:,} with images) "
              f"from {report.catalog} with model [bold]{report.model}[/] in {report.seconds:.1f} s")
    out.print(f"  added {report.added:,}, changed {report.updated:,}, removed {report.removed:,}")
    encodings = getattr(report, "encodings", None) or {}
    if encodings:
        out.print("  read " + ", ".join(f"{name} as {enc}" for name, enc in encodings.items()), highlight=False)
    if report.encoded_images:
        out.print(f"  encoded {counted(report.encoded_images, 'image')} at {report.images_per_s:,.1f} images/s")
    if report.encoded_texts:
        out.print(f"  encoded {counted(report.encoded_texts, 'text')} at {report.texts_per_s:,.1f} texts/s")
    if not report.encoded_images and not report.encoded_texts:
        out.print("  nothing to encode: every vector was already cached")
    elif getattr(report, "encoded_on", "this process") != "this process":
        out.print(f"  encoded on {report.encoded_on}", highlight=False)
    print_adaptation(report.adaptation)
    print_ranking(getattr(report, "ranking", {}))
    for name, recall in report.ann_recall_at_10.items():
        kind = report.index_kind.get(name, "")
        out.print(f"  {name} index: {kind}" + (f", recall@10 vs exact search {recall:.3f}" if kind == "hnsw" else ""))
    print_query_model(getattr(report, "query_model", {}))
    if report.rejects_by_reason:
        table = Table(title="Rejects by reason", title_justify="left")
        table.add_column("reason")
        table.add_column("count", justify="right")
        for reason, n in report.rejects_by_reason.items():
            table.add_row(reason, f"{n:,}")
        out.print(table)
        rows = counted(report.rejected_rows, "row") + (" is" if report.rejected_rows == 1 else " are")
        out.print(f"  {rows} not in the index; products whose image was rejected are "
                  f"kept and searchable by text. Details: mmtui rejects"
                  + (f" --data-dir {settings.data_dir}" if str(settings.data_dir) != "index" else ""))
    else:
        out.print("  no rejects")


def print_query_model(query_model: dict) -> None:
    """Whether searches need torch: the ONNX export made (and checked against torch), kept, or why not."""
    query_model = query_model or {}
    status, check = query_model.get("status"), query_model.get("check") or {}
    worst = min((v for k, v in check.items() if k.endswith("_cos_min")), default=None)
    checked = f", checked against torch: cosine >= {worst:.5f}" if worst is not None else ""
    if status == "exported":
        out.print(f"  query model: exported to ONNX in {query_model.get('seconds', 0):.0f} s{checked} "
                  "(searches need no torch)", highlight=False)
    elif status == "present" and query_model.get("heads_check") != "failed":
        out.print("  query model: the ONNX export is whole" + (f"; the new heads{checked}" if checked else "")
                  + " (searches need no torch)", highlight=False)
    elif status in ("failed", "present"):
        out.print(f"  [yellow]query model: not used, searches load torch[/]: {query_model.get('why')}", highlight=False)
    elif status in ("torch", "off"):
        out.print(f"  query model: searches load torch ({query_model.get('why')})", highlight=False)


def print_adaptation(adaptation: dict) -> None:
    """The model's fit to this catalog: held-out figures of the shipped and the adapted heads, which is in use and
    why, in plain words."""
    if not adaptation:
        return
    reason = adaptation.get("reason")
    out.print(f"  model: {adaptation['message']}" + (f" ({reason})" if reason else ""), highlight=False)
    before, after = adaptation.get("before") or {}, adaptation.get("after") or {}
    if before:
        out.print(adaptation_table(adaptation))
    bridge = bridge_words(adaptation.get("bridge") or {}, adaptation.get("measured_on", "validation"))
    if bridge:
        out.print(f"  {bridge}", highlight=False)
    chance = adaptation.get("chance_r10")
    used = after if adaptation.get("model") == "adapted" and after else before
    figures = used.get("title->picture") or {}
    if chance and figures.get("r10") is not None:
        out.print("  " + picture_verdict(figures["r10"], chance, int(figures.get("n") or 0)))


def adaptation_table(adaptation: dict) -> Table:
    """Shipped vs adapted heads on the held-out products: title -> picture and category words -> pictures."""
    before, after = adaptation.get("before") or {}, adaptation.get("after") or {}
    n = (before.get("title->picture") or {}).get("n") or adaptation.get("n_val", 0)
    held = (f"{n} held-out products" if adaptation.get("measured_on", "validation") == "validation" else
            f"all {n} products: too few to hold any out")
    table = Table(title=f"How well words find pictures ({held})", title_justify="left")
    table.add_column("query -> picture")
    table.add_column("metric")
    table.add_column("shipped model", justify="right")
    table.add_column("adapted", justify="right")
    names = {"title->picture": "title", "category->picture": "category words"}
    in_use = "adapted" if adaptation.get("model") == "adapted" else "shipped"
    for name, figures in before.items():
        for metric in ("r1", "r10", "mrr", "ndcg@10"):
            if metric in figures and figures[metric] is not None:
                now = (after.get(name) or {}).get(metric)
                shipped, adapted = f"{figures[metric]:.3f}", f"{now:.3f}" if now is not None else ""
                if in_use == "adapted" and adapted:
                    adapted = f"[bold]{adapted}[/]"
                elif after:
                    shipped = f"[bold]{shipped}[/]"
                label = {"r1": "R@1", "r10": "R@10", "mrr": "MRR", "ndcg@10": "nDCG@10"}[metric]
                table.add_row(names.get(name, name), label, shipped, adapted)
    if after:
        table.caption = f"in use: the {in_use} model (bold)"
    return table


def bridge_words(bridge: dict, measured_on: str = "validation") -> str:
    """The ImageNet bridge's weight for this catalog, in plain words ("" when it kept its shipped weight)."""
    if not bridge or "chosen" not in bridge:
        return ""
    on = "the held-out products" if measured_on == "validation" else "all products"
    shipped, chosen = bridge.get("shipped"), bridge["chosen"]
    g = lambda x: f"{round(float(x), 2):g}"  # noqa: E731 - weights are stored in fp16 (0.4 reads back 0.3999)
    words = (f"pictures reach words through their ImageNet classes with weight {g(chosen)} here (shipped "
             f"{g(shipped)}), chosen on {on}" if abs(chosen - (shipped or 0.0)) > 1e-3 else
             f"the ImageNet classes' weight stays {g(chosen)} (best on {on})")
    if "temperature" in bridge:
        words += f", softmax temperature {g(bridge['temperature'])} (shipped {g(bridge['shipped_temperature'])})"
    if "adapted" in bridge:
        words += f"; {g(bridge['adapted'])} in the adapted model"
    return words


def print_ranking(ranking: dict) -> None:
    """The hybrid weights build-index learned (or kept), in plain words."""
    if not ranking:
        return
    if ranking.get("status") == "skipped":
        out.print(f"  hybrid search: {ranking.get('message')}")
        return
    weights = ranking.get("weights") or {}
    used = ", ".join(f"{LONG.get(s, s)} {w:g}" for s, w in weights.items() if w > 0)
    verb = "learned on the validation products" if ranking.get("status") == "learned" else "as learned before"
    out.print(f"  hybrid search weighs {used} ({verb})")
    for signal in ranking.get("at_chance") or []:
        out.print(f"  [yellow]{LONG.get(signal, signal)} find products no better than chance here: they get no vote[/]")


LONG = {"lexical": "words", "image": "pictures", "text": "text meaning", "fused": "text+picture"}


def picture_verdict(r10: float, chance: float, n: int = 0) -> str:
    """A shop owner's reading of title -> picture R@10 against a random ranking's."""
    from mmtui.metrics import beats_chance

    if not beats_chance(r10 * n, n, chance) if n else r10 < 3 * chance:
        return (f"[yellow]Pictures: words find the right picture about as often as chance ({r10:.0%} in the top 10, "
                f"chance {chance:.0%}); searches lean on the words.[/]")
    if r10 < 0.5:
        return (f"Pictures: words find the right picture sometimes ({r10:.0%} in the top 10, chance {chance:.0%}); "
                "searching by picture works for broad looks, not exact products.")
    return f"Pictures: words find the right picture {r10:.0%} of the time in the top 10 (chance {chance:.0%})."


def print_hits(result, rows=None, prices: bool = False) -> None:
    """The hits as a table; `rows` (mmtui.query.arrange.Collapsed, one per hit): their variants shown as "+3 colours";
    `prices`: a price column (results sorted by price)."""
    labels = {row.hit.id: row.label for row in rows or []}
    understood = getattr(result, "understood", None)
    label = understood.label() if understood is not None and not understood.empty else ""
    notes = getattr(result, "notes", None) or []
    if not result.hits:
        out.print(f"No results for {result.query!r} (mode {result.mode}).")
        if label:
            out.print(f"understood: {label}", markup=False)
        for note in notes:
            out.print(f"[yellow]{escape(note)}[/]")
        return
    table = Table(title=f"{result.mode} search: {result.query}  ({result.took_ms:.0f} ms)", title_justify="left")
    if label:
        table.caption = f"understood: {label}"
        table.caption_justify = "left"
    for name, justify in (("#", "right"), ("id", "left"), ("title", "left"), ("category", "left"),
                          ("colour", "left"), ("score", "right")):
        table.add_column(name, justify=justify, overflow="fold" if name == "title" else "ellipsis")
    priced = prices and any(h.price is not None for h in result.hits)
    if priced:
        table.add_column("price", justify="right")
    shares = any(getattr(h, "shares", None) for h in result.hits)
    if shares:
        table.add_column("signals", overflow="fold")
    for hit in result.hits:
        title = hit.title + ("" if hit.image_status == "ok" else " [dim](no image)[/]")
        tags = getattr(hit, "tags", None) or []
        if tags:
            title += f" [dim]· {', '.join(tags[:3])}[/]"
        if labels.get(hit.id):
            title += f" [cyan]{escape(labels[hit.id])}[/]"
        row = [str(hit.rank), hit.id, title, hit.category, hit.colour, f"{hit.score:.4f}"]
        if priced:
            row.append("" if hit.price is None else f"{hit.price:,g}")
        if shares:
            row.append(" · ".join(f"{SHORT.get(k, k)} {v:.0%}" for k, v in sorted(
                (hit.shares or {}).items(), key=lambda kv: -kv[1]) if v > 0))
        table.add_row(*row)
    out.print(table)
    parts = getattr(result, "parts", None)
    if parts is not None and not parts.simple:
        out.print("parts: " + "  ".join(f"{p['sign']} {p['kind']} {p['value']!r}" + (
            f" x{p['weight']:g}" if p["weight"] != 1 else "") for p in parts.to_json()), markup=False)
    for note in notes:
        out.print(f"[yellow]{escape(note)}[/]")


def print_duplicates(report, limit: int = 20) -> None:
    """mmtui duplicates' groups (mmtui.query.duplicates.DuplicateReport), `limit` per kind."""
    for name, groups in (("same picture", report.picture), ("same title up to colour and size words", report.title)):
        if groups is None:
            continue
        n = sum(len(g.ids) for g in groups)
        table = Table(title=f"{name}: {counted(len(groups), 'group')}, {counted(n, 'product')}",
                      title_justify="left")
        for column in ("#", "id", "title", "colour"):
            table.add_column(column, overflow="fold")
        for i, g in enumerate(groups[:limit], start=1):
            for j, (pid, title, colour) in enumerate(zip(g.ids, g.titles, g.colours)):
                label = (str(i) if j == 0 else "cos " + f"{g.similarity:.3f}" if j == 1 and g.similarity is not None
                         else "")
                table.add_row(label, pid, escape(title), colour, end_section=j == len(g.ids) - 1)
        out.print(table)
        if len(groups) > limit:
            out.print(f"[dim]… {len(groups) - limit:,} more groups (--limit, --json or --report list them all)[/]")


def print_facets(facets) -> None:
    """Each facet's values with their counts over the results counted (mmtui.query.arrange.ResultFacets)."""
    out.print(f"[bold]facets of the top {facets.counted} results[/]")
    for name, values in facets.facets.items():
        shown = ", ".join(f"{v.value} {v.count}" for v in values[:12])
        more = f", … {len(values) - 12} more" if len(values) > 12 else ""
        out.print(f"  {name}: {escape(shown)}{more}")


SHORT = {"lexical": "lex", "image": "img", "text": "txt", "fused": "fus", "kind": "kind"}


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


def fit_table(fusion, fit) -> Table:
    """What `mmtui train hybrid` prints: the learned fused weight (a FusionFit) and hybrid weights (a HybridFit) vs
    their defaults."""
    table = Table(title=f"learned on the {fit.split} split ({', '.join(f'{n} {s}' for s, n in fit.n_queries.items())} "
                        f"queries), {fit.metric}", title_justify="left")
    table.add_column("what")
    table.add_column("learned")
    table.add_column(fit.metric, justify="right")
    table.add_column("default", justify="left")
    table.add_column(f"{fit.metric} (default)", justify="right")
    table.add_row("fused image weight", f"{fusion.image_weight:.2f}", f"{fusion.score:.3f}", "0.50",
                  f"{fusion.default_score:.3f}")
    table.add_row("hybrid weights", ", ".join(f"{s} {w:g}" for s, w in fit.weights.items()), f"{fit.score:.3f}",
                  "RRF, equal weights", f"{fit.equal_score:.3f}")
    for s, v in fit.single.items():
        table.add_row(f"  {s} alone", "", f"{v:.3f}", "", "")
    return table


def print_regions(result, per_region: int = 3) -> None:
    """A region search (mmtui.query.regions): each proposed region's box, score and best products."""
    width, height = result.size
    out.print(f"[bold]{len(result.regions)} regions[/] of {result.query} ({width}x{height}, {result.candidates} "
              f"windows scored, {result.took_ms:.0f} ms, mode {result.mode})")
    if not result.regions:
        out.print("No region looks like a product of this catalog.")
        return
    table = Table(show_lines=False)
    table.add_column("#", justify="right", no_wrap=True, min_width=2)
    table.add_column("region x,y,w,h", no_wrap=True, min_width=15)
    table.add_column("score", justify="right", no_wrap=True, min_width=5)  # the cosine of its closest product
    table.add_column("best products", no_wrap=True, overflow="ellipsis", max_width=max(20, out.width - 37))
    for n, region in enumerate(result.regions, start=1):
        best = "\n".join(f"[dim]{h.score:.3f}[/]  {h.id}  {h.title}" for h in region.hits[:per_region])
        table.add_row(str(n), str(region.box), f"{region.score:.3f}", best or "[dim](none)[/]")
    out.print(table)
    out.print("[dim]search one region: mmtui search --image PATH --region X,Y,W,H · all hits: --json[/]")
