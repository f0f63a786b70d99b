"""Region search on scene photos: IKEA "shop the look" rooms and grocery shelf photos, whole photo vs regions.

    .venv/bin/python -m benchmarks.regions --ikea-index DIR --grocery-index DIR [--out benchmarks/results]

Each data dir holds the catalog built with the default model (`mmtui build-index /work/shared/catalogs/ikea
--data-dir DIR`). Protocol ("shop the look"): a photo's relevant set is every catalog product in it. Before: the
whole photo is one image query (`mmtui eval FILE --mode image -k 20`). After: mmtui proposes N=8 regions, searches
each, and the merged list (each region's best in turn) is scored (`mmtui eval FILE --mode image --regions auto
-k 20`); the same metrics on the first 10 and 20 of each list. Writes regions.md and regions.json.

The design (window sizes, scoring by the closest product image, suppression at IoU 0.3, 8 regions, round-robin
merge) was chosen on development photos only: lines 2, 4, 6, ... of rooms.jsonl and 200 grocery photos drawn
apart from the 300 reported (`--ablations` prints those comparisons again). Figures are reported on all 205
rooms, on the held-out rooms alone (lines 1, 3, 5, ...), and on 300 grocery photos (a fixed random draw, seed 0,
of 2,485: the whole set takes ~1 s a photo here).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from benchmarks.bench_util import load_average, log

IKEA = Path("/work/shared/catalogs/ikea")
GROCERY = Path("/work/shared/catalogs/grocery")
KEYS = ("n_queries", "recall@1", "recall@10", "recall@20", "p@10", "ndcg@10", "mrr", "latency_ms_p50",
        "latency_ms_p99")


def grocery_split(queries: list, n: int = 300, dev: int = 200) -> tuple[list, list]:
    """(reported, development) photos: a fixed random draw of n, and dev more drawn apart from them."""
    order = list(range(len(queries)))
    random.Random(0).shuffle(order)
    rest = order[n:]
    random.Random(1).shuffle(rest)
    return [queries[i] for i in order[:n]], [queries[i] for i in rest[:dev]]


def score(service, queries: list, regions: int | None) -> dict:
    from mmtui.evaluation.evaluate import run_eval

    report = run_eval(service, queries, mode="image", k=20, regions=regions)
    body = report.to_json()
    return {key: body[key] for key in KEYS}


def measure(data_dir: Path, sets: dict[str, list], limit: int) -> dict:
    from mmtui.config import Settings
    from mmtui.query.service import SearchService

    service = SearchService.open(Settings.load(data_dir=data_dir))
    service.load_model()
    out = {}
    for name, queries in sets.items():
        log(f"{name}: {len(queries)} photos, whole")
        before = score(service, queries, None)
        log(f"{name}: regions")
        after = score(service, queries, limit)
        out[name] = {"whole photo": before, f"{limit} regions": after}
    service.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ikea-index", type=Path, required=True)
    parser.add_argument("--grocery-index", type=Path, required=True)
    parser.add_argument("--grocery-n", type=int, default=300)
    parser.add_argument("--regions", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--ablations", action="store_true", help="compare design choices on the development photos")
    args = parser.parse_args()
    from mmtui.evaluation.evaluate import load_queries

    rooms, _ = load_queries(IKEA / "rooms.jsonl")
    shelves, _ = load_queries(GROCERY / "photo.jsonl")
    reported, dev = grocery_split(shelves, args.grocery_n)
    if args.ablations:
        from benchmarks.regions_ablations import run_ablations

        run_ablations(args.ikea_index, rooms[1::2], args.grocery_index, dev)
        return
    started = time.time()
    figures = measure(args.ikea_index, {"ikea rooms (all 205)": rooms,
                                        "ikea rooms (held out: lines 1, 3, 5, ...)": rooms[0::2]}, args.regions)
    figures.update(measure(args.grocery_index, {f"grocery photos ({len(reported)} of {len(shelves)})": reported},
                           args.regions))
    body = {"figures": figures, "regions": args.regions, "seconds": round(time.time() - started),
            "load_average": load_average(), "command": "python -m benchmarks.regions --ikea-index "
            f"{args.ikea_index} --grocery-index {args.grocery_index}"}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "regions.json").write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    print(markdown_table(figures))


def markdown_table(figures: dict) -> str:
    lines = ["| set | search | " + " | ".join(KEYS) + " |", "|---|---|" + "---:|" * len(KEYS)]
    for name, runs in figures.items():
        for how, m in runs.items():
            lines.append(f"| {name} | {how} | " + " | ".join(
                f"{m[k]:.0f}" if k.startswith(("latency", "n_")) else f"{m[k]:.3f}" for k in KEYS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
