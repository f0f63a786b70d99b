"""Cold start: what a one-off command costs in a fresh process. `mmtui search TEXT --json`, `mmtui search --image
PATH --json` and `mmtui --help`, each run `rounds` times in new processes over sample_catalog built with lite (the
TUI section's cached index, with its torch-free query model), round-robin across cases (and across source trees
when a baseline is given: a checkout of an earlier version run the same way, so load swings hit both alike).

Per case: wall-clock median and min, CPU time (user + sys of the process: on an idle core a single-threaded
command's wall time is about its CPU time, so on a busy machine it is the better estimate of quiet-machine wall
time) and peak RSS, with the 1-minute load average around the runs. mmtui's bytecode is compiled beforehand, as in
an install. The hits of each case are compared with the baseline's.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .bench_util import REPO, TINY_CONFIGS, log

TARGETS = {"search_text": 1.0, "help": 0.2}  # seconds, wall, median, quiet 2-core machine
QUERY = "navy blue shirt for men"
IMAGE = "sample_catalog/images/10011.jpg"


def cases(data_dir: Path) -> dict[str, list[str]]:
    return {"search_text": ["search", QUERY, "--data-dir", str(data_dir), "--json"],
            "search_image": ["search", "--image", str(REPO / IMAGE), "--data-dir", str(data_dir), "--json"],
            "help": ["--help"]}


def run_case(source: Path, args: list[str]) -> dict:
    """A fresh `python -m mmtui.cli.main ARGS` with `source` first on the path: wall, CPU and peak RSS (the
    child's own rusage, os.wait4), its output."""
    import tempfile

    env = {**os.environ, "PYTHONPATH": str(source), "MMTUI_OPENCLIP_CONFIGS": str(TINY_CONFIGS)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode compiled beforehand, as in an install
    load = os.getloadavg()[0]
    # peak RSS through /usr/bin/time: a child's own ru_maxrss starts at this (torch-holding) process's, which exec
    # carries over; time's child is forked from a small process
    timer = ["/usr/bin/time", "-f", "%M", "-o"] if Path("/usr/bin/time").is_file() else None
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile(mode="r") as rss:
        t = time.perf_counter()
        proc = subprocess.Popen([*(timer + [rss.name] if timer else []), sys.executable, "-m", "mmtui.cli.main",
                                 *args], cwd=source, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # CPU: time's and its waited-for child's
        wall = time.perf_counter() - t
        peak_kb = rss.read().strip().splitlines()[-1:] if timer else []
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    rss_kb = int(peak_kb[0]) if peak_kb and peak_kb[0].isdigit() else usage.ru_maxrss
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mb": rss_kb / 1024,
            "rc": proc.returncode, "out": stdout, "err": stderr[-500:], "load": load}


def _hits(text: str) -> list[str] | None:
    try:
        return [h["id"] for h in json.loads(text)["hits"]]
    except (ValueError, KeyError, TypeError):
        return None


def summary(report: dict) -> dict:
    """What the before / after table reads from a speed report (this run's, or an earlier version's JSON): the TUI's
    medians and the warm query p50s (wall and CPU), each with when, at what load and by which command."""
    out: dict = {}
    s = report.get("sections", {})
    if "tui" in s and "median" in s["tui"]:
        out["tui"] = {k: s["tui"]["median"].get(k) for k in ("interactive_s", "first_results_s", "model_ready_s")}
        out["tui"]["_run"] = s["tui"].get("_run")
    if "query" in s:
        out["query"] = {n: {m: {"p50": r["latency_ms"][m]["p50"], "cpu_p50": r["latency_ms"][m].get("cpu_p50")}
                            for m in ("image", "text", "hybrid", "fused", "lexical") if m in r["latency_ms"]}
                        for n, r in s["query"].get("sizes", {}).items()}
        out["query_run"] = s["query"].get("_run")
    return out


def run(data_dir: Path, baseline: Path | None = None, rounds: int = 10, baseline_report: Path | None = None) -> dict:
    sources = {"this version": REPO, **({"baseline": Path(baseline)} if baseline else {})}
    for source in sources.values():
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(source / "mmtui")], check=True,
                       env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    todo = cases(data_dir)
    raw: dict = {s: {c: [] for c in todo} for s in sources}
    load_start = os.getloadavg()
    for r in range(rounds + 1):  # round 0 warms the page cache (files, packages): not counted
        for name, source in sources.items():
            for case, args in todo.items():
                res = run_case(source, args)
                if res["rc"]:
                    raise RuntimeError(f"{name}: mmtui {' '.join(args)} failed: {res['err']}")
                if r:
                    raw[name][case].append(res)
        if r:
            log(f"cold: round {r}/{rounds}: " + ", ".join(
                f"{n} {c} {raw[n][c][-1]['wall_s']:.2f}s/{raw[n][c][-1]['cpu_s']:.2f}cpu" for n in sources for c in todo))
    out: dict = {"data_dir": str(data_dir), "rounds": rounds, "query": QUERY, "image": IMAGE,
                 "sources": {k: str(v) for k, v in sources.items()}, "load_average_start": list(load_start),
                 "load_average_end": list(os.getloadavg()), "cases": {}}
    for name in sources:
        out["cases"][name] = {}
        for case, runs in raw[name].items():
            walls, cpus = [x["wall_s"] for x in runs], [x["cpu_s"] for x in runs]
            out["cases"][name][case] = {
                "wall_median_s": round(statistics.median(walls), 3), "wall_min_s": round(min(walls), 3),
                "cpu_median_s": round(statistics.median(cpus), 3), "cpu_min_s": round(min(cpus), 3),
                "rss_mb_median": round(statistics.median(x["rss_mb"] for x in runs), 1),
                "load_median": round(statistics.median(x["load"] for x in runs), 2),
                "notes": sorted({line for x in runs for line in x["err"].splitlines() if line.startswith("note:")}),
                "hits": _hits(runs[-1]["out"])}
    if baseline_report is not None:
        out["baseline_report"] = {"path": str(baseline_report), **summary(json.loads(Path(baseline_report).read_text()))}
    if "baseline" in sources:
        out["same_hits"] = {c: out["cases"]["this version"][c]["hits"] == out["cases"]["baseline"][c]["hits"]
                            for c in todo if c != "help"}
        out["hits_overlap"] = {c: len(set(out["cases"]["this version"][c]["hits"] or [])
                                      & set(out["cases"]["baseline"][c]["hits"] or []))
                               for c in todo if c != "help"}
    return out


def targets(result: dict) -> list[dict]:
    mine = result.get("cases", {}).get("this version", {})
    out = []
    for case, limit in TARGETS.items():
        label = {"search_text": f"cold `mmtui search` <= {limit:g} s wall (quiet 2-core machine)",
                 "help": f"`mmtui --help` < {limit:g} s wall"}[case]
        got = mine.get(case)
        if not got:
            out.append({"target": label, "value": "not measured", "met": None})
            continue
        value = (f"{got['wall_median_s']} s wall median (min {got['wall_min_s']}), {got['cpu_median_s']} s CPU "
                 f"median, at load {got['load_median']}")
        met = got["wall_median_s"] <= limit
        row = {"target": label, "value": value, "met": met}
        if not met and got["cpu_median_s"] <= limit and got["load_median"] > 1.5:
            row["met"] = None
            row["why"] = ("the machine was not quiet: the CPU time, the quiet-machine estimate for a one-thread "
                          "command, is within the target")
        out.append(row)
    return out


def before_after(result: dict, report: dict) -> list[str]:
    """The issue's figures, this version against the baseline: one-off commands (this run), the TUI and the warm
    query p50s (this report's sections against the baseline report's)."""
    base = result.get("baseline_report") or {}
    now = summary(report)
    mine, theirs = result["cases"].get("this version", {}), result["cases"].get("baseline", {})
    rows = []
    for case, label in (("search_text", "cold `mmtui search TEXT` wall / CPU s"),
                        ("search_image", "cold `mmtui search --image` wall / CPU s"), ("help", "`mmtui --help` wall / CPU s")):
        if case in mine:
            b = f"{theirs[case]['wall_median_s']} / {theirs[case]['cpu_median_s']}" if case in theirs else "—"
            rows.append(f"| {label} | {b} | {mine[case]['wall_median_s']} / {mine[case]['cpu_median_s']} |")
    for key, label in (("model_ready_s", "TUI model ready after launch, s (median)"),
                       ("first_results_s", "TUI first results after launch, s (median)")):
        b, a = (base.get("tui") or {}).get(key), (now.get("tui") or {}).get(key)
        if b is not None or a is not None:
            rows.append(f"| {label} | {round(b, 2) if b is not None else '—'} | {round(a, 2) if a is not None else '—'} |")
    for n in sorted(set(base.get("query", {})) | set(now.get("query", {})), key=int):
        for mode in ("hybrid", "image", "text"):
            b = base.get("query", {}).get(n, {}).get(mode)
            a = now.get("query", {}).get(n, {}).get(mode)
            if b or a:
                fmt = lambda x: f"{x['p50']} / {x['cpu_p50']}" if x else "—"  # noqa: E731
                rows.append(f"| warm {mode} query at {int(n):,}, p50 wall / CPU ms | {fmt(b)} | {fmt(a)} |")
    if not rows:
        return []
    runs = []
    for name, r in (("baseline TUI", (base.get("tui") or {}).get("_run")), ("baseline query", base.get("query_run")),
                    ("TUI", (now.get("tui") or {}).get("_run")), ("query", now.get("query_run"))):
        if r:
            runs.append(f"{name}: {r.get('at')}, load {', '.join(f'{x:.1f}' for x in r.get('load_average') or [])}, "
                        f"`{r.get('command')}`")
    return (["### Before and after", "", "| figure | baseline | this version |", "|---|---|---|", *rows, "",
             f"Baseline: {result['sources'].get('baseline', '—')} (one-off commands, run round-robin with this "
             f"version above); baseline report {base.get('path', '—')}. Where the other figures come from: "
             + "; ".join(runs) + ".", ""])


def markdown(result: dict, report: dict | None = None) -> list[str]:
    la = result["load_average_start"]
    lines = [f"sample_catalog (800 products, lite); query `{result['query']}`, image `{result['image']}`; "
             f"{result['rounds']} fresh processes per case and source, round-robin (one uncounted warm-up round); "
             f"1-min load average {la[0]:.1f} at the start, {result['load_average_end'][0]:.1f} at the end. "
             "CPU = user + sys of the process (the quiet-machine estimate of a one-thread command's wall time).", "",
             "| source | command | wall median s | wall min s | CPU median s | peak RSS MB | load (median) |",
             "|---|---|---|---|---|---|---|"]
    labels = {"search_text": "`mmtui search TEXT --json`", "search_image": "`mmtui search --image PATH --json`",
              "help": "`mmtui --help`"}
    for source, by_case in result["cases"].items():
        for case, r in by_case.items():
            lines.append(f"| {source} | {labels[case]} | {r['wall_median_s']} | {r['wall_min_s']} | "
                         f"{r['cpu_median_s']} | {r['rss_mb_median']} | {r['load_median']} |")
    if "same_hits" in result:
        overlap = result["hits_overlap"]
        lines += ["", "Hits against the baseline: " + ", ".join(
            f"{labels[c]} " + ("identical" if same else f"{overlap[c]} of 10 the same")
            for c, same in result["same_hits"].items()) + "."]
    notes = sorted({n for by_case in result["cases"].values() for r in by_case.values() for n in r["notes"]})
    if notes:
        lines += ["", "Notes the commands printed: " + "; ".join(f"`{n}`" for n in notes)]
    return lines + ([""] + before_after(result, report) if report else [])
