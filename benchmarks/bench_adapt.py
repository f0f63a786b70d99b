"""What adapting the model to a catalog costs at build time, and what it buys, as a user runs it.

    .venv/bin/python -m benchmarks.bench_adapt CATALOG [--name ikea] [--out benchmarks/results]

Builds CATALOG twice into fresh data dirs with the `mmtui build-index` command, each in its own process: once
with `--no-adapt` (the shipped heads; the hybrid and understanding weights are learned in both) and once as is
(adapting). Reports each build's wall time, the encode time (images + texts), the adapting step's own time, the
targets (adapting <= 1.5x the encode time; the whole build <= 2.5x the --no-adapt build), and the validation
figures the build printed (title -> picture, category words -> picture; shipped vs adapted). Writes
adapt-NAME.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build(catalog: Path, data_dir: Path, *flags: str) -> tuple[dict, float]:
    """One `mmtui build-index CATALOG --json` in a fresh process: (its report, wall seconds)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mmtui.cli.main", "build-index", str(catalog), "--data-dir",
                           str(data_dir), "--json", *flags], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"build-index failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("catalog", type=Path)
    ap.add_argument("--name", default=None, help="report name (default: the catalog folder's name)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    name = args.name or args.catalog.resolve().name
    work = Path(tempfile.mkdtemp(prefix="mmtui-adapt-"))
    try:
        plain, plain_s = build(args.catalog, work / "no-adapt", "--no-adapt")
        adapted, adapted_s = build(args.catalog, work / "adapt")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    encode_s = adapted["image_seconds"] + adapted["text_seconds"]
    a = adapted["adaptation"]
    extra_s = float(a.get("seconds") or 0.0)
    result = {
        "catalog": str(args.catalog), "products": adapted["products"], "with_image": adapted["with_image"],
        "no_adapt_build_s": round(plain_s, 1), "adapt_build_s": round(adapted_s, 1), "encode_s": round(encode_s, 1),
        "adapting_s": round(extra_s, 1), "difference_s": round(adapted_s - plain_s, 1),
        "adapting_over_encode": round(extra_s / encode_s, 3) if encode_s else None,
        "build_ratio": round(adapted_s / plain_s, 3) if plain_s else None,
        "targets": {"adapting <= 1.5x encode": extra_s <= 1.5 * encode_s,
                    "build <= 2.5x no-adapt": adapted_s <= 2.5 * plain_s},
        "adaptation": a, "ranking": adapted.get("ranking"), "load_average": os.getloadavg()[0],
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"adapt-{name}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Adapting to the catalog: {name}", "",
             f"`python -m benchmarks.bench_adapt {args.catalog}` ({result['measured_at']}, load {result['load_average']:.1f}); "
             f"{result['products']:,} products, {result['with_image']:,} with images.", "",
             "| build | wall time |", "|---|---|",
             f"| `--no-adapt` (shipped heads; weights learned as in every build) | {plain_s:.1f} s |",
             f"| default (adapting to the catalog) | {adapted_s:.1f} s |",
             f"| of which encoding (images + texts) | {encode_s:.1f} s |",
             f"| of which adapting (two head trainings, keep test, re-projection) | {extra_s:.1f} s "
             f"({result['adapting_over_encode']:.2f}x the encode time; target <= 1.5x: "
             f"{'met' if result['targets']['adapting <= 1.5x encode'] else 'NOT met'}) |",
             f"| whole build vs `--no-adapt` | {result['build_ratio']:.2f}x (target <= 2.5x: "
             f"{'met' if result['targets']['build <= 2.5x no-adapt'] else 'NOT met'}) |", "",
             f"Adapting: {a.get('message')} ({a.get('n_train')} training, {a.get('n_val')} validation pairs; "
             f"{a.get('seconds')} s, {a.get('epochs')} epochs).", ""]
    if a.get("before"):
        lines += ["| validation | shipped | adapted |", "|---|---|---|"]
        for set_name, figures in a["before"].items():
            for metric in ("r1", "r10", "mrr", "ndcg@10"):
                if metric in figures:
                    lines.append(f"| {set_name} {metric} | {figures[metric]:.3f} | "
                                 f"{(a.get('after') or {}).get(set_name, {}).get(metric, float('nan')):.3f} |")
    (args.out / f"adapt-{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
