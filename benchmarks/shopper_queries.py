"""Shopper-phrased queries on one built index: P@10 / nDCG@10 per search mode, with and without query understanding.

    .venv/bin/python benchmarks/shopper_queries.py --data-dir fashion-index --name shopper-fashion \
        [--learn] [--spec benchmarks/queries/fashion-shopper.jsonl] [--queries FILE.jsonl] [--titles]

Query sets (mmtui.evaluation.shopper, relevance: right kind for the right person = grade 1, and colour = grade 2):
- shopper: held-out phrasings (title nouns, other words for the person, other word orders) of the test split's
  (kind, person, colour) groups; relevance over the whole catalog (--pool split: the test split's products only);
- catalog: the same groups in the catalog's own words ("black casual shoes for men");
- spec: hand-written queries (--spec, facet specs resolved against the catalog);
- file: any queries file of the eval contract (--queries, e.g. IKEA's category.jsonl), scored as it is.
--titles adds the seeds' title queries (each test title finds its own product among the test split, R@10).
--learn first runs `mmtui train understanding` (weights learned on train-phrased queries of the train split,
chosen on validation). Writes benchmarks/results/<name>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from mmtui.config import Settings
    from mmtui.evaluation.evaluate import load_queries
    try:  # the title queries' home may move to a core module
        from mmtui.catalog.queries import split_queries
    except ImportError:
        from mmtui.evaluation.evaluate import split_queries
    from mmtui.query.service import SearchService
    from mmtui.cli.reports import shopper_markdown
    from mmtui.evaluation.shopper import ROWS, compare_shopper, shopper_query_sets, spec_queries
    from mmtui.train.weights.understanding import learn_understanding

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--name", default="shopper")
    parser.add_argument("--title", default="")
    parser.add_argument("--split", default="test")
    parser.add_argument("--pool", choices=("catalog", "split"), default="catalog")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--spec", type=Path, default=None)
    parser.add_argument("--queries", type=Path, default=None)
    parser.add_argument("--titles", action="store_true")
    parser.add_argument("--learn", action="store_true")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    service = SearchService.open(Settings.load(data_dir=args.data_dir))
    started = time.perf_counter()
    if args.learn:
        fit = learn_understanding(service)
        print(f"learned: {fit.weights} (val {fit.val}, default weights {fit.val_default})", file=sys.stderr)
    sets = shopper_query_sets(service.store, args.split, limit=args.limit, pool=args.pool)
    if args.spec:
        sets["spec"] = spec_queries(service.store, args.spec, None if args.pool == "catalog" else args.split)
    if args.queries:
        sets["file"], _ = load_queries(args.queries)
    report = compare_shopper(service, sets, pool=args.pool, split=args.split,
                             progress=lambda label: print(f"  {label}", file=sys.stderr))
    parts = [shopper_markdown(report, args.title)]
    out = {"shopper": report.to_json()}
    if args.titles:
        hybrid_rows = [r for r in ROWS if r[0] == "hybrid"]
        titles = compare_shopper(service, {"title": split_queries(service.store, args.split)}, pool="split",
                                 split=args.split, rows=hybrid_rows)
        parts.append(shopper_markdown(titles, "title queries (each finds its own product, test split)",
                                      metrics=("recall@10", "ndcg@10")))
        out["titles"] = titles.to_json()
    understanding = service.store.get_meta("understanding")
    weights = json.loads(understanding)["params"]["weights"] if understanding else "defaults (nothing learned)"
    parts.append(f"Ranking weights: {weights}. {time.perf_counter() - started:.0f} s.\n")
    text = "\n".join(parts)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.md").write_text(text, encoding="utf-8")
    (args.results / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(text)
    print(f"wrote {args.results / (args.name + '.md')} and .json", file=sys.stderr)


if __name__ == "__main__":
    main()
