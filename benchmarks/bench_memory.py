"""Peak memory (max RSS, from resource.getrusage in a fresh process) of a build and of searching."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from .bench_util import REPO, TINY_CONFIGS, log


def _child_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "MMTUI_OPENCLIP_CONFIGS": str(TINY_CONFIGS)}


def _run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_memory", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=1800, env=_child_env())
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(model: str, build_n: int, stores: dict) -> dict:
    """stores: {size: Settings} of synthetic stores built with `model`."""
    out: dict = {"model": model, "build": None, "search": {}}
    log(f"memory: build of {build_n} with {model}")
    out["build"] = {"products": build_n, **_run_child("build", model, str(build_n))}
    for n, settings in stores.items():
        log(f"memory: search at {n}")
        out["search"][str(n)] = _run_child("search", str(settings.data_dir))
    return out


def markdown(result: dict) -> list[str]:
    b = result["build"]
    lines = ["| process | peak RSS MB | after imports + model (+ store open) MB | seconds |", "|---|---|---|---|"]
    if "error" in b:
        lines.append(f"| build-index {b['products']} products ({result['model']}) | error: {b['error']} | | |")
    else:
        lines.append(f"| build-index {b['products']} products ({result['model']}) | {b['peak_rss_mb']} | "
                     f"{b['after_model_rss_mb']} | {b['seconds']} |")
    for n, r in result["search"].items():
        if "error" in r:
            lines.append(f"| search, {int(n):,} products | error: {r['error']} | | |")
        else:
            lines.append(f"| search (open, load model, 50 queries), {int(n):,} products | {r['peak_rss_mb']} | "
                         f"{r['after_model_rss_mb']} | {r['seconds']} |")
    return lines


def _rss() -> float:
    """Peak RSS of this process in MB: VmHWM. (ru_maxrss is not usable here: Linux carries it across exec,
    so a child started from a big parent reports the parent's size.)"""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _child_build(model: str, n: int) -> dict:
    import shutil

    from mmtui.build.pipeline import build_index
    from mmtui.config import Settings

    from .bench_util import WORK, load_model, subset_catalog

    encoder = load_model(model)
    after = _rss()
    root = WORK / "memory" / "build"
    shutil.rmtree(root, ignore_errors=True)
    catalog = subset_catalog(n, WORK / "catalogs" / f"fashion-{n}")
    t = time.perf_counter()
    build_index(Settings(data_dir=root), catalog, encoder=encoder)
    return {"seconds": round(time.perf_counter() - t, 1), "after_model_rss_mb": after, "peak_rss_mb": _rss()}


def _child_search(data_dir: str) -> dict:
    from mmtui.config import Settings
    from mmtui.query.service import SearchService

    from .bench_util import queries

    t = time.perf_counter()
    service = SearchService.open(Settings(data_dir=Path(data_dir)))
    service.load_model()
    after = _rss()
    for q in queries(50):
        service.search(q, k=20, mode="hybrid")
    return {"seconds": round(time.perf_counter() - t, 1), "after_model_rss_mb": after, "peak_rss_mb": _rss()}


if __name__ == "__main__":
    what = sys.argv[1]
    res = _child_build(sys.argv[2], int(sys.argv[3])) if what == "build" else _child_search(sys.argv[2])
    print(json.dumps(res))
