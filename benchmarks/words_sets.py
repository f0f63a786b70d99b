"""Query sets written the way people type, family by family, on one built index: P@10 and nDCG@10 (hybrid, the
default search: understanding on), as `mmtui search` would answer them.

    PYTHONPATH=. .venv/bin/python benchmarks/words_sets.py --data-dir fashion-index --name words-fashion-after \
        --sets /work/evalsets/fashion/*.jsonl [--typo-dev] [--learn]

Each file's lines are grouped by their "family" key (people, typos, typos-clean, spacing, synonyms, shopper, price,
titles, ...; a file without one is its own family). --typo-dev adds a generated typo set (this project's own, for
development): the catalog's held-out shopper phrasings (mmtui.catalog.phrasings) with one or two edits in their
longest word, scored next to the same queries spelled right, on the same judgments. --learn first learns the
understanding's ranking weights as build-index does (mmtui.train.weights.understanding). The script imports
`mmtui` from PYTHONPATH, so the same script measures any checkout ("before" on main, "after" on a branch).
Writes benchmarks/results/<name>.md and .json (--per-query: the .json also has each query's P@10, nDCG@10 and
understood line, for per-query diffs between two runs; write those outside the repo for the blind sets).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def family_queries(path: Path) -> dict[str, list]:
    """family -> [EvalQuery] of one file (mmtui.evaluation.evaluate.load_queries, grouped by each line's family)."""
    from mmtui.evaluation.evaluate import load_queries

    families: dict[int, str] = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            families[i] = json.loads(line).get("family") or path.stem
    queries, _ = load_queries(path)
    out: dict[str, list] = {}
    for q in queries:
        out.setdefault(families.get(q.line, path.stem), []).append(q)
    return out


def misspell(word: str, rng: random.Random) -> str:
    """One realistic edit: a dropped, doubled, swapped or replaced letter (never the first)."""
    i = rng.randrange(1, len(word))
    op = rng.choice(("drop", "double", "swap", "replace"))
    if op == "drop":
        return word[:i] + word[i + 1:]
    if op == "double":
        return word[:i] + word[i] + word[i:]
    if op == "swap" and i < len(word) - 1:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    near = "aeiou" if word[i] in "aeiou" else "bcdfghklmnprstvwz"
    return word[:i] + rng.choice([c for c in near if c != word[i]] or ["x"]) + word[i + 1:]


def typo_dev_sets(store, limit: int = 150, seed: int = 7) -> dict[str, list]:
    """("typos-dev", "typos-dev-clean"): held-out shopper phrasings of the test split with the longest word
    misspelled (two edits from 8 letters on), and the same queries as they were."""
    from mmtui.catalog.phrasings import phrased_queries
    from mmtui.catalog.queries import EvalQuery

    rng = random.Random(seed)
    typos, clean = [], []
    for q in phrased_queries(store, "test", "heldout", limit=limit, seed=seed):
        words = q.text.split()
        longest = max(range(len(words)), key=lambda i: len(words[i]))
        word = words[longest]
        if len(word) < 5 or not word.isalpha():
            continue
        wrong = misspell(word, rng)
        if len(word) >= 8:
            wrong = misspell(wrong, rng)
        if wrong == word:
            continue
        typos.append(EvalQuery(q.relevant, " ".join(words[:longest] + [wrong] + words[longest + 1:])))
        clean.append(EvalQuery(q.relevant, q.text))
    return {"typos-dev": typos, "typos-dev-clean": clean}


def main() -> None:
    from mmtui.config import Settings
    from mmtui.evaluation.evaluate import run_eval
    from mmtui.query.service import SearchService

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--title", default="")
    parser.add_argument("--sets", type=Path, nargs="*", default=[])
    parser.add_argument("--typo-dev", action="store_true")
    parser.add_argument("--learn", action="store_true")
    parser.add_argument("--per-query", action="store_true",
                        help="also write each query's figures (keep such files outside the repo for blind sets)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    service = SearchService.open(Settings.load(data_dir=args.data_dir))
    started = time.perf_counter()
    if args.learn:
        from mmtui.train.weights.understanding import learn_understanding

        fit = learn_understanding(service)
        print(f"learned: {fit.weights} (val {fit.val})", file=sys.stderr)
    groups: dict[str, list] = {}
    for path in args.sets:
        for family, queries in family_queries(path).items():
            groups[f"{path.stem}/{family}" if family != path.stem else family] = queries
    if args.typo_dev:
        groups.update(typo_dev_sets(service.store))
    rows, examples, per_query = [], {}, {}
    for name, queries in groups.items():
        if not queries:
            continue
        report = run_eval(service, queries, mode="hybrid")
        m = report.metrics
        rows.append({"set": name, "n": len(queries), "p@10": round(m["p@10"], 4), "ndcg@10": round(m["ndcg@10"], 4),
                     "recall@10": round(m.get("recall@10", 0.0), 4), "latency_ms_p50": round(report.latency_ms_p50, 1)})
        print(f"  {name}: n={len(queries)} P@10 {m['p@10']:.3f} nDCG@10 {m['ndcg@10']:.3f}", file=sys.stderr)
        examples[name] = [_understood(service, q.text) for q in queries[:3]]
        if args.per_query:
            per_query[name] = [{"query": r["label"], "p@10": r.get("p@10"), "ndcg@10": r.get("ndcg@10"),
                                "understood": _understood(service, r["label"])["understood"]}
                               for r in report.per_query]
    import mmtui

    command = "PYTHONPATH=" + str(Path(mmtui.__file__).parent.parent) + " python " + " ".join(sys.argv)
    md = [f"# {args.title or args.name}", "", f"`{command}`", "",
          "| set | queries | P@10 | nDCG@10 | R@10 | p50 ms |", "|---|---|---|---|---|---|"]
    md += [f"| {r['set']} | {r['n']} | {r['p@10']:.3f} | {r['ndcg@10']:.3f} | {r['recall@10']:.3f} | "
           f"{r['latency_ms_p50']:.0f} |" for r in rows]
    understanding = service.store.get_meta("understanding")
    weights = json.loads(understanding)["params"]["weights"] if understanding else "defaults"
    md += ["", f"Hybrid search, understanding on; ranking weights {weights}; {time.perf_counter() - started:.0f} s.",
           ""]
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / f"{args.name}.md").write_text("\n".join(md), encoding="utf-8")
    (args.results / f"{args.name}.json").write_text(json.dumps(
        {"command": command, "rows": rows, "weights": weights, "examples": examples}
        | ({"per_query": per_query} if args.per_query else {}), indent=2) + "\n",
        encoding="utf-8")
    print("\n".join(md))


def _understood(service, text: str | None) -> dict:
    understood = service.understand(text or "")
    return {"query": text, "understood": understood.label() if understood is not None else None}


if __name__ == "__main__":
    main()
