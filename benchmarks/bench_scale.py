"""One million products on one machine: build, open, memory, per-mode latency, ANN recall and filtered search.

The store is bench_query's synthetic one at n products (default 1,000,000), built once and cached under
MMTUI_BENCH_WORK: with `run.py --scale-products DIR`, benchmarks.gen_products' distinct products (their titles,
text and image vectors; deterministic prices), else real Fashion vectors with small noise and real titles. Build it
alone first (`python -m benchmarks.bench_scale --child store --products DIR` under /usr/bin/time -v, stderr to
MMTUI_BENCH_WORK/build-1m.log: the reindex's peak RSS is read from there). Every search figure comes
from a fresh process (python -m benchmarks.bench_scale --child ...), so open time and memory are a new search
service's: "ready" is SearchService.open returning (a lexical query can run; a vector query first reads the graph
it needs: its first-query time says how long that takes). RSS is VmRSS (resident now, memory-mapped vector pages
touched included) after the mode's queries, with only what that mode reads loaded, and after preload() of all.
Filtered search: `price<=X` filters keep exactly 0.1%, 1%, 10% and 50% of the products; both strategies (exact
over the allowed vectors, hnswlib's filtered walk) are timed on the same query vectors, k=20.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .bench_util import REPO, TINY_CONFIGS, WORK, log, percentiles, queries

MODES = ("lexical", "image", "text", "fused", "hybrid")
SELECTIVITY = {"0.1%": "price<=1", "1%": "price<=10", "10%": "price<=100", "50%": "price<=500"}
# issue 21's 1M targets (lite): search RSS with everything loaded, what a second searching process adds
TARGETS = {"open_s": 2.0, "rss_mb": 3072.0, "second_mb": 512.0, "p50": 15.0, "p99": 50.0, "recall": 0.97,
           "filtered_p50": 30.0}


# -- parent ------------------------------------------------------------------------------------------------------
def run(model: str, sizes: list[int], fashion_index: Path | None, n_queries: int = 40,
        products: Path | None = None) -> dict:
    """`products`: a benchmarks.gen_products folder: the store holds those distinct products instead of noisy
    copies of the Fashion index's vectors."""
    from . import bench_query
    from .bench_util import ensure_query_model, load_model

    encoder = load_model(model)
    sources = (bench_query.generated_sources(products) if products else
               bench_query.source_vectors(encoder, fashion_index))
    out: dict = {"model": model, "queries": n_queries, "source": sources["source"], "sizes": {}}
    for n in sizes:
        t = time.perf_counter()
        settings, info = bench_query.synthetic_store(n, encoder, sources)
        ensure_query_model(settings, encoder)  # as build-index leaves a data dir: the ONNX query model
        made_now = time.perf_counter() - t > 5
        res: dict = {"store": info, "store_made_by_this_run": made_now, "build": _build_figures(settings, n)}
        log(f"scale: measuring at {n}")
        for mode in MODES:
            res.setdefault("modes", {})[mode] = _child(model, settings.data_dir, "mode", mode, n_queries)
        res["all_loaded"] = _child(model, settings.data_dir, "all", "", n_queries)
        res["two_processes"] = _two_processes(model, settings.data_dir, n_queries)
        res["recall"] = _child(model, settings.data_dir, "recall", "", n_queries)
        res["filtered"] = _child(model, settings.data_dir, "filtered", "", n_queries)
        out["sizes"][str(n)] = res
    out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _build_figures(settings, n: int) -> dict:
    """Per-index graph build seconds (manifests), the reindex total and peak RSS of the process that built the
    store (from its log, when it was built by benchmarks/.../build log; bench_query records no RSS itself)."""
    from mmtui.index.generations import current

    gen = current(settings.ann_dir)
    out: dict = {"index_seconds": {}}
    for name in ("image", "text", "fused"):
        path = gen.dir / f"{name}.manifest.json"
        if path.is_file():
            m = json.loads(path.read_text())
            out["index_seconds"][name] = m.get("build_seconds")
            out.setdefault("ef", {})[name] = m.get("ef")
            out.setdefault("build_recall", {})[name] = m.get("recall_at_10")
            out.setdefault("stores", {})[name] = m.get("store", "hnswlib")
    out["files_mb"] = {p.name: round(p.stat().st_size / 1e6, 1) for p in sorted(gen.dir.iterdir())
                       if p.stat().st_size > 1e6}
    log_file = WORK / f"build-{'1m' if n == 1_000_000 else n}.log"
    if log_file.is_file():
        text = log_file.read_text()
        for line in text.splitlines():
            if "Maximum resident set size" in line:
                out["peak_rss_mb"] = round(int(line.split()[-1]) / 1024, 1)
            if "Elapsed (wall clock)" in line:
                out["wall"] = line.split(": ", 1)[-1].strip()
        out["log"] = str(log_file)
    return out


def _child(model: str, data_dir: Path, what: str, mode: str, n_queries: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMTUI_OPENCLIP_CONFIGS": str(TINY_CONFIGS)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_scale", "--child", what, "--model", model,
                           "--data-dir", str(data_dir), "--mode", mode, "--queries", str(n_queries)],
                          cwd=REPO, capture_output=True, text=True, timeout=3600, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- children ----------------------------------------------------------------------------------------------------
def _rss_mb(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _open(model: str, data_dir: str):
    """A fresh SearchService over `data_dir`. The lite model's query encoder is the one the service picks itself
    (the ONNX export build-index leaves, as `mmtui search` and the TUI use: no torch in the process); other
    models are loaded here with torch."""
    from mmtui.config import Settings
    from mmtui.query.service import SearchService

    from .bench_util import load_model

    encoder = None if model == "lite" else load_model(model)
    before = _rss_mb()
    t = time.perf_counter()
    service = SearchService.open(Settings(data_dir=Path(data_dir)), encoder=encoder)
    return service, {"open_s": round(time.perf_counter() - t, 3), "rss_before_open_mb": before,
                     "rss_after_open_mb": _rss_mb()}


def _memory() -> dict:
    """This process's memory now (MB): RSS, PSS and private pages (smaps_rollup), peak RSS."""
    out = {"rss_mb": _rss_mb(), "peak_rss_mb": _rss_mb("VmHWM")}
    out.update(_rollup(os.getpid()))
    return out


def _rollup(pid: int) -> dict:
    fields = {"Pss": "pss_mb", "Private_Clean": "private_clean_mb", "Private_Dirty": "private_dirty_mb",
              "Shared_Clean": "shared_clean_mb"}
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key = line.split(":")[0]
            if key in fields:
                out[fields[key]] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out


def _timed(service, q: str, mode: str, **kw) -> float:
    service._query_cache.clear()
    t = time.perf_counter()
    service.search(q, k=20, mode=mode, **kw)
    return (time.perf_counter() - t) * 1000


def child_mode(model: str, data_dir: str, mode: str, n_queries: int) -> dict:
    service, out = _open(model, data_dir)
    qs = queries(n_queries + 10)
    t = time.perf_counter()
    service.load_model()
    out["load_model_s"] = round(time.perf_counter() - t, 3)
    out["first_query_ms"] = round(_timed(service, qs[0], mode), 1)  # reads the graphs this mode needs
    out["loaded"] = list(getattr(service.indexes, "loaded", service.indexes))
    for q in qs[1:10]:  # warm-up (kernels, SQLite pages)
        _timed(service, q, mode)
    out["latency_ms"] = percentiles([_timed(service, q, mode) for q in qs[10:10 + n_queries]])
    out["query_encoder"] = type(service.encoder).__name__
    out["torch_imported"] = "torch" in sys.modules
    out.update(_memory())
    out["loaded"] = list(getattr(service.indexes, "loaded", service.indexes))
    if mode == "lexical":
        index = getattr(service.backend, "lexical_index", None)
        out["lexical_index_mb"] = round(sum(v.nbytes for v in vars(index).values() if isinstance(v, np.ndarray))
                                        / 1e6, 1) if index is not None else None
        out["lexical_path"] = "in-memory index" if index is not None else "FTS5"
    return out


def child_all(model: str, data_dir: str, n_queries: int, hold: bool = False) -> dict:
    """Every index read (preload) and every mode queried, then memory. `hold`: print the result, then stay
    alive until stdin closes (_two_processes measures a second process beside this one)."""
    service, out = _open(model, data_dir)
    service.load_model()
    t = time.perf_counter()
    service.preload().join()
    out["preload_all_s"] = round(time.perf_counter() - t, 2)
    modes = [m for m in MODES if m in ("lexical", "hybrid") or m in service.indexes]  # a store may lack one
    for q in queries(max(12, n_queries)):
        for mode in modes:
            _timed(service, q, mode)
    out["loaded"] = list(service.indexes.loaded)
    out["query_encoder"] = type(service.encoder).__name__
    out["torch_imported"] = "torch" in sys.modules
    out.update(_memory())
    if hold:
        print(json.dumps(out, default=float), flush=True)
        sys.stdin.read()
    return out


def _two_processes(model: str, data_dir: Path, n_queries: int) -> dict:
    """Two searching processes on one data dir, both with everything loaded and queried: the first one's
    memory alone, then both alive (PSS splits shared pages between them; private pages are the second one's own).
    "adds_mb": the two PSS summed minus the first one's RSS alone."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMTUI_OPENCLIP_CONFIGS": str(TINY_CONFIGS)}
    cmd = [sys.executable, "-m", "benchmarks.bench_scale", "--child", "hold", "--model", model, "--data-dir",
           str(data_dir), "--queries", str(n_queries)]
    procs = []
    try:
        out: dict = {}
        for name in ("first", "second"):
            proc = subprocess.Popen(cmd, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
            procs.append(proc)
            out[name] = json.loads(proc.stdout.readline())
        for name, proc in zip(("first", "second"), procs):
            out[name]["both_alive"] = {"rss_mb": _proc_rss(proc.pid), **_rollup(proc.pid)}
        alone = out["first"]["rss_mb"]
        both = [out[n]["both_alive"].get("pss_mb", 0.0) for n in ("first", "second")]
        out["adds_mb"] = round(sum(both) - alone, 1)
        second = out["second"]["both_alive"]
        out["second_private_mb"] = round(second.get("private_clean_mb", 0) + second.get("private_dirty_mb", 0), 1)
        return out
    finally:
        for proc in procs:
            proc.stdin.close()
            proc.wait(timeout=60)


def _proc_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


EF_CURVE = (128, 256, 512, 648, 1024, 2048)  # child_recall: recall and ANN time at these ef, as well as the build's


def child_recall(model: str, data_dir: str, n_queries: int) -> dict:
    """Recall@10 of each graph against exact search at the ef the build chose: 200 product texts as queries (as
    the build's self-check), the benchmark's shopper queries (Fashion attributes) and the 400 shopper phrases of
    the generated catalogs' own vocabulary (benchmarks/queries/shopper-store-dev.txt), and the self-check's probes
    when the store has them; the ef tune_ef finds for 0.98 where it is lower; and the curve of recall and ANN time
    over EF_CURVE."""
    from mmtui.index.probes import load_probes

    service, _ = _open(model, data_dir)
    service.preload().join()
    sets = _query_sets(service, service.indexes["text"], n_queries)
    probes = load_probes(service.store, service.store.get_meta("base_fingerprint"))
    if probes is not None:  # the self-check's query-like probes (mmtui.catalog.probes), projected as it does
        sets["probes"] = service.projector.text(probes.vectors)
    out: dict = {"sets": {k: len(v) for k, v in sets.items()}}
    for name in list(service.indexes):
        index = service.indexes[name]
        kth = {k: index._kth_scores(v, 10) for k, v in sets.items()}  # exact once per set, reused at every ef
        res = {"ef": index.manifest.ef, "build_recall": index.manifest.recall_at_10,
               **{k: _recall(index, v, kth[k]) for k, v in sets.items()}, "ann_ms": _ann_ms(index, sets["shopper"])}
        if index.graph is not None:
            built_ef = index.manifest.ef
            res["curve"] = {}
            for ef in sorted(set(EF_CURVE) | {built_ef}):
                index.graph.set_ef(ef)
                res["curve"][ef] = {**{k: _recall(index, v, kth[k]) for k, v in sets.items()},
                                    "ann_ms": _ann_ms(index, sets["shopper"], ef),
                                    "ann_ms_k100": _ann_ms(index, sets["shopper"], ef, k=100)}  # as hybrid asks
            index.graph.set_ef(built_ef)
        out[name] = res
    return out


def _query_sets(service, text, n_queries: int) -> dict[str, np.ndarray]:
    """The recall children's query sets: 200 product texts of the text index `text`, the benchmark's shopper queries
    and, where the file is, the generated catalogs' 400 shopper phrases (all encoded by the service)."""
    from .bench_store import SHOPPER_FILE

    sample = np.random.default_rng(0).permutation(len(text))[:200]
    sets = {"products": np.asarray(text.vectors[np.sort(sample)], np.float32),
            "shopper": np.stack([service.query_vector(q) for q in queries(max(n_queries, 40))])}
    if SHOPPER_FILE.is_file():
        sets["shopper_store"] = np.stack([service.query_vector(q) for q in SHOPPER_FILE.read_text().splitlines()
                                          if q.strip()])
    return sets


def _recall(index, queries: np.ndarray, kth: np.ndarray, k: int = 10) -> float:
    """VectorIndex.recall_check with the exact k-th scores given (computed once per query set)."""
    hits = []
    for row, found in enumerate(index._graph_results(queries, k)):
        positions = index.positions(found)
        scores = np.asarray(index.vectors[np.sort(positions[positions >= 0])], np.float32) @ queries[row]
        hits.append(min(int((scores >= kth[row] - 1e-5).sum()), k) / k)
    return round(float(np.mean(hits)), 4)


def _ann_ms(index, vectors: np.ndarray, ef: int | None = None, k: int = 20) -> dict:
    """VectorIndex.search time (k results, the graph at `ef`, default the manifest's) per query vector."""
    saved = index.manifest.ef
    index.manifest.ef = ef or saved  # search() sets the graph's ef from the manifest
    times = []
    try:
        for v in list(vectors) * 2:
            t = time.perf_counter()
            index.search(v, k)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        index.manifest.ef = saved
    return percentiles(times[len(vectors):])


def child_filtered(model: str, data_dir: str, n_queries: int) -> dict:
    from mmtui.store.filters import parse_where

    service, _ = _open(model, data_dir)
    service.load_model()
    qs = queries(n_queries)
    vectors = [service.query_vector(q) for q in qs]
    index = service.indexes["image"]
    n = len(index)
    out: dict = {"products": n}
    for share, expr in SELECTIVITY.items():
        filters = [parse_where(expr)]
        res: dict = {"filter": expr}
        t = time.perf_counter()
        allowed, where, params = service._allowed(filters)
        res["allowed_first_ms"] = round((time.perf_counter() - t) * 1000, 1)  # column read included (first use)
        service._allowed_cache.clear()
        t = time.perf_counter()
        service._allowed(filters)
        res["allowed_arrays_ms"] = round((time.perf_counter() - t) * 1000, 1)
        t = time.perf_counter()
        sql = service.store.filtered_rowids(where, params)
        res["allowed_sql_ms"] = round((time.perf_counter() - t) * 1000, 1)
        assert np.array_equal(sql, allowed), "arrays and SQL disagree"
        res["allowed"] = len(allowed)
        res["strategy"] = index.filter_strategy(len(allowed))
        for strategy in ("exact", "graph"):
            times, found = [], []
            # the strategy not chosen only for the crossing point: 10 queries (it takes up to ~1 s a query at 1M)
            for v in (vectors if strategy == res["strategy"] else vectors[:10]):
                t = time.perf_counter()
                labels, _ = index.search(v, 20, allowed, strategy=strategy)
                times.append((time.perf_counter() - t) * 1000)
                found.append(set(labels.tolist()))
            res[strategy] = percentiles(times)
            res[f"{strategy}_found"] = found
        res["graph_recall_vs_exact"] = round(float(np.mean([len(g & e) / max(1, len(e)) for g, e in
                                                            zip(res.pop("graph_found"), res.pop("exact_found"))])), 4)
        # (over the queries both ran)
        for q in qs[:3]:  # warm-up (the first hybrid query reads the text and fused graphs)
            _timed(service, q, "image", filters=filters)
            _timed(service, q, "hybrid", filters=filters)
        res["search_ms"] = percentiles([_timed(service, q, "image", filters=filters) for q in qs])  # chosen strategy
        res["hybrid_ms"] = percentiles([_timed(service, q, "hybrid", filters=filters) for q in qs])
        out[share] = res
    # the crossing point: exact costs ~a per allowed vector, the filtered walk ~b * n / allowed
    a = [r["exact"]["p50"] / r["allowed"] for r in out.values() if isinstance(r, dict) and "exact" in r]
    b = [r["graph"]["p50"] * r["allowed"] / n for r in out.values() if isinstance(r, dict) and "graph" in r]
    if a and b:
        crossing = float(np.median(b) / np.median(a))
        out["crossing"] = {"ms_per_allowed_exact": float(np.median(a)), "graph_ms_at_full_share": float(np.median(b)),
                           "FILTER_CROSSING": round(crossing, 1), "exact_below_allowed": int((crossing * n) ** 0.5)}
    return out


def child_store(model: str, n: int, products: Path | None) -> dict:
    """Build (or find cached) the store of n products, as run() does, in its own process: run it under
    /usr/bin/time -v for the build's peak RSS (_build_figures reads WORK/build-1m.log)."""
    from . import bench_query
    from .bench_util import ensure_query_model, load_model

    encoder = load_model(model)
    sources = bench_query.generated_sources(products) if products else bench_query.source_vectors(encoder, None)
    settings, info = bench_query.synthetic_store(n, encoder, sources)
    info["peak_rss_mb"] = _rss_mb("VmHWM")  # the store and its reindex (the model loaded), before the export
    info["query_model"] = ensure_query_model(settings, encoder)
    info["data_dir"] = str(settings.data_dir)
    return info


# -- the +10k/-1k update on the full store (issue 21) ------------------------------------------------------------
ADD, REMOVE = 10_000, 1_000
CHANGE_FILE = "bench-change.json"  # in the changed data dir: which products child_change removed and added


def _cpu_s() -> float:
    """This process's CPU seconds so far, user + system, all its threads (usearch adds on 2)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_change(data_dir: str, added: Path, add: int = ADD, remove: int = REMOVE) -> dict:
    """Remove `remove` random products and add `add` new distinct ones to a copy of the full store, through the
    store calls the full build used (bench_query._fill_generated: upsert_products, put_vectors under the
    products' content hashes; Store.delete_products). `added`: a benchmarks.gen_products folder made with another
    seed; its products whose title the store already holds (or an earlier one of them) are skipped. No reindex:
    child_reindex runs it. Writes CHANGE_FILE into the data dir (a second change is refused)."""
    from types import SimpleNamespace

    from mmtui.config import Settings
    from mmtui.store.db import Store

    from . import bench_query

    settings = Settings(data_dir=Path(data_dir))
    if (settings.data_dir / CHANGE_FILE).exists():
        raise SystemExit(f"{settings.data_dir} was already changed ({CHANGE_FILE})")
    store = Store.open(settings.db_path)
    try:
        seen = {t for (t,) in store.db.execute("SELECT title FROM products")}
        first = store.product_count()  # the store's products are gen0..gen<first - 1>
        titles = (added / "titles.txt").read_text(encoding="utf-8").splitlines()
        pick = []
        for i, title in enumerate(titles):
            if title not in seen:
                seen.add(title)
                pick.append(i)
        del seen
        if len(pick) < add:
            raise SystemExit(f"{added} has {len(pick)} products with new titles, fewer than {add}")
        existing = np.fromiter((r for (r,) in store.db.execute("SELECT rowid FROM products")), dtype=np.int64)
        gone = np.sort(np.random.default_rng(21).choice(existing, remove, replace=False))
        before = int(store.db.execute("SELECT max(rowid) FROM products").fetchone()[0])
        t, c = time.perf_counter(), _cpu_s()
        encoder = SimpleNamespace(fingerprint=store.get_meta("base_fingerprint"))  # what the vectors are stored as
        t_products, t_vectors = bench_query._fill_generated(store, add, encoder, bench_query.generated_sources(added),
                                                            first=first, pick=np.array(pick[:add]))
        ids = [i for (i,) in store.db.execute(f"SELECT id FROM products WHERE rowid IN ({','.join('?' * remove)})",
                                              gone.tolist())]
        with store.db.conn:
            store.delete_products(ids)
        new = np.array([r for (r,) in store.db.execute("SELECT rowid FROM products WHERE rowid > ? ORDER BY rowid",
                                                       (before,))], dtype=np.int64)
        out = {"added": len(new), "removed": len(ids), "skipped_duplicate_titles": len(titles) - len(pick),
               "change_s": round(time.perf_counter() - t, 1), "change_cpu_s": round(_cpu_s() - c, 1),
               "insert_products_s": round(t_products, 1), "insert_vectors_s": round(t_vectors, 1),
               "products_after": store.product_count(), "added_from": str(added)}
        (settings.data_dir / CHANGE_FILE).write_text(json.dumps({**out, "removed_rowids": gone.tolist(),
                                                                 "added_rowids": new.tolist()}))
        return out
    finally:
        store.close()


def child_reindex(data_dir: str, profile: Path | None = None) -> dict:
    """The product's reindex (mmtui.index.writer.reindex, what build-index runs after encoding) on a changed
    store: wall, CPU (user + system) and peak RSS of the reindex alone, each step's time (progress events), and
    what each index did. Run it under /usr/bin/time -v for the whole process's figures. `profile`: a cProfile
    of the reindex written there, timed in process CPU seconds (waits and pauses do not count)."""
    from mmtui.config import Settings
    from mmtui.index.generations import current
    from mmtui.index.writer import reindex

    settings = Settings(data_dir=Path(data_dir))
    out: dict = {"load_average_start": [round(x, 2) for x in os.getloadavg()], "rss_before_mb": _rss_mb()}
    events: list[str] = []
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile(time.process_time)
    t, c = time.perf_counter(), _cpu_s()
    if profiler is not None:
        profiler.enable()
    results = reindex(settings, progress=lambda e: events.append(
        f"{time.perf_counter() - t:.1f} s / {_cpu_s() - c:.1f} CPU-s: {e.message}"))
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(profile))
    out.update({"reindex_s": round(time.perf_counter() - t, 1), "reindex_cpu_s": round(_cpu_s() - c, 1),
                "peak_rss_mb": _rss_mb("VmHWM"), "events": events,
                "load_average_end": [round(x, 2) for x in os.getloadavg()],
                "recall_self_check": {k: v[0] for k, v in results.items()}})
    gen = current(settings.ann_dir)
    out["generation"] = gen.name
    for name in ("image", "text", "fused"):
        m = json.loads((gen.dir / f"{name}.manifest.json").read_text())
        out.setdefault("indexes", {})[name] = {"ef": m["ef"], "recall_at_10": m["recall_at_10"], "build_seconds":
                                               m["build_seconds"], "update": m["extra"].get("update"),
                                               "deleted_slots": m["extra"].get("deleted_slots")}
    out["reused_files"] = sorted(p.name for p in gen.dir.iterdir() if p.stat().st_nlink > 1)
    return out


def child_update_check(model: str, data_dir: str, base_gen: str, n_queries: int) -> dict:
    """Same results after the update: for each graph, recall@10 (top-10 overlap with exact search, ties count)
    of the updated graph at its ef against exact search over the updated vectors, and of the graph before the
    update (generation `base_gen`, still on disk) over its own vectors, on child_recall's query sets; no removed
    product returned (the removed products' old vectors as queries); each added product's own vector finds it;
    the updated lexical.npz against a fresh LexicalIndex.build (bench_incremental.lexical_same_results)."""
    from mmtui.index.ann import VectorIndex
    from mmtui.index.generations import current

    from .bench_incremental import lexical_same_results

    change = json.loads((Path(data_dir) / CHANGE_FILE).read_text())
    removed, added = np.array(change["removed_rowids"]), np.array(change["added_rowids"])
    service, _ = _open(model, data_dir)
    space = service.store.get_meta("index_space")
    gen_dir = current(Path(data_dir) / "ann").dir
    old_dir = Path(data_dir) / "ann" / base_gen
    text = VectorIndex.load(gen_dir, "text", space)
    sets = _query_sets(service, text, n_queries)
    out: dict = {"sets": {k: len(v) for k, v in sets.items()}, "generation": gen_dir.name, "base": base_gen}
    every = np.concatenate(list(sets.values()))
    bounds = np.cumsum([0] + [len(v) for v in sets.values()])
    for name in ("image", "text", "fused"):
        res: dict = {}
        for label, directory in (("updated", gen_dir), ("before", old_dir)):
            index = VectorIndex.load(directory, name, space)
            t = time.perf_counter()
            kth = index._kth_scores(every, 10)  # exact once for all sets
            res[label] = {"ef": index.manifest.ef, "exact_s": round(time.perf_counter() - t, 1),
                          **{k: _recall(index, v, kth[bounds[i]:bounds[i + 1]]) for i, (k, v) in
                             enumerate(sets.items())}}
            if label == "before":  # the removed products' vectors, as they were indexed
                gone_vectors = np.asarray(index.vectors[index.positions(removed)], np.float32)
            else:
                updated = index
        labels = set(updated.labels.tolist())
        res["removed_still_indexed"] = len(set(removed.tolist()) & labels)
        res["added_indexed"] = len(set(added.tolist()) & labels)
        found = [set(x.tolist()) for x in updated._graph_results(gone_vectors, 10)]
        res["removed_returned"] = int(sum(len(f & set(removed.tolist())) for f in found))
        own = np.asarray(updated.vectors[updated.positions(added)], np.float32)
        hits = updated._graph_results(own, 10)
        res["added_find_themselves"] = {"top1": round(float(np.mean([h[0] == a for h, a in zip(hits, added)])), 4),
                                        "top10": round(float(np.mean([a in h for h, a in zip(hits, added)])), 4)}
        out[name] = res
    out["lexical"] = lexical_same_results(service.store, gen_dir, queries(200))
    return out


# -- report ------------------------------------------------------------------------------------------------------
def targets(result: dict) -> list[dict]:
    out = []
    for n, r in result.get("sizes", {}).items():
        label = f"{int(n):,} products"
        modes = r.get("modes", {})
        opens = [m.get("open_s") for m in modes.values() if m.get("open_s") is not None]
        if opens:
            out.append({"target": f"service open (ready) <= 2 s, {label}", "value": f"{max(opens)} s (slowest of "
                        "the mode runs)", "met": max(opens) <= TARGETS["open_s"]})
        needed = {m: v.get("rss_mb") for m, v in modes.items() if v.get("rss_mb")}
        if needed:
            worst = max(needed, key=needed.get)
            out.append({"target": f"search RSS <= 3 GB (only what the mode needs), {label}",
                        "value": f"{needed[worst]:.0f} MB ({worst}, the largest)",
                        "met": needed[worst] <= TARGETS["rss_mb"]})
        if r.get("all_loaded", {}).get("rss_mb"):
            v = r["all_loaded"]["rss_mb"]
            out.append({"target": f"search RSS <= 3 GB (all indexes loaded), {label}", "value": f"{v:.0f} MB",
                        "met": v <= TARGETS["rss_mb"]})
        two = r.get("two_processes", {})
        if "adds_mb" in two:
            out.append({"target": f"a second searching process adds <= 0.5 GB, {label}",
                        "value": f"{two['adds_mb']:.0f} MB (PSS of both minus the first alone; its private pages "
                                 f"{two['second_private_mb']:.0f} MB)", "met": two["adds_mb"] <= TARGETS["second_mb"]})
        for mode, v in modes.items():
            lat = v.get("latency_ms", {})
            if "p50" in lat:
                out.append({"target": f"{mode} p50 <= {TARGETS['p50']:g} ms / p99 <= {TARGETS['p99']:g} ms, {label}",
                            "value": f"{lat['p50']} / {lat['p99']} ms",
                            "met": lat["p50"] <= TARGETS["p50"] and lat["p99"] <= TARGETS["p99"]})
        for name, v in r.get("recall", {}).items():
            if isinstance(v, dict) and "ef" in v:
                got = {k: v[k] for k in ("products", "shopper", "shopper_store") if k in v}
                out.append({"target": f"{name} ANN recall@10 >= 0.97 at the build's ef ({v['ef']}), {label}",
                            "value": " / ".join(f"{x} {k}" for k, x in got.items()),
                            "met": min(got.values()) >= TARGETS["recall"]})
        flt = r.get("filtered", {})
        shares = [s for s in SELECTIVITY if s in flt]
        if shares:
            p50s = {s: flt[s]["search_ms"]["p50"] for s in shares}
            out.append({"target": f"filtered image search p50 <= 30 ms from 0.1% to 50%, {label}",
                        "value": ", ".join(f"{s}: {v}" for s, v in p50s.items()) + " ms",
                        "met": max(p50s.values()) <= TARGETS["filtered_p50"]})
    return out


def markdown(result: dict) -> list[str]:
    lines: list[str] = []
    for n, r in result.get("sizes", {}).items():
        st, b = r.get("store", {}), r.get("build", {})
        lines += [f"### {int(n):,} products ({result.get('model')} model)", "", f"- Products: {st.get('source')}."]
        if b.get("ef"):
            lines.append("- Graphs: " + ", ".join(f"{k} {v}" for k, v in b.get("stores", {}).items()) + "; ef the "
                         "build's self-check chose (its recall@10 on 200 product texts): " + ", ".join(
                             f"{k} {v} ({b.get('build_recall', {}).get(k)})" for k, v in b["ef"].items())
                         + (f"; the build took {b['wall']} wall" if b.get("wall") else "") + ".")
        lines += [

                  f"- Store: products inserted in {st.get('insert_products_s')} s, vectors in "
                  f"{st.get('insert_vectors_s')} s; reindex from the stored vectors (image, text, fused graphs, "
                  f"M=32/ef_construction=200, 2 threads, and the lexical index): {st.get('reindex_s')} s; graphs: "
                  + ", ".join(f"{k} {v} s" for k, v in b.get("index_seconds", {}).items())
                  + (f"; peak RSS of the building process {b['peak_rss_mb']:.0f} MB" if b.get("peak_rss_mb") else "")
                  + f". Files: " + ", ".join(f"{k} {v} MB" for k, v in b.get("files_mb", {}).items()) + ".", ""]
        lines += ["| mode | open s | model s | first query ms | p50 | p90 | p99 ms | RSS MB (peak) | indexes read |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for mode, v in r.get("modes", {}).items():
            if "error" in v:
                lines.append(f"| {mode} | error: {v['error']} |||||||")
                continue
            lat = v["latency_ms"]
            lines.append(f"| {mode} | {v['open_s']} | {v['load_model_s']} | {v['first_query_ms']} | {lat['p50']} | "
                         f"{lat['p90']} | {lat['p99']} | {v['rss_mb']:.0f} ({v['peak_rss_mb']:.0f}) | "
                         f"{', '.join(v['loaded']) or '-'} |")
        a = r.get("all_loaded", {})
        if "rss_mb" in a:
            lines += ["", f"All three graphs read by preload() in {a['preload_all_s']} s (on a background thread; "
                      f"open itself returned in {a['open_s']} s), every mode queried: RSS {a['rss_mb']:.0f} MB (peak "
                      f"{a['peak_rss_mb']:.0f} MB; PSS {a.get('pss_mb')} MB, private {a.get('private_dirty_mb')} MB "
                      f"dirty + {a.get('private_clean_mb')} MB clean; query encoder {a.get('query_encoder')}, torch "
                      f"imported: {a.get('torch_imported')})."]
        two = r.get("two_processes", {})
        if "adds_mb" in two:
            f, s2 = two["first"], two["second"]
            lines += ["", f"Two such processes alive at once: the first alone RSS {f['rss_mb']:.0f} MB; both alive, "
                      f"PSS {f['both_alive'].get('pss_mb')} + {s2['both_alive'].get('pss_mb')} MB (RSS "
                      f"{f['both_alive']['rss_mb']:.0f} / {s2['both_alive']['rss_mb']:.0f} MB): the second adds "
                      f"**{two['adds_mb']:.0f} MB** (its private pages {two['second_private_mb']:.0f} MB)."]
        lex = r.get("modes", {}).get("lexical", {})
        if "rss_mb" in lex:
            lines += ["", f"Lexical: {lex.get('lexical_path')}, its arrays {lex.get('lexical_index_mb')} MB; RSS of "
                      f"a lexical-only service {lex['rss_mb']:.0f} MB (before open, with the model: "
                      f"{lex['rss_before_open_mb']:.0f} MB); p50 {lex['latency_ms']['p50']} ms."]
        rec = r.get("recall", {})
        sets = [k for k in ("products", "shopper", "shopper_store") if k in rec.get("sets", {})]
        if sets:
            lines += ["", "Recall@10 against exact search (query sets: " + ", ".join(
                f"{k} {rec['sets'][k]}" for k in sets) + "); ANN = VectorIndex.search k=20 on the shopper queries, "
                "p50/p99 ms:", "", "| index | ef | " + " | ".join(sets) + " | ANN p50/p99 ms |",
                "|---|---|" + "---|" * len(sets) + "---|"]
            for name, v in rec.items():
                if not isinstance(v, dict) or "ef" not in v:
                    continue
                rows = [(f"**{v['ef']}** (the build's)", v)] + [(ef, c) for ef, c in v.get("curve", {}).items()
                                                                 if int(ef) != v["ef"]]
                for ef, c in sorted(rows, key=lambda x: int(str(x[0]).split()[0].strip("*"))):
                    lines.append(f"| {name} | {ef} | " + " | ".join(str(c.get(k)) for k in sets)
                                 + f" | {c['ann_ms'].get('p50')}/{c['ann_ms'].get('p99')} |")
        flt = r.get("filtered", {})
        if flt and "error" not in flt:
            lines += ["", "| filter (share) | allowed | allowed rows: first / cached arrays / SQL ms | strategy | "
                      "exact p50/p99 | graph p50/p99 | graph recall vs exact | image search p50/p99 | hybrid p50/p99 |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for share in SELECTIVITY:
                v = flt.get(share)
                if not v:
                    continue
                lines.append(f"| `{v['filter']}` ({share}) | {v['allowed']:,} | {v['allowed_first_ms']} / "
                             f"{v['allowed_arrays_ms']} / {v['allowed_sql_ms']} | {v['strategy']} | "
                             f"{v['exact']['p50']}/{v['exact']['p99']} | {v['graph']['p50']}/{v['graph']['p99']} | "
                             f"{v['graph_recall_vs_exact']} | {v['search_ms']['p50']}/{v['search_ms']['p99']} | "
                             f"{v['hybrid_ms']['p50']}/{v['hybrid_ms']['p99']} |")
            c = flt.get("crossing")
            if c:
                lines += ["", f"Crossing point measured here: exact {c['ms_per_allowed_exact'] * 1e3:.2f} µs per "
                          f"allowed vector, the filtered walk ~{c['graph_ms_at_full_share']:.3f} ms / share allowed: "
                          f"exact is faster below ~{c['exact_below_allowed']:,} allowed (FILTER_CROSSING "
                          f"{c['FILTER_CROSSING']})."]
        lines.append("")
    if result.get("load_average_end"):
        lines.append(f"Load average at the end: {result['load_average_end']} (2 shared cores).")
    return lines


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--child", required=True, help="mode | all | hold | recall | filtered | store (build the store) | change, "
                   "reindex, update-check (+10k/-1k on a copy of the store)")
    p.add_argument("--size", type=int, default=1_000_000, help="store: products")
    p.add_argument("--products", type=Path, default=None, help="store: a benchmarks.gen_products folder")
    p.add_argument("--model", default="lite")
    p.add_argument("--data-dir", default="")
    p.add_argument("--mode", default="")
    p.add_argument("--queries", type=int, default=40)
    p.add_argument("--added", type=Path, default=None, help="change: a gen_products folder (another seed)")
    p.add_argument("--profile", type=Path, default=None, help="reindex: write a cProfile (CPU time) here")
    p.add_argument("--base-gen", default="gen-000001", help="update-check: the generation before the update")
    a = p.parse_args(argv)
    if a.model != "lite" or a.child == "store":  # the lite query path runs without torch (ONNX Runtime)
        import torch

        torch.set_num_threads(2)
    fn = {"hold": lambda: child_all(a.model, a.data_dir, a.queries, hold=True),
          "mode": lambda: child_mode(a.model, a.data_dir, a.mode, a.queries),
          "all": lambda: child_all(a.model, a.data_dir, a.queries),
          "recall": lambda: child_recall(a.model, a.data_dir, a.queries),
          "filtered": lambda: child_filtered(a.model, a.data_dir, a.queries),
          "store": lambda: child_store(a.model, a.size, a.products),
          "change": lambda: child_change(a.data_dir, a.added),
          "reindex": lambda: child_reindex(a.data_dir, a.profile),
          "update-check": lambda: child_update_check(a.model, a.data_dir, a.base_gen, a.queries)}[a.child]
    print(json.dumps(fn(), default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
