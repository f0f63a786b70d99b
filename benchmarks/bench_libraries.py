"""Vector libraries side by side on distinct products (benchmarks/gen_products.py text vectors): hnswlib and
usearch as mmtui ships them (VectorIndex), faiss HNSW-SQ8 with float16 re-scoring, Qdrant Edge (int8, rescore,
memory-mapped); and Qdrant Edge's payload filter next to qdrant-client's local mode (`--backend qdrant:DIR`).

    python -m benchmarks.bench_libraries build  N LIB   # one build: wall and CPU s, peak RSS, files MB
    python -m benchmarks.bench_libraries search N LIB   # cold open, first query, per ef: p50/p99 wall and CPU,
                                                        # recall@10 on both query sets; RSS; then `pair`
    python -m benchmarks.bench_libraries pair   N LIB   # a second process on the same files (run by search)
    python -m benchmarks.bench_libraries filter N       # price ranges: Qdrant Edge vs qdrant-client local mode
                                                        # vs mmtui's local index (SQL-allowed labels)
    python -m benchmarks.bench_libraries report         # benchmarks/results/ann-libraries.md + .json

LIB: hnswlib | usearch | faiss | qdrant-edge. Every search is one query on 1 thread with k=100 (what hybrid asks
each index); builds use 2 threads. Query sets and exact top 10 are bench_store's (products: 500 held-out
generated product texts; shopper: 400 phrases encoded by the lite text tower, benchmarks/queries/
shopper-store-dev.txt). Data: WORK/products-N/text.npy (`python -m benchmarks.gen_products N`). Results:
WORK/lib-results/*.json. Run one at a time (`nice -n 5` on a shared machine): the load is recorded everywhere.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .bench_store import K, _rss_mb, query_sets, timed, truth
from .bench_util import REPO, WORK, log, machine, percentiles

LIBS = ("hnswlib", "usearch", "faiss", "qdrant-edge")
EFS = (64, 128, 256, 512)  # with k=100 every library searches with max(ef, k): 64 acts as 100
EF_PAIR = 128  # the shipped ef
M, EF_CONSTRUCTION = 32, 200
BUILD_THREADS = 2
N_TIMED = 1000
KIND = "text"
FILTER_SHARES = (0.01, 0.1, 0.5)  # share of the catalog a price range allows
RESULTS_MD = REPO / "benchmarks" / "results" / "ann-libraries.md"
KEEP_MARK = "<!-- written by hand below this line: `report` keeps it -->"


def _index_dir(n: int, lib: str) -> Path:
    return WORK / "lib-indexes" / f"{n}-{lib}"


def _vectors(n: int) -> np.ndarray:
    return np.load(WORK / f"products-{n}" / f"{KIND}.npy")


def prices(n: int) -> np.ndarray:
    """A price per product (rupee-like, log-normal), the payload the filters range over."""
    return np.round(np.exp(np.random.default_rng(3).normal(7.0, 1.0, n)), 0)


def price_range(n: int, share: float) -> tuple[float, float]:
    """A [lo, hi) price range around the median that allows `share` of the products."""
    p = np.sort(prices(n))
    lo, hi = int(len(p) * (0.5 - share / 2)), int(len(p) * (0.5 + share / 2))
    return float(p[lo]), float(p[min(hi, len(p) - 1)])


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _save(name: str, data: dict) -> None:
    out = WORK / "lib-results"
    out.mkdir(parents=True, exist_ok=True)
    data["load_end"] = _load()
    data["at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    (out / f"{name}.json").write_text(json.dumps(data, indent=2))
    print(json.dumps(data, indent=2))


def _files_mb(path: Path) -> dict[str, float]:
    """Sizes of the index's files, and what they take on disk (Qdrant preallocates sparse files)."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return {"total": round(sum(p.stat().st_size for p in files) / 1e6, 1),
            "on_disk": round(sum(p.stat().st_blocks * 512 for p in files) / 1e6, 1),
            **({p.name: round(p.stat().st_size / 1e6, 1) for p in files} if len(files) <= 6 else {})}


def _evict(path: Path) -> None:
    """Drop the index's files from the page cache: the next open reads them from disk (a cold start)."""
    for p in path.rglob("*"):
        if p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)  # dirty pages (a build just wrote them) stay cached
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


# -- the libraries: build(vectors, folder), open(folder), set_ef(ef), search(q) -> positions ---------------------
class Mmtui:
    """mmtui's VectorIndex: hnswlib float32 (+ the float32 vectors it keeps for exact and filtered search) or
    usearch float16 memory-mapped (+ a float16 vectors file), as build-index makes and search opens them."""

    def __init__(self, store: str) -> None:
        self.store = store

    def build(self, vectors: np.ndarray, folder: Path) -> None:
        from mmtui.index.ann import VectorIndex

        labels = np.arange(1, len(vectors) + 1, dtype=np.int64)  # product rowids
        index = VectorIndex.build(KIND, "bench", labels, vectors, store=self.store, M=M,
                                  ef_construction=EF_CONSTRUCTION, threads=BUILD_THREADS, digest="bench")
        index.save(folder)

    def open(self, folder: Path) -> None:
        from mmtui.index.ann import VectorIndex

        self.index = VectorIndex.load(folder, KIND, "bench")

    def set_ef(self, ef: int) -> None:
        self.index.manifest.ef = ef  # what search() passes to the graph (max(ef, k + 1))

    def search(self, q: np.ndarray) -> np.ndarray:
        return self.index.search(q, K)[0] - 1

    def filtered(self, q: np.ndarray, allowed_positions: np.ndarray) -> np.ndarray:
        return self.index.search(q, K, allowed=allowed_positions + 1)[0] - 1


class Faiss:
    """faiss IndexHNSWSQ (8-bit scalar quantiser, inner product), read memory-mapped; its k candidates re-scored
    with float32 dot products of a memory-mapped float16 copy of the vectors (as mmtui's usearch keeps one)."""

    def build(self, vectors: np.ndarray, folder: Path) -> None:
        import faiss

        from mmtui.index.usearch_graph import write_f16

        faiss.omp_set_num_threads(BUILD_THREADS)
        index = faiss.IndexHNSWSQ(vectors.shape[1], faiss.ScalarQuantizer.QT_8bit, M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        index.train(vectors[np.random.default_rng(0).choice(len(vectors), min(len(vectors), 100_000), False)])
        for s in range(0, len(vectors), 65536):
            index.add(np.ascontiguousarray(vectors[s:s + 65536]))
        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(index, str(folder / "index.faiss"))
        write_f16(folder / "vectors.f16.npy", vectors)

    def open(self, folder: Path) -> None:
        import faiss

        faiss.omp_set_num_threads(1)
        self.faiss = faiss
        self.index = faiss.read_index(str(folder / "index.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        self.f16 = np.load(folder / "vectors.f16.npy", mmap_mode="r")
        self.set_ef(EF_PAIR)

    def set_ef(self, ef: int) -> None:
        self.params = self.faiss.SearchParametersHNSW(efSearch=ef)

    def search(self, q: np.ndarray) -> np.ndarray:
        _, found = self.index.search(q[None], K, params=self.params)
        candidates = np.sort(found[0][found[0] >= 0])
        scores = np.asarray(self.f16[candidates], np.float32) @ q
        return candidates[np.argsort(-scores)]


class QdrantEdge:
    """Qdrant Edge (qdrant-edge-py): an embedded Qdrant shard in-process, int8 scalar quantisation in RAM with
    re-scoring from the original vectors, graph and vectors memory-mapped (Memory.Cold), a float payload index
    on price."""

    def config(self, dim: int):
        import qdrant_edge as qe

        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot, memory=qe.Memory.Cold),
            hnsw_config=qe.HnswIndexConfig(m=M, ef_construct=EF_CONSTRUCTION, full_scan_threshold=10,
                                           max_indexing_threads=BUILD_THREADS, memory=qe.Memory.Cold),
            quantization_config=qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True),
            optimizers=qe.EdgeOptimizersConfig(default_segment_number=1, max_segment_size=10_000_000,
                                                indexing_threshold=1000),
            max_search_threads=1, wal_enabled=False, payload_memory=qe.Memory.Cold)

    def build(self, vectors: np.ndarray, folder: Path) -> None:
        import qdrant_edge as qe

        price = prices(len(vectors))
        folder.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(folder), self.config(vectors.shape[1]))
        shard.update(qe.UpdateOperation.create_field_index("price", qe.PayloadSchemaType.Float))
        for s in range(0, len(vectors), 5000):
            shard.update(qe.UpdateOperation.upsert_points([
                qe.Point(id=i, vector=vectors[i].tolist(), payload={"price": float(price[i])})
                for i in range(s, min(len(vectors), s + 5000))]))
        shard.optimize()
        shard.flush()
        shard.close()

    def open(self, folder: Path) -> None:
        import qdrant_edge as qe

        self.qe = qe
        self.shard = qe.EdgeShard.load(str(folder))
        self.set_ef(EF_PAIR)

    def set_ef(self, ef: int) -> None:
        qe = self.qe
        self.params = qe.SearchParams(hnsw_ef=ef, quantization=qe.QuantizationSearchParams(rescore=True,
                                                                                           oversampling=1.0))

    def search(self, q: np.ndarray, price: tuple[float, float] | None = None) -> np.ndarray:
        qe = self.qe
        flt = None if price is None else qe.Filter(must=[qe.FieldCondition(
            key="price", range=qe.RangeFloat(gte=price[0], lt=price[1]))])
        found = self.shard.query(qe.QueryRequest(limit=K, query=qe.Query.Nearest(q.tolist()), params=self.params,
                                                 filter=flt))
        return np.array([p.id for p in found], np.int64)


def make(lib: str):
    if lib not in LIBS:
        raise SystemExit(f"LIB is one of {', '.join(LIBS)}, not {lib!r}")
    return {"hnswlib": lambda: Mmtui("hnswlib"), "usearch": lambda: Mmtui("usearch"), "faiss": Faiss,
            "qdrant-edge": QdrantEdge}[lib]()


# -- steps ------------------------------------------------------------------------------------------------------
def build(n: int, lib: str) -> dict:
    vectors = _vectors(n)
    folder = _index_dir(n, lib)
    shutil.rmtree(folder, ignore_errors=True)
    rss_before = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    load_start = _load()
    t, c = time.perf_counter(), time.process_time()
    make(lib).build(vectors, folder)
    result = {"n": n, "lib": lib, "M": M, "ef_construction": EF_CONSTRUCTION, "threads": BUILD_THREADS,
              "build_s": round(time.perf_counter() - t, 1), "build_cpu_s": round(time.process_time() - c, 1),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "rss_with_input_mb": rss_before, "input_mb": round(vectors.nbytes / 1e6, 1),
              "files_mb": _files_mb(folder), "load_start": load_start}
    _save(f"build-{n}-{lib}", result)
    return result


def _recall(engine, sets: dict[str, np.ndarray], exact: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for name, q in sets.items():
        hits = [len(set(engine.search(v)[:10].tolist()) & set(exact[name][i].tolist())) / 10 for i, v in enumerate(q)]
        out[name] = round(float(np.mean(hits)), 4)
    return out


def _opened(n: int, lib: str, cold: bool) -> tuple[object, dict]:
    folder = _index_dir(n, lib)
    if cold:
        _evict(folder)
    before = _rss_mb()
    engine = make(lib)
    t = time.perf_counter()
    engine.open(folder)
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    engine.search(query_sets(n)["shopper"][0])
    first_ms = round((time.perf_counter() - t) * 1000, 1)
    return engine, {"cold": cold, "open_s": round(open_s, 3), "first_query_ms": first_ms,
                    "rss_before_open": before, "rss_after_open": _rss_mb()}


def search(n: int, lib: str) -> dict:
    """A fresh process: cold open, recall and latency at each ef, memory; then a second process (pair)."""
    engine, result = _opened(n, lib, cold=True)
    result = {"n": n, "lib": lib, "load_start": _load(), **result, "per_ef": {}}
    sets, exact = query_sets(n), truth(n, KIND)
    everything = np.concatenate(list(sets.values()))
    for ef in EFS:
        engine.set_ef(ef)
        result["per_ef"][ef] = {"recall_at_10": _recall(engine, sets, exact), **timed(engine.search, everything, N_TIMED),
                                "load": _load()}
        log(f"{lib} ef {ef}: {result['per_ef'][ef]['recall_at_10']} p50 {result['per_ef'][ef]['cpu_ms']['p50']} ms CPU")
    result["rss_after_queries"] = _rss_mb()
    engine.set_ef(EF_PAIR)
    child = subprocess.run([sys.executable, "-m", "benchmarks.bench_libraries", "pair", str(n), lib],
                           capture_output=True, text=True, cwd=REPO, env=os.environ, check=False)
    try:
        result["second_process"] = json.loads(child.stdout)
    except ValueError:
        result["second_process"] = {"error": child.stderr[-2000:]}
    result["rss_while_second_ran"] = _rss_mb()
    _save(f"search-{n}-{lib}", result)
    return result


def pair(n: int, lib: str) -> dict:
    """The second process: opens the files the first one holds (warm), runs the timed queries at the shipped ef."""
    engine, result = _opened(n, lib, cold=False)
    engine.set_ef(EF_PAIR)
    result.update(timed(engine.search, np.concatenate(list(query_sets(n).values())), N_TIMED))
    result["rss_after_queries"] = after = _rss_mb()
    result["added_private_mb"] = round(after["Private"] - result["rss_before_open"]["Private"], 1)
    result["added_pss_mb"] = round(after["Pss"] - result["rss_before_open"]["Pss"], 1)
    print(json.dumps(result))
    return result



# -- filtered: Qdrant Edge vs qdrant-client's local mode vs mmtui's local index --------------------------------
class QdrantLocal:
    """qdrant-client's local mode (QdrantClient(path=...)), what `--backend qdrant:DIR` runs without a server:
    points kept in Python, every query scored with numpy over all of them, filters checked point by point."""

    COLLECTION = "bench"

    def build(self, vectors: np.ndarray, folder: Path) -> None:
        from qdrant_client import QdrantClient, models

        from mmtui.index.backends.qdrant.client import fast_local_writes

        price = prices(len(vectors))
        client = QdrantClient(path=str(folder))
        client.create_collection(self.COLLECTION, vectors_config=models.VectorParams(
            size=vectors.shape[1], distance=models.Distance.DOT))
        fast_local_writes(client, self.COLLECTION)
        for s in range(0, len(vectors), 1000):
            client.upsert(self.COLLECTION, points=[
                models.PointStruct(id=i, vector=vectors[i].tolist(), payload={"price": float(price[i])})
                for i in range(s, min(len(vectors), s + 1000))], wait=True)
        client.close()

    def open(self, folder: Path) -> None:
        from qdrant_client import QdrantClient, models

        self.models = models
        self.client = QdrantClient(path=str(folder))

    def search(self, q: np.ndarray, price: tuple[float, float] | None = None) -> np.ndarray:
        m = self.models
        flt = None if price is None else m.Filter(must=[m.FieldCondition(key="price", range=m.Range(
            gte=price[0], lt=price[1]))])
        found = self.client.query_points(self.COLLECTION, query=q.tolist(), limit=K, query_filter=flt).points
        return np.array([p.id for p in found], np.int64)


def _filtered_run(search_fn, queries: np.ndarray, vectors: np.ndarray, allowed: np.ndarray | None) -> dict:
    """Latency and recall@10 against exact search over the allowed products, one query at a time. The exact top
    10s come first: BLAS threads spinning after a product would be counted in the next query's CPU time."""
    pool = np.arange(len(vectors)) if allowed is None else allowed
    exact = [set(pool[np.argsort(-(vectors[pool] @ q))[:10]].tolist()) for q in queries]
    wall, cpu, recall = [], [], []
    for q, top in zip(queries, exact):
        t, c = time.perf_counter(), time.process_time()
        found = search_fn(q)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
        recall.append(len(set(found[:10].tolist()) & top) / 10)
    return {"wall_ms": percentiles(wall), "cpu_ms": percentiles(cpu), "recall_at_10": round(float(np.mean(recall)), 4),
            "queries": len(queries), "load": _load()}


def _engine_filtered(name: str, engine, shopper: np.ndarray, vectors: np.ndarray, n_queries: int) -> dict:
    out = {}
    price = prices(len(vectors))
    for q in shopper[:n_queries]:  # a first pass after open faults the mapped files in (Qdrant Edge: 2x the CPU)
        engine.search(q)
    for share in (1.0, *FILTER_SHARES):
        rng = None if share == 1.0 else price_range(len(vectors), share)
        allowed = None if rng is None else np.flatnonzero((price >= rng[0]) & (price < rng[1]))
        if name == "mmtui":
            fn = engine.search if allowed is None else (lambda q, a=allowed: engine.filtered(q, a))
        else:
            fn = lambda q, r=rng: engine.search(q, r)
        out[str(share)] = {"price_range": rng, **_filtered_run(fn, shopper[:n_queries], vectors, allowed)}
        got = out[str(share)]
        log(f"{name} share {share}: {got['cpu_ms']['p50']} ms CPU, recall {got['recall_at_10']}")
    return out


def filtered(n: int, local_queries: int = 20) -> dict:
    """Price-range filters (1 / 10 / 50 % of the catalog, and none) on shopper queries, k=100: mmtui's local
    index (the store choose_store picks at n; the allowed labels come from SQL in mmtui, not timed here), Qdrant
    Edge's payload index (from `build N qdrant-edge`) and qdrant-client's local mode (built here once)."""
    from mmtui.index.ann import choose_store

    vectors = _vectors(n)
    shopper = query_sets(n)["shopper"]
    result: dict = {"n": n, "load_start": _load(), "mmtui_store": choose_store(n)}
    local_dir = _index_dir(n, "qdrant-local")
    if not local_dir.is_dir():  # the upload, once: kept as build-N-qdrant-local.json for later runs
        load_start = _load()
        t, c = time.perf_counter(), time.process_time()
        QdrantLocal().build(vectors, local_dir)
        _save(f"build-{n}-qdrant-local", {"n": n, "lib": "qdrant-local", "build_s": round(time.perf_counter() - t, 1),
                                          "build_cpu_s": round(time.process_time() - c, 1), "load_start": load_start,
                                          "files_mb": _files_mb(local_dir)})
    for name, engine, folder, count in (
            ("mmtui", Mmtui(choose_store(n)), _index_dir(n, choose_store(n)), len(shopper)),
            ("qdrant-edge", make("qdrant-edge"), _index_dir(n, "qdrant-edge"), len(shopper)),
            ("qdrant-local", QdrantLocal(), local_dir, local_queries)):
        before = _rss_mb()
        t, c = time.perf_counter(), time.process_time()
        engine.open(folder)
        opened = {"open_s": round(time.perf_counter() - t, 2), "open_cpu_s": round(time.process_time() - c, 2),
                  "files_mb": _files_mb(folder)}
        if hasattr(engine, "set_ef"):
            engine.set_ef(EF_PAIR)
        runs = _engine_filtered(name, engine, shopper, vectors, count)
        after = _rss_mb()
        result[name] = {**opened, "added_rss_mb": round(after["Rss"] - before["Rss"], 1),
                        "added_private_mb": round(after["Private"] - before["Private"], 1), "by_share": runs}
    _save(f"filter-{n}", result)
    return result



# -- report ---------------------------------------------------------------------------------------------------
def _results() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((WORK / "lib-results").glob("*.json"))}


def _main_table(res: dict[str, dict], n: int) -> list[str]:
    rows = [(f"| {n:,} | build s wall / CPU (load) | build peak RSS MB (input held) | files MB (on disk) | open s cold "
             "(2nd process, warm) | first query ms cold | RSS after queries MB | 2nd process adds private MB (PSS) |"),
            "|---|---|---|---|---|---|---|---|"]
    for lib in LIBS:
        b, s = res.get(f"build-{n}-{lib}"), res.get(f"search-{n}-{lib}")
        if not b or not s:
            continue
        second = s.get("second_process", {})
        rows.append(f"| {lib} | {b['build_s']} / {b['build_cpu_s']} ({b['load_start'][0]}) | {b['peak_rss_mb']:.0f} "
                    f"({b['input_mb']:.0f}) | {b['files_mb']['total']} ({b['files_mb']['on_disk']}) | {s['open_s']} "
                    f"({second.get('open_s')}) | {s['first_query_ms']} | {s['rss_after_queries']['Rss']:.0f} | "
                    f"{second.get('added_private_mb')} ({second.get('added_pss_mb')}) |")
    return rows


def _ef_table(res: dict[str, dict], n: int) -> list[str]:
    rows = [f"| {n:,} | ef | recall@10 products | recall@10 shopper | p50 / p99 ms CPU | p50 / p99 ms wall | load |",
            "|---|---|---|---|---|---|---|"]
    for lib in LIBS:
        s = res.get(f"search-{n}-{lib}")
        for ef, e in (s or {}).get("per_ef", {}).items():
            rows.append(f"| {lib} | {ef} | {e['recall_at_10']['products']} | {e['recall_at_10']['shopper']} | "
                        f"{e['cpu_ms']['p50']} / {e['cpu_ms']['p99']} | {e['wall_ms']['p50']} / {e['wall_ms']['p99']} "
                        f"| {e['load'][0]} |")
    return rows


def _filter_table(f: dict) -> list[str]:
    shares = list(next(iter(v["by_share"] for k, v in f.items() if isinstance(v, dict) and "by_share" in v)))
    rows = [f"| {f['n']:,}, k=100 | open s (CPU) | RSS added MB (private) | "
            + " | ".join(("no filter" if sh == "1.0" else f"{float(sh):.0%} allowed") + ": CPU p50 / p99 ms, recall@10"
                         for sh in shares) + " |", "|---" * (3 + len(shares)) + "|"]
    for name in ("mmtui", "qdrant-edge", "qdrant-local"):
        e = f.get(name)
        if not e:
            continue
        label = f"mmtui local ({f['mmtui_store']})" if name == "mmtui" else name
        cells = [f"{r['cpu_ms']['p50']} / {r['cpu_ms']['p99']}, {r['recall_at_10']} (n={r['queries']})"
                 for r in e["by_share"].values()]
        rows.append(f"| {label} | {e['open_s']} ({e['open_cpu_s']}) | {e['added_rss_mb']:.0f} "
                    f"({e['added_private_mb']:.0f}) | " + " | ".join(cells) + " |")
    return rows


def report() -> None:
    """benchmarks/results/ann-libraries.md (tables from WORK/lib-results; the text below KEEP_MARK is kept) and
    ann-libraries.json (every result, the machine)."""
    res = _results()
    sizes = sorted({r["n"] for r in res.values() if "lib" in r})
    lines = ["# Vector libraries at 100k and 1M distinct products", "",
             ("Tables written by `python -m benchmarks.bench_libraries report` from the runs listed under each "
              "table; the text after the tables is written by hand. Settings: text vectors of "
              "`benchmarks/gen_products.py` (256-d), M 32, ef_construction 200, builds on 2 threads, searches one "
              "query at a time on 1 thread with k=100 (what hybrid asks each index; every library then searches "
              "with max(ef, k), so ef 64 acts as 100). recall@10 = overlap of the top 10 with exact float32 search "
              "(bench_store's sets: 500 held-out product texts, 400 shopper phrases). CPU ms = user+sys of the "
              "process: the estimate of an idle core's wall time on this shared machine. Load = 1-minute load "
              "average (2 cores)."), ""]
    for n in sizes:
        lines += [f"## {n:,} products", "",
                  (f"`python -m benchmarks.bench_libraries build {n} LIB` then `... search {n} LIB` "
                   "(cold open: the files dropped from the page cache first; the 2nd process opens them while the "
                   "first holds them and runs 1,000 queries at ef 128)."), "",
                  *_main_table(res, n), "", *_ef_table(res, n), ""]
        if f"filter-{n}" in res:
            lines += [f"### Filtered by a price range ({n:,})", "",
                      (f"`python -m benchmarks.bench_libraries filter {n}`: shopper queries, a price range around "
                       "the median allowing the share shown; recall@10 against exact search over the allowed "
                       "products."), "", *_filter_table(res[f"filter-{n}"]), ""]
            local = res.get(f"build-{n}-qdrant-local")
            if local:
                lines += [(f"qdrant-client local mode upload of {n:,} points (1,000 a call, WAL without a sync per "
                           f"commit as mmtui writes): {local['build_s']} s wall / {local['build_cpu_s']} CPU-s "
                           f"(load {local['load_start'][0]}), {local['files_mb']['total']} MB on disk."), ""]
    kept = RESULTS_MD.read_text().split(KEEP_MARK, 1)[1] if RESULTS_MD.is_file() and KEEP_MARK in \
        RESULTS_MD.read_text() else "\n\n## Conclusion\n\n(to be written)\n"
    RESULTS_MD.write_text("\n".join(lines) + "\n" + KEEP_MARK + kept)
    RESULTS_MD.with_suffix(".json").write_text(json.dumps({"machine": machine(), "results": res}, indent=1))
    print(RESULTS_MD)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("build", "search", "pair", "filter", "report"):
        raise SystemExit(__doc__)
    step = sys.argv[1]
    if step == "report":
        report()
        return
    n = int(sys.argv[2])
    if step == "filter":
        filtered(n)
        return
    lib = sys.argv[3]
    {"build": build, "search": search, "pair": pair}[step](n, lib)


if __name__ == "__main__":
    log(" ".join(sys.argv[1:]))
    main()
