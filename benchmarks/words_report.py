"""Before/after tables of the words people type, from the runs benchmarks/words_sets.py and shopper_queries.py wrote.

    .venv/bin/python benchmarks/words_report.py --results benchmarks/results --catalogs fashion ikea grocery market

Reads <results>/words-<catalog>-{before,after}.json and shopper-<catalog>-{before,after}.json and writes the
tables into <results>/words-tables.md (pasted under "Tables" in words.md, the quality report's section on the
words people type) and words.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def words_table(before: dict, after: dict) -> list[str]:
    rows_b = {r["set"]: r for r in before["rows"]}
    out = ["| set | queries | P@10 before | P@10 after | nDCG@10 before | nDCG@10 after |", "|---|---|---|---|---|---|"]
    for r in after["rows"]:
        b = rows_b.get(r["set"])
        if b is None:
            continue
        out.append(f"| {r['set']} | {r['n']} | {b['p@10']:.3f} | **{r['p@10']:.3f}** | {b['ndcg@10']:.3f} | "
                   f"**{r['ndcg@10']:.3f}** |")
    return out


def shopper_table(before: dict, after: dict) -> list[str]:
    """The default search (hybrid + understanding) on each generated set and on title queries (R@10 there)."""
    label = "hybrid + understanding (default)"
    out = ["| set | P@10 (titles: R@10) before | after | nDCG@10 before | after |", "|---|---|---|---|---|"]
    for key in ("shopper", "titles"):
        b, a = before.get(key), after.get(key)
        if not b or not a:
            continue
        rb = next(r for r in b["rows"] if r.get("label") == label)
        ra = next(r for r in a["rows"] if r.get("label") == label)
        for name in [k.split("/")[0] for k in ra if k.endswith("/ndcg@10")]:
            p = "recall@10" if key == "titles" else "p@10"
            out.append(f"| {name} | {rb.get(f'{name}/{p}', 0):.3f} | **{ra.get(f'{name}/{p}', 0):.3f}** | "
                       f"{rb.get(f'{name}/ndcg@10', 0):.3f} | **{ra.get(f'{name}/ndcg@10', 0):.3f}** |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--catalogs", nargs="+", default=["fashion", "ikea", "grocery", "market"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out_dir = args.out or args.results
    md, data = [], {}
    for c in args.catalogs:
        wb, wa = _load(args.results / f"words-{c}-before.json"), _load(args.results / f"words-{c}-after.json")
        sb, sa = _load(args.results / f"shopper-{c}-before.json"), _load(args.results / f"shopper-{c}-after.json")
        if wb and wa:
            md += [f"### {c}: sets phrased the way people type", "", f"before: `{wb['command']}`  ",
                   f"after: `{wa['command']}`", ""] + words_table(wb, wa) + [""]
            data[f"words-{c}"] = {"before": wb["rows"], "after": wa["rows"]}
        if sb and sa:
            md += [f"### {c}: the project's shopper sets and title queries", ""] + shopper_table(sb, sa) + [""]
            data[f"shopper-{c}"] = {"before": sb, "after": sa}
    (out_dir / "words-tables.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (out_dir / "words.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
