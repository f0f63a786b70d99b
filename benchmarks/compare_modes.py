"""Seed 004's table for one built index: every search mode on title and attribute queries of a split.

What `mmtui eval --compare-modes` prints, written as Markdown + JSON (benchmarks/results/<name>.{md,json}).

    .venv/bin/python benchmarks/compare_modes.py --data-dir scratch/fashion-idx --name modes-fashion
        [--split test] [--attribute-from OTHER_DATA_DIR] [--queries FILE.jsonl] [--learn]

--learn first learns the fused image weight and the hybrid weights on the val split (mmtui.train.weights.hybrid.train_hybrid).
--attribute-from: generate the attribute queries from another index of the same catalog (e.g. the full one when
this one lost its colours). --queries: a queries file of the eval contract as a third query set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    from mmtui.config import Settings
    from mmtui.evaluation.evaluate import load_queries
    from mmtui.train.weights.hybrid import train_hybrid
    from mmtui.cli.reports import write_modes_report as write_report
    from mmtui.evaluation.modes import compare_modes, default_query_sets
    from mmtui.query.service import SearchService
    from mmtui.store.db import Store

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--name", default="modes")
    parser.add_argument("--title", default="")
    parser.add_argument("--split", default="test")
    parser.add_argument("--attribute-from", type=Path, default=None)
    parser.add_argument("--queries", type=Path, default=None)
    parser.add_argument("--learn", action="store_true")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()

    settings = Settings.load(data_dir=args.data_dir)
    if args.learn:
        fusion, fit = train_hybrid(settings, split="val")
        print(f"learned: image weight {fusion.image_weight:.2f}, hybrid weights {fit.weights}", file=sys.stderr)
    service = SearchService.open(settings)
    other = Store.open(Settings.load(data_dir=args.attribute_from).db_path) if args.attribute_from else None
    sets = default_query_sets(service.store, args.split, attribute_store=other)
    if args.queries:
        sets["file"], _ = load_queries(args.queries)
    report = compare_modes(service, sets, split=args.split)
    md, js = write_report(report, args.results, args.name, args.title)
    print(md.read_text())
    print(f"wrote {md} and {js}", file=sys.stderr)


if __name__ == "__main__":
    main()
