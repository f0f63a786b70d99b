"""The dev queries of the words people type (benchmarks/queries/words-dev.jsonl) on one built index: the understood
kind (and person, where a line names one) against the one the line expects, as `mmtui search` reads them.

    PYTHONPATH=. .venv/bin/python benchmarks/words_dev.py --data-dir market-index --catalog market

A line's "kind" null means no kind is sure: right when none is understood. The last line for a query counts (a
later issue may expect more than an earlier one did). These queries were used for tuning: they guard against harm
and show a change on the queries it was made for; they are no evaluation. Prints a Markdown table and the count.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEV = Path(__file__).resolve().parent / "queries" / "words-dev.jsonl"


def dev_lines(catalog: str, path: Path = DEV) -> list[dict]:
    """The catalog's dev lines, the last one for each query."""
    lines: dict[str, dict] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            line = json.loads(raw)
            if line.get("catalog") == catalog:
                lines[line["query"]] = line
    return list(lines.values())


def main() -> None:
    from mmtui.config import Settings
    from mmtui.query.service import SearchService

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--catalog", required=True, help="the catalog name the lines give (sample, market)")
    args = parser.parse_args()
    service = SearchService.open(Settings.load(data_dir=args.data_dir))
    service.load_model()
    right, rows = 0, ["| query | expected | understood | right |", "|---|---|---|---|"]
    lines = dev_lines(args.catalog)
    for line in lines:
        understood = service.understand(line["query"])
        kind = understood.best("kind") if understood is not None else None
        person = understood.parts.get("person", {}) if understood is not None else {}
        ok = kind == line.get("kind") and (not line.get("person") or line["person"] in person)
        right += ok
        expected = (line.get("kind") or "no kind") + (f" · for {line['person']}" if line.get("person") else "")
        label = understood.label() if understood is not None else ""
        rows.append(f"| {line['query']} | {expected} | {label or '(nothing)'} | {'yes' if ok else '**no**'} |")
    print("\n".join(rows))
    print(f"\n{right} of {len(lines)} right")


if __name__ == "__main__":
    main()
