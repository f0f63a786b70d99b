"""What a query was understood to ask for and its top 3, as `mmtui search` answers (hybrid, understanding on).

    PYTHONPATH=. .venv/bin/python benchmarks/words_examples.py --data-dir fashion-index --name words-examples-fashion \
        "something for my dad's birthday" "sneekers" "ladies wristwatch"

Writes benchmarks/results/<name>.md and .json (query, understood line, notes, top 3 titles with their kind).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    from mmtui.config import Settings
    from mmtui.query.service import SearchService

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--where", action="append", default=[])
    parser.add_argument("queries", nargs="+")
    args = parser.parse_args()
    from mmtui.store.filters import parse_where

    service = SearchService.open(Settings.load(data_dir=args.data_dir))
    service.load_model()
    filters = [parse_where(w) for w in args.where]
    out, md = [], [f"# {args.name}", "", f"`{' '.join(sys.argv)}` on {args.data_dir}", "",
                   "| query | understood | top 3 |", "|---|---|---|"]
    for query in args.queries:
        result = service.search(query, k=3, filters=filters)
        understood = result.understood.label() if result.understood is not None else ""
        notes = list(getattr(result, "notes", []) or [])
        top = [f"{h.title} ({h.gender + ', ' if h.gender else ''}{h.category})" for h in result.hits]
        out.append({"query": query, "understood": understood, "notes": notes, "top3": top})
        shown = understood + ("".join(f" — *{n}*" for n in notes))
        md.append(f"| {query} | {shown or '(nothing)'} | {'<br>'.join(top) or 'no results'} |")
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (args.results / f"{args.name}.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n",
                                                   encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
