"""Reports for people: the library's results (dataclasses) as rich tables and Markdown. Library code returns
data; the command line prints these, and the benchmarks write the Markdown next to the JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from rich import box
from rich.table import Table

from mmtui.build.enrich import EnrichReport
from mmtui.evaluation.evaluate import SKIP_REASONS, CompareReport, EvalReport, Skip
from mmtui.evaluation.modes import ModesReport
from mmtui.evaluation.shopper import ShopperReport
from mmtui.train.weights.understanding import UnderstandingFit


# -- enrich --------------------------------------------------------------------------------------------------

def enrich_table(report: EnrichReport) -> Any:
    """Tag accuracy against the catalog's own fields, next to chance (a rich renderable; the CLI prints it)."""

    table = Table(title=f"tagged {report.products:,} product images · {report.conflicts:,} text/image colour "
                        f"conflicts · {report.seconds:.1f}s", title_justify="left",
                  caption="vs the catalog's own field; chance = uniform guess over the vocabulary, majority = always "
                          "the most common value(s); family = a close colour counts", caption_justify="left")
    for head in ("vocabulary", "products", "terms", "acc@1", "acc@3", "chance@1", "chance@3", "majority@1",
                 "majority@3", "family@1"):
        table.add_column(head, justify="left" if head == "vocabulary" else "right")
    for vocab_name, acc in report.accuracy.items():
        table.add_row(vocab_name, f"{acc['n']:,}", str(acc["vocab_size"]),
                      *(f"{acc[k]:.3f}" if k in acc else "" for k in ("acc@1", "acc@3", "chance@1", "chance@3",
                                                                        "majority@1", "majority@3", "family@1")))
    return table


def conflicts_table(rows: list[dict]) -> Any:

    table = Table(title="text says one colour, the image shows another", title_justify="left")
    for head in ("id", "title", "colour", "detail", "margin"):
        table.add_column(head, justify="right" if head == "margin" else "left")
    for r in rows:
        table.add_row(str(r["id"]), r["title"] or "", r["colour"] or "", r["detail"], f"{r['margin']:.3f}")
    return table


# -- evaluate ------------------------------------------------------------------------------------------------

def eval_table(report: EvalReport) -> Any:
    """One row of figures: queries, R@1/3/5/10 (and R@k), MRR, nDCG@10, P@10, latency p50/p99."""

    table = Table(title=f"eval {report.source or ''} · mode {report.mode} · model {report.model}".replace("  ", " "),
                  title_justify="left")
    keys = ["recall@1", "recall@3", "recall@5", "recall@10"]
    heads = ["R@1", "R@3", "R@5", "R@10"]
    extra = report.k not in (1, 3, 5, 10)
    if extra:
        heads.append(f"R@{report.k}")
    heads += ["MRR", "nDCG@10", "P@10"]
    table.add_column("queries", justify="right")
    for head in heads:
        table.add_column(head, justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    figures = [report.metrics[key] for key in keys] + ([report.recall_at_k] if extra else []) + \
        [report.metrics["mrr"], report.metrics["ndcg@10"], report.metrics["p@10"]]
    table.add_row(str(int(report.metrics["n_queries"])), *(f"{v:.3f}" for v in figures),
                  f"{report.latency_ms_p50:.1f}", f"{report.latency_ms_p99:.1f}")
    return table


def skips_table(skips: Sequence[Skip], max_lines: int = 8) -> Any | None:
    """Skipped lines by reason (count, first line numbers, meaning); None when nothing was skipped."""
    if not skips:
        return None

    table = Table(title=f"skipped {len(skips)} (not in the figures)", title_justify="left")
    for head in ("reason", "count", "lines", "meaning"):
        table.add_column(head, justify="right" if head == "count" else "left")
    by_reason: dict[str, list[Skip]] = {}
    for skip in skips:
        by_reason.setdefault(skip.reason, []).append(skip)
    for reason, group in sorted(by_reason.items(), key=lambda item: -len(item[1])):
        lines = [str(s.line) for s in group if s.line is not None]
        shown = ", ".join(lines[:max_lines]) + (", ..." if len(lines) > max_lines else "")
        table.add_row(reason, str(len(group)), shown, SKIP_REASONS.get(reason, ""))
    return table


def compare_table(report: CompareReport) -> Any:
    """Every model's retrieval figures on this catalog, plus the modality gap of each (* = active)."""

    table = Table(title=f"{report.split} split: each title -> its own image, exact search over {report.pool} products",
                  title_justify="left", box=box.SIMPLE_HEAD,  # fits 80 columns: names are never cut
                  caption="match: mean cosine of matching title-image pairs; gap: match minus the mean cosine of "
                          "random pairs (--json has both)", caption_justify="left")
    table.add_column("model", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    for head in ("R@1", "R@5", "R@10", "MRR", "match", "gap"):
        table.add_column(head, justify="right", no_wrap=True, min_width=5)
    table.add_column("note", overflow="fold")
    for row in report.rows:
        label = row["label"] + (" *" if row.get("active") else "")
        if "recall@1" not in row:
            table.add_row(label, row["kind"], *([""] * 6), row.get("note", ""))
            continue
        table.add_row(label, row["kind"], *(f"{row[key]:.3f}" for key in
                                            ("recall@1", "recall@5", "recall@10", "mrr", "cos_match", "gap")),
                      row.get("note", ""))
    return table


# -- modes ---------------------------------------------------------------------------------------------------

def modes_markdown(report: ModesReport, title: str = "") -> str:
    """The table as Markdown (for the README)."""
    sets = list(report.n_queries)
    head = ["", "mode"] + [f"{s} {m}" for s in sets for m in ("R@10", "nDCG@10")]
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report.rows:
        cells = [row["group"], row["label"]] + [_fmt(row.get(f"{s}/{m}")) for s in sets for m in ("recall@10", "ndcg@10")]
        lines.append("| " + " | ".join(cells) + " |")
    queries = ", ".join(f"{n} {s} queries" for s, n in report.n_queries.items())
    fw = f"; fused image weight {report.fusion_weight:.2f}" if report.fusion_weight is not None else ""
    lines += ["", f"Model {report.model}; pool {report.pool} ({report.pool_size} products); {queries}{fw}; "
              f"enrichment tags {'in' if report.tags else 'not in'} the lexical index."]
    return "\n".join(lines) + "\n"


def modes_table(report: ModesReport) -> Any:
    """The table as a rich renderable (the CLI prints it)."""

    sets = list(report.n_queries)
    table = Table(title=f"search modes · pool {report.pool} ({report.pool_size} products) · model {report.model}",
                  title_justify="left",
                  caption=", ".join(f"{s}: {n} queries" for s, n in report.n_queries.items()) +
                  (f" · fused image weight {report.fusion_weight:.2f}" if report.fusion_weight is not None else ""),
                  caption_justify="left")
    table.add_column("")
    table.add_column("mode")
    for s in sets:
        table.add_column(f"{s} R@10", justify="right")
        table.add_column(f"{s} nDCG@10", justify="right")
    for row in report.rows:
        table.add_row(row["group"], row["label"],
                      *(_fmt(row.get(f"{s}/{m}")) for s in sets for m in ("recall@10", "ndcg@10")))
    return table


def write_modes_report(report: ModesReport, directory: Path, name: str, title: str = "") -> tuple[Path, Path]:
    """<directory>/<name>.md and .json."""
    directory.mkdir(parents=True, exist_ok=True)
    md = directory / f"{name}.md"
    js = directory / f"{name}.json"
    md.write_text(modes_markdown(report, title), encoding="utf-8")
    js.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return md, js


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


# -- shopper -------------------------------------------------------------------------------------------------

NAMES = {"p@10": "P@10", "ndcg@10": "nDCG@10", "recall@10": "R@10"}


def shopper_markdown(report: ShopperReport, title: str = "", metrics: Sequence[str] = ("p@10", "ndcg@10")) -> str:
    sets = list(report.n_queries)
    head = ["mode"] + [f"{s} {NAMES[m]}" for s in sets for m in metrics]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report.rows:
        cells = [row["label"]] + [_fmt(row.get(f"{s}/{m}")) for s in sets for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Model {report.model}; pool {report.pool}; " +
              ", ".join(f"{n} {s} queries" for s, n in report.n_queries.items()) + ". Best possible: P@10 is "
              "capped where fewer than 10 products are relevant."]
    return "\n".join(lines) + "\n"


def shopper_table(report: ShopperReport) -> Any:

    sets = list(report.n_queries)
    table = Table(title=f"shopper-phrased queries · pool {report.pool} · model {report.model}",
                  title_justify="left", caption=", ".join(f"{s}: {n} queries" for s, n in report.n_queries.items())
                  + " · relevant: right kind for the right person (grade 1), and colour (grade 2) · best possible: "
                  "P@10 is capped where fewer than 10 products are relevant",
                  caption_justify="left")
    table.add_column("mode")
    for s in sets:
        table.add_column(f"{s} P@10", justify="right")
        table.add_column(f"{s} nDCG@10", justify="right")
    for row in report.rows:
        table.add_row(row["label"], *(_fmt(row.get(f"{s}/{m}")) for s in sets for m in ("p@10", "ndcg@10")))
    return table


def write_shopper_report(report: ShopperReport, directory: Path, name: str, title: str = "",
                 metrics: Sequence[str] = ("p@10", "ndcg@10")) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    md, js = directory / f"{name}.md", directory / f"{name}.json"
    md.write_text(shopper_markdown(report, title, metrics), encoding="utf-8")
    js.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return md, js


# -- understanding -------------------------------------------------------------------------------------------

def understanding_table(fit: UnderstandingFit) -> Any:

    table = Table(title="query understanding: ranking weights learned on the train split, chosen on validation "
                        "(nDCG@10 of queries that name a kind)", title_justify="left")
    table.add_column("weights")
    for name in fit.val:
        table.add_column(f"val {name}", justify="right")
    table.add_row("learned " + ", ".join(f"{k} {v:g}" for k, v in fit.weights.items()),
                  *(f"{fit.val[n]:.3f}" for n in fit.val))
    table.add_row("default", *(f"{fit.val_default.get(n, 0):.3f}" for n in fit.val))
    if fit.val_before:
        table.add_row("in use before", *(f"{fit.val_before.get(n, 0):.3f}" for n in fit.val))
        table.title = (f"query understanding from your judgements: fitted on some judged queries, chosen on the "
                       f"others (shopper = held-out judged queries that name a kind) · "
                       f"{'PROMOTED' if fit.promoted else 'not promoted: the weights in use stay'}")
    if fit.notes:
        table.caption = " · ".join(fit.notes)
        table.caption_justify = "left"
    return table


# -- judgements, per-query figures, comparisons --------------------------------------------------------------

def per_query_table(report: EvalReport, limit: int | None = None) -> Any:
    """One row per query, worst nDCG@10 first: which queries fail, and how much of their top 10 was judged."""
    rows = sorted(report.per_query_json(), key=lambda r: (r.get("ndcg@10", 0.0), r.get("label", "")))
    table = Table(title=f"per query ({len(rows)}), worst nDCG@10 first", title_justify="left",
                  caption="judged@10: share of the top 10 with a judgement; unjudged hits count as not relevant",
                  caption_justify="left")
    for head in ("query", "nDCG@10", "P@10", "RR", "R@10", "judged@10", "1st hit", "unjudged"):
        table.add_column(head, justify="left" if head == "query" else "right", overflow="ellipsis",
                         no_wrap=head == "query", min_width=12 if head == "query" else None)
    for r in rows[:limit]:
        table.add_row(r["label"], f"{r['ndcg@10']:.3f}", f"{r['p@10']:.2f}", f"{r['mrr']:.3f}",
                      f"{r['recall@10']:.2f}", f"{r['judged@10']:.2f}", str(r["rank"] or "-"),
                      str(len(r.get("unjudged@10", []))))
    return table


def run_comparison_table(cmp: Any) -> Any:
    """Means, per-query wins/losses/ties and the paired test's p-value, metric by metric."""
    table = Table(title=f"{cmp.name_a} (A) vs {cmp.name_b} (B) on {cmp.n_queries} queries", title_justify="left",
                  caption=f"p: {cmp.test}; * p < 0.05", caption_justify="left")
    for head in ("metric", "A", "B", "A - B", "A wins", "B wins", "ties", "p"):
        table.add_column(head, justify="left" if head == "metric" else "right")
    for m, info in cmp.to_json()["metrics"].items():
        table.add_row(m, f"{info['a']:.4f}", f"{info['b']:.4f}", f"{info['delta']:+.4f}", str(info["wins_a"]),
                      str(info["wins_b"]), str(info["ties"]),
                      f"{info['p_value']:.4f}{' *' if info['significant'] else ''}")
    return table


def judgements_table(rows: list[dict]) -> Any:
    table = Table(title=f"{len(rows)} judged queries", title_justify="left",
                  caption="2 relevant · 1 partly · 0 not relevant; coverage@10: judged share of the top 10 last "
                          "shown for the query (in that mode)",
                  caption_justify="left")
    for head in ("query", "kind", "judged", "2", "1", "0", "coverage@10", "shown in"):
        table.add_column(head, justify="left" if head in ("query", "kind", "shown in") else "right",
                         overflow="ellipsis", no_wrap=True, min_width=12 if head == "query" else None,
                         ratio=1 if head == "query" else None)
    for r in rows:
        cov = "-" if r["coverage@10"] is None else f"{r['coverage@10']:.2f}"
        table.add_row(r["query"], r["kind"], str(r["judged"]), str(r["relevant"]), str(r["partly"]),
                      str(r["not_relevant"]), cov, r["shown_mode"] or "-")
    return table


def interleaving_table(rows: list[dict]) -> Any | None:
    if not rows:
        return None
    table = Table(title="team-draft interleaving: credit from judgements", title_justify="left")
    for head in ("query", "A", "B", "credit A", "credit B", "judged", "winner"):
        table.add_column(head, justify="right" if head.startswith("credit") or head == "judged" else "left",
                         overflow="ellipsis", max_width=40 if head == "query" else None)
    for r in rows:
        winner = r["ranker_a"] if r["credit_a"] > r["credit_b"] else r["ranker_b"] if r["credit_b"] > r["credit_a"] \
            else "tie"
        table.add_row(r["query"], r["ranker_a"], r["ranker_b"], f"{r['credit_a']:g}", f"{r['credit_b']:g}",
                      str(r["judged"]), winner)
    return table


def suggestions_table(suggestions: Sequence[Any], per_query: int = 5) -> Any:
    """One block per query (most at stake first), one row per unjudged pooled result (best rank first)."""
    table = Table(title="judge next: queries with most ranking weight on unjudged results", title_justify="left",
                  caption="stake: sum of 1/log2(1 + best rank) over unjudged pooled results; disagree: "
                          "1 - overlap of the rankers' top 10s", caption_justify="left")
    for head in ("query", "stake", "disagree", "rank", "id", "title", "found by"):
        table.add_column(head, justify="right" if head in ("stake", "disagree", "rank") else "left",
                         overflow="ellipsis", no_wrap=True, min_width=6 if head == "id" else len(head),
                         max_width={"query": 20, "title": 26}.get(head))
    for s in suggestions:
        shown = s.unjudged[:per_query]
        for i, u in enumerate(shown):
            first = i == 0
            table.add_row(s.query if first else "", f"{s.at_stake:.2f}" if first else "",
                          f"{s.disagreement:.2f}" if first else "", str(u["best_rank"]), u["id"], u["title"],
                          ",".join(u["rankers"]), end_section=i == len(shown) - 1)
    return table


def judged_fit_table(fit: Any) -> Any:
    """Hybrid weights learned from judgements: current vs learned weights, and the held-out queries before/after."""
    table = Table(title=f"hybrid weights from your judgements: fitted on {fit.n_train} queries, {fit.n_val} held out "
                        f"· {'PROMOTED' if fit.promoted else 'not promoted'}: {fit.reason}", title_justify="left",
                  caption="held-out figures: real hybrid searches of judged queries the weights were not fitted on, "
                          "graded (unjudged hits count as not relevant)", caption_justify="left")
    table.add_column("")
    table.add_column("weights", overflow="fold")
    for m in ("nDCG@10", "P@10", "MRR", "judged@10"):
        table.add_column(m, justify="right")
    keys = ("ndcg@10", "p@10", "mrr", "judged@10")

    def weights(w: dict) -> str:
        return " ".join(f"{k} {v:g}" for k, v in sorted(w.items()) if v)

    table.add_row("before (current)", weights(fit.current), *(f"{fit.before[m]:.4f}" for m in keys))
    table.add_row("after (learned)", weights(fit.weights), *(f"{fit.after[m]:.4f}" for m in keys))
    return table


def duplicates_markdown(report) -> str:
    """mmtui duplicates' whole list (mmtui.query.duplicates.DuplicateReport) as Markdown."""
    lines = [f"# Near-duplicate products ({report.products:,} products)", ""]
    sections = (("Same picture", report.picture, f"image vectors' cosine >= {report.threshold:g}"),
                ("Same title up to colour and size words", report.title, "variants of one product"))
    for name, groups, what in sections:
        if groups is None:
            continue
        lines += [f"## {name}: {len(groups):,} groups, {sum(len(g.ids) for g in groups):,} products", "",
                  f"({what})", "", "| group | ids | titles | colours |", "|---|---|---|---|"]
        for i, g in enumerate(groups, start=1):
            label = f"{i}" + (f" (cos {g.similarity:.3f})" if g.similarity is not None else "")
            cells = [", ".join(x.replace("|", "/") for x in values) for values in (g.ids, g.titles, g.colours)]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
