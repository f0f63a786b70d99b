"""The benchmark report in one command: `python -m benchmarks.run --out benchmarks/results`.

Writes speed.json (every figure) and speed.md (tables, targets met / not met, the machine and its load).
Sections: machine, encode, query, ann, tui, cold, memory, rebuild, fastpath, scale, incremental (--sections to
pick; incremental runs only when named).
Synthetic stores and built indexes are cached under benchmarks/.work, so a second run is much faster.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks import bench_ann, bench_cold, bench_encode, bench_fastpath, bench_incremental, bench_memory, bench_query, bench_rebuild, bench_tui  # noqa: E402
from benchmarks import bench_scale  # noqa: E402
from benchmarks.bench_util import REPO, lite_available, load_model, log, machine  # noqa: E402

SECTIONS = ("machine", "encode", "query", "ann", "tui", "cold", "memory", "rebuild", "fastpath", "scale",
            "incremental")
DEFAULT_SECTIONS = SECTIONS[:-1]  # incremental copies a large store and rebuilds it whole: on request


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="report folder")
    p.add_argument("--sections", default=",".join(DEFAULT_SECTIONS), help="comma-separated subset of: " + ", ".join(SECTIONS))
    p.add_argument("--sizes", default="2000,10000,100000", help="store sizes for query / ann / memory")
    p.add_argument("--scale-sizes", default="1000000", help="store sizes for the scale section (1M: cached after "
                   "a first build of ~3 min of inserts plus the three graphs)")
    p.add_argument("--scale-products", type=Path, default=None, metavar="DIR",
                   help="scale: a store of benchmarks.gen_products' distinct products from DIR (not noisy copies)")
    p.add_argument("--models", default="lite,tiny,vitb32", help="models for the encode section (lite, tiny, vitb32)")
    p.add_argument("--build-n", default="lite=128,tiny=512,vitb32=64",
                   help="products built per model in the encode section, e.g. lite=256,vitb32=96")
    p.add_argument("--query-model", default="lite", help="model for query latency, ann, memory, tui (lite if present)")
    p.add_argument("--fashion-index", type=Path, default=REPO / "scratch" / "fashion",
                   help="a data dir with the Fashion catalog built (vector source for synthetic stores, rebuild test)")
    p.add_argument("--queries", type=int, default=40, help="distinct queries per mode")
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads")
    p.add_argument("--rebuild-stores", action="store_true", help="rebuild the cached synthetic stores")
    p.add_argument("--ann-tune", type=int, default=0, metavar="N",
                   help="also sweep HNSW M / ef_construction on N vectors of the largest store (slow)")
    p.add_argument("--incremental-sizes", default="100000",
                   help="store sizes for the incremental section (10k added, 1k removed), e.g. 1000000")
    p.add_argument("--incremental-full", choices=("measured", "recorded"), default="measured",
                   help="incremental: time a full rebuild of the changed store, or use the base store's recorded one")
    p.add_argument("--cold-baseline", type=Path, default=None, metavar="DIR",
                   help="cold: also run this source tree (e.g. `git archive` of an earlier commit), round-robin")
    p.add_argument("--cold-rounds", type=int, default=10, help="cold: fresh processes per command and source")
    p.add_argument("--cold-baseline-report", type=Path, default=None, metavar="SPEED.JSON",
                   help="cold: the baseline's speed.json (its tui and query sections), for the before / after table")
    p.add_argument("--merge", action="store_true",
                   help="keep the other sections of an existing speed.json in --out (re-run a few sections)")
    p.add_argument("--quick", action="store_true", help="small sizes, to check the harness (minutes -> seconds)")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.queries = "2000", 20
        args.scale_sizes = "10000"
        args.build_n = "lite=64,tiny=64,vitb32=32"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"unknown sections: {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",") if s]
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    build_n = {k: int(v) for k, v in (kv.split("=") for kv in args.build_n.split(",") if kv)}
    query_model = args.query_model
    notes: list[str] = []
    if query_model == "lite" and not lite_available():
        notes.append("The lite weights are not present: query latency, ANN, memory and TUI use `vitb32` "
                     "(random-init ViT-B-32) instead, so the lite latency targets are not measured.")
        query_model = "vitb32"
    fashion_index = args.fashion_index if (args.fashion_index / "catalog.db").is_file() else None
    report: dict = {"command": "python -m benchmarks.run " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "load_average_start": list(os.getloadavg()),
                    "query_model": query_model, "fashion_index": str(fashion_index) if fashion_index else None,
                    "sections": {}, "errors": {}, "notes": notes}
    if args.merge and (args.out / "speed.json").is_file():
        previous = json.loads((args.out / "speed.json").read_text())
        kept = {k: v for k, v in stamped_sections(previous).items() if k not in sections}
        report["sections"].update(kept)
        notes += [n for n in previous.get("notes", []) if not _MERGE_NOTE.match(n) and n not in notes]
    started = time.perf_counter()
    commit = git_commit()
    encoder = None
    stores: dict = {}

    def query_encoder():
        nonlocal encoder
        if encoder is None:
            encoder = load_model(query_model)
        return encoder

    def section(name: str, fn):
        if name not in sections:
            return None
        log(f"section {name}")
        at, load = time.strftime("%Y-%m-%d %H:%M:%S %Z"), [round(x, 2) for x in os.getloadavg()]
        t = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others
            report["errors"][name] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"
            log(f"section {name} failed: {exc}")
            return None
        result["_seconds"] = round(time.perf_counter() - t, 1)
        result["_run"] = {"at": at, "load_average": load, "command": report["command"], "git": commit}
        report["sections"][name] = result
        _write(args.out, report)  # partial reports survive a later failure
        return result

    section("machine", machine)
    section("encode", lambda: bench_encode.run(models, build_n))

    def query():
        enc = query_encoder()
        res = bench_query.run(enc, sizes, fashion_index, n_queries=args.queries, rebuild=args.rebuild_stores)
        return res

    section("query", query)

    def the_stores() -> dict:
        if not stores:
            enc = query_encoder()
            sources = bench_query.source_vectors(enc, fashion_index)
            for n in sizes:
                stores[n] = bench_query.synthetic_store(n, enc, sources)[0]
        return stores

    def ann():
        res = bench_ann.run(query_encoder(), the_stores())
        if args.ann_tune:
            n, settings = max(the_stores().items())
            res["tune"] = bench_ann.tune(query_encoder(), settings, n=min(args.ann_tune, n))
        return res

    section("ann", ann)
    section("tui", lambda: bench_tui.run(query_model))
    section("cold", lambda: bench_cold.run(bench_tui.sample_index(query_model), args.cold_baseline, args.cold_rounds,
                                           args.cold_baseline_report))
    section("memory", lambda: bench_memory.run(query_model, build_n.get(query_model, 128),
                                               {n: s for n, s in the_stores().items() if n >= 10_000}))
    section("rebuild", lambda: bench_rebuild.run(fashion_index, fallback_model="tiny"))
    section("fastpath", lambda: bench_fastpath.run(models, build_n, the_stores() if "query" in sections or
                                                   "ann" in sections else {}))
    section("scale", lambda: bench_scale.run(query_model, [int(x) for x in args.scale_sizes.split(",") if x],
                                             fashion_index, n_queries=args.queries, products=args.scale_products))
    section("incremental", lambda: bench_incremental.run([int(x) for x in args.incremental_sizes.split(",") if x],
                                                         args.incremental_full))
    report["load_average_end"] = list(os.getloadavg())
    report["seconds"] = round(time.perf_counter() - started, 1)
    _write(args.out, report)
    log(f"wrote {args.out / 'speed.md'} and speed.json in {report['seconds']} s")
    return 0


# how earlier --merge runs recorded where sections came from (one note per run, chained); now each section
# carries its own "_run" stamp
_MERGE_NOTE = re.compile(r"Sections (?P<names>.+?) re-run at (?P<at>.+?) \(--merge\); the others come from "
                         r"`(?P<cmd>.+?)` at (?P<prev_at>.+?) \(load average \[(?P<load>[^\]]*)\]")


def stamped_sections(previous: dict) -> dict:
    """previous["sections"], each with its "_run" stamp (when, at what load, by which command); sections from
    reports written before the stamps existed get theirs from the chained merge notes."""
    sections = {k: dict(v) for k, v in previous.get("sections", {}).items()}
    legacy: dict[str, dict] = {}
    chain = [m for m in map(_MERGE_NOTE.match, previous.get("notes", [])) if m]
    for i, m in enumerate(chain):
        if i == 0:  # the first note names the full run every section started from
            for name in sections:
                legacy[name] = {"at": m["prev_at"], "command": m["cmd"],
                                "load_average": [round(float(x), 2) for x in m["load"].split(",")]}
        # the load at a re-run's start is in the next note (or in the report itself for the last one)
        nxt = chain[i + 1] if i + 1 < len(chain) else None
        load = ([round(float(x), 2) for x in nxt["load"].split(",")] if nxt
                else previous.get("load_average_start"))
        cmd = nxt["cmd"] if nxt else previous.get("command")
        for name in (n.strip() for n in m["names"].split(",")):
            legacy[name] = {"at": m["at"], "command": cmd, "load_average": load}
    for name, section in sections.items():
        if "_run" not in section:
            section["_run"] = legacy.get(name) or {"at": previous.get("started"), "command": previous.get("command"),
                                                   "load_average": previous.get("load_average_start")}
    return sections


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def targets(report: dict) -> list[dict]:
    s = report["sections"]
    out: list[dict] = []
    lite = report.get("query_model") == "lite"
    if "query" in s:
        out += bench_query.targets(s["query"], lite)
    if "ann" in s:
        out += bench_ann.targets(s["ann"])
    if "encode" in s:
        out += bench_encode.targets(s["encode"])
    if "tui" in s:
        out += bench_tui.targets(s["tui"])
    if "cold" in s:
        out += bench_cold.targets(s["cold"])
    if "rebuild" in s:
        out += bench_rebuild.targets(s["rebuild"])
    if "scale" in s:
        out += bench_scale.targets(s["scale"])
    if "incremental" in s:
        out += bench_incremental.targets(s["incremental"])
    return out


def _write(out: Path, report: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    report["targets"] = targets(report)
    (out / "speed.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "speed.md").write_text("\n".join(markdown(report)) + "\n")


def markdown(report: dict) -> list[str]:
    s = report["sections"]
    m = s.get("machine", {})
    la = report.get("load_average_start")
    lines = ["# mmtui speed report", "",
             f"Produced by `{report['command']}` on {report['started']}"
             + (f" in {report['seconds']} s." if "seconds" in report else " (partial)."), ""]
    if m:
        lines += ["## Machine", "",
                  f"- CPU: {m.get('cpu_model')} ({m.get('cpus')} cores visible, family/model {m.get('cpu_family_model')}"
                  f"{', VM' if m.get('hypervisor') else ''}); flags: {', '.join(m.get('cpu_flags', []))}; "
                  f"AMX: {'yes' if m.get('amx') else 'no'}",
                  f"- RAM: {m.get('ram_gb')} GB; Python {m.get('python')}; torch {m.get('torch')} "
                  f"(CPU capability {m.get('torch_cpu_capability')}, {m.get('torch_threads')} threads); numpy "
                  f"{m.get('numpy')}; hnswlib {m.get('hnswlib')}; open_clip {m.get('open_clip_torch')}; "
                  f"SQLite {m.get('sqlite')}; git {m.get('git_commit')}",
                  f"- Load average (1/5/15 min) at start: {', '.join(f'{x:.2f}' for x in la or [])}"
                  + (f"; at end: {', '.join(f'{x:.2f}' for x in report['load_average_end'])}"
                     if report.get("load_average_end") else "")
                  + ". The 2 cores are shared: a load above ~1 means other work competed with these timings.", ""]
    for note in report.get("notes", []):
        lines += [f"> {note}", ""]
    runs = {k: v["_run"] for k, v in s.items() if isinstance(v, dict) and v.get("_run")}
    if len({r.get("at") for r in runs.values()}) > 1:  # merged from several runs: say which figure is from when
        lines += ["## Where each section comes from", "", "| section | measured at | load average at its start | "
                  "command | commit |", "|---|---|---|---|---|"]
        for name, r in runs.items():
            load = ", ".join(f"{x:.2f}" for x in r.get("load_average") or []) or "?"
            lines.append(f"| {name} | {r.get('at')} | {load} | `{r.get('command')}` | {r.get('git') or '?'} |")
        lines.append("")
    lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in report.get("targets", []):
        met = {True: "met", False: "**not met**", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {t['value']}{' (' + t['why'] + ')' if t.get('why') else ''} | {met} |")
    lines.append("")
    blocks = [("encode", "Build-index throughput against raw model throughput", bench_encode.markdown,
               bench_encode.__doc__),
              ("query", "Warm query latency", bench_query.markdown, None),
              ("ann", "ANN recall@10 and queries/s", bench_ann.markdown, bench_ann.__doc__),
              ("tui", "TUI", bench_tui.markdown, None),
              ("cold", "Cold start: one-off commands in fresh processes", lambda r: bench_cold.markdown(r, report),
               bench_cold.__doc__),
              ("memory", "Peak memory", bench_memory.markdown, None),
              ("rebuild", "Unchanged rebuild", bench_rebuild.markdown, None),
              ("fastpath", "Fast paths", bench_fastpath.markdown, bench_fastpath.__doc__),
              ("scale", "One million products on one machine", bench_scale.markdown, bench_scale.__doc__),
              ("incremental", "Adding and removing products without a full rebuild", bench_incremental.markdown,
               None)]
    for key, title, fn, doc in blocks:
        if key in s:
            lines += [f"## {title}", ""]
            if doc:
                lines += [" ".join(doc.split()), ""]
            try:
                lines += fn(s[key])
            except Exception as exc:  # noqa: BLE001 - keep the rest of the report
                lines.append(f"(cannot render: {exc})")
            lines += ["", f"_section took {s[key].get('_seconds')} s_", ""]
        elif key in report.get("errors", {}):
            lines += [f"## {title}", "", "Failed: `" + report["errors"][key].splitlines()[0] + "`", ""]
    return lines


if __name__ == "__main__":
    sys.exit(main())
