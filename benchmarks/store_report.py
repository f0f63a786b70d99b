"""Markdown tables from benchmarks/bench_store.py's results (WORK/store-results/*.json):
python -m benchmarks.store_report > table.md"""

from __future__ import annotations

import json

from .bench_util import WORK


def _load(prefix: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((WORK / "store-results").glob(f"{prefix}-*.json"))]


def main() -> None:
    builds = {(b["n"], b["store"], b["kind"]): b for b in _load("build")}
    print("| n | store | index | build s wall / CPU (load) | peak RSS MB | files MB | ef (self-check) | open s | "
          "first query ms | recall@10 products / shopper | ANN k=100 p50 / p99 ms wall (CPU) | RSS after MB | "
          "2nd process adds MB (its open s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in sorted(_load("search"), key=lambda r: (r["n"], r["kind"], r["store"])):
        b = builds.get((s["n"], s["store"], s["kind"]), {})
        second = s.get("second_process", {})
        files = sum(v for v in b.get("files_mb", {}).values())
        print(f"| {s['n']:,} | {s['store']} | {s['kind']} | {b.get('build_s')} / {b.get('build_cpu_s')} "
              f"({b.get('load_average', ['?'])[0]}) | {b.get('peak_rss_mb')} | {files:.0f} | {s['ef']} "
              f"({b.get('self_check_recall', 0):.4f}) | {s['open_s']} | {s['first_query_ms']} | "
              f"{s['recall_at_10']['products']} / {s['recall_at_10']['shopper']} | "
              f"{s['wall_ms']['p50']} / {s['wall_ms']['p99']} ({s['cpu_ms']['p50']} / {s['cpu_ms']['p99']}) | "
              f"{s['rss_after']['Rss']} | {second.get('added_private_mb')} ({second.get('open_s')}) |")
    updates = _load("update")
    if updates:
        print()
        print("| n | store | index | +added / -removed | update s (incl. self-check, save) | full build s | share | "
              "top-10 overlap with exact after update | deleted slots | load |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for u in updates:
            print(f"| {u['n']:,} | {u['store']} | {u['kind']} | +{u['added']:,} / -{u['removed']:,} | {u['update_s']} | "
                  f"{u['full_build_s']} | {u['share_of_full_build']:.1%} (CPU {u.get('cpu_share_of_full_build', 0):.1%}) | "
                  f"{u['top10_overlap_with_exact_after_update']} | {u['deleted_slots']} | {u['load_average'][0]} |")


if __name__ == "__main__":
    main()
