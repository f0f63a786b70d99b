"""Warm query latency (text query -> hits with metadata) at 2k / 10k / 100k products, per mode.

The stores beyond the real catalog are synthetic but shaped like it: product i takes the image and text
vectors of real product i mod n (from a built Fashion index, or from a sample this benchmark encodes
itself) plus small Gaussian noise (cosine ~0.95 to the source), and a title + attributes from
styles-text-only.csv (cycled). Products and vectors go straight into a Store, then mmtui.build.pipeline.reindex
builds the ANN indexes exactly as build-index does. No image is encoded for them.

Latency is SearchService.search with the model loaded once, the query cache cleared before every query
(each query pays its encoding: what a user typing a new query sees), k=20.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from .bench_util import FASHION, WORK, log, percentiles, queries, sample_images

STORE_VERSION = 3  # bump when the synthetic store recipe changes (3: synthetic prices; vectors carry content hashes)
NOISE_COS = 0.95  # cosine between a synthetic vector and its real source
TARGETS = {10_000: {"p50": 15.0, "p99": 50.0}, 100_000: {"p50": 30.0}}


def _noisy(src: np.ndarray, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    d = src.shape[1]
    sigma = np.sqrt((1 / NOISE_COS ** 2 - 1) / d)
    x = src[idx] + sigma * rng.standard_normal((len(idx), d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def source_vectors(encoder, fashion_index: Path | None, sample: int = 512, texts: int = 7230,
                   refresh: bool = False) -> dict:
    """Real vectors to clone, per kind: from a built Fashion index made with this encoder (it may still be
    building: whatever is there, if at least 256), else encoded here (images: a sample; texts: the combined
    texts of styles.csv, cheap) and cached under .work/sources."""
    from mmtui.store.db import Store

    found: dict[str, np.ndarray] = {}
    snapshot = {k: WORK / "sources" / f"{encoder.fingerprint}-fashion-{k}.npy" for k in ("image", "text")}
    for kind, path in snapshot.items():  # a snapshot, so the stores stay cached while that index grows
        if path.is_file() and not refresh:
            found[kind] = np.load(path)
    if len(found) < 2 and fashion_index and (fashion_index / "catalog.db").is_file():
        store = Store.open(fashion_index / "catalog.db")
        try:
            fp = store.get_meta("base_fingerprint")
            if fp == encoder.fingerprint:
                for kind in ("image", "text"):
                    if kind in found:
                        continue
                    _, vec = store.vectors(fp, kind)
                    if len(vec) >= 256:
                        found[kind] = vec
                        snapshot[kind].parent.mkdir(parents=True, exist_ok=True)
                        np.save(snapshot[kind], vec)
            else:
                log(f"query: {fashion_index} was built with another model ({fp})")
        finally:
            store.close()
    origin = {k: f"{len(v)} {k} vectors of the built Fashion index" for k, v in found.items()}
    if "image" not in found:
        cache = WORK / "sources" / f"{encoder.fingerprint}-image-{sample}.npy"
        if not cache.is_file():
            log(f"query: encoding {sample} Fashion images as vector sources")
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, np.concatenate([encoder.encode_images(b) for b in _batches(sample_images(sample), 32)]))
        found["image"] = np.load(cache)
        origin["image"] = f"{sample} Fashion images encoded by the benchmark"
    if "text" not in found:
        cache = WORK / "sources" / f"{encoder.fingerprint}-text-{texts}.npy"
        if not cache.is_file():
            from mmtui.catalog.text import combined_text
            from mmtui.catalog.fashion import read_fashion_file
            from mmtui.catalog.records import Product

            log(f"query: encoding {texts} Fashion product texts as vector sources")
            items = [combined_text(p) for p in read_fashion_file(FASHION / "styles.csv", with_images=True)
                     if isinstance(p, Product)][:texts]
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, np.concatenate([encoder.encode_texts(b) for b in _batches(items, 64)]))
        found["text"] = np.load(cache)
        origin["text"] = f"{len(found['text'])} Fashion product texts encoded by the benchmark"
    tag = f"i{len(found['image'])}-t{len(found['text'])}"
    return {"image": found["image"], "text": found["text"], "tag": tag, "source": "; ".join(origin.values())}


def _batches(items: list, n: int):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def synthetic_price(i: int) -> float:
    """A deterministic price in 0.01..1000.00: i*7919 mod 100000 is a permutation of each block of 100k rows, so
    `price<X` keeps exactly X/1000 of a store whose size is a multiple of 100k (price<1: 0.1%, <500: 50%)."""
    return ((i * 7919) % 100_000 + 1) / 100


def synthetic_products(n: int) -> list:
    from mmtui.catalog.fashion import read_fashion_file
    from mmtui.catalog.records import Product

    base = [p for p in read_fashion_file(FASHION / "styles-text-only.csv", with_images=False)
            if isinstance(p, Product)]
    out = []
    for i in range(n):
        p = base[i % len(base)]
        cycle = i // len(base)
        out.append(Product(id=f"syn{i}", title=p.title if not cycle else f"{p.title} {cycle + 1}",
                           category=p.category, colour=p.colour, gender=p.gender, attributes=dict(p.attributes),
                           price=synthetic_price(i), row=i + 1))
    return out


def generated_sources(products: Path) -> dict:
    """The `sources` of a store made of benchmarks.gen_products' distinct products (titles.txt, text.npy,
    image.npy in `products`) instead of noisy copies of real vectors."""
    from .gen_products import FINGERPRINT

    meta = json.loads((products / "meta.json").read_text())
    return {"products": products, "tag": f"gen-{products.name}", "fingerprint": meta.get("fingerprint", FINGERPRINT),
            "source": f"distinct products generated by benchmarks.gen_products (the first n of {meta['n']:,} in {products})"}


def synthetic_store(n: int, encoder, sources: dict, rebuild: bool = False) -> tuple[object, dict]:
    """(Settings, info) of a store with n synthetic products and their indexes; cached under .work/stores.
    `sources`: source_vectors (noisy copies of real vectors) or generated_sources (distinct generated products)."""
    from mmtui.build.pipeline import reindex
    from mmtui.config import Settings
    from mmtui.store.db import Store

    root = WORK / "stores" / f"{encoder.fingerprint}-{sources['tag']}-{n}-v{STORE_VERSION}"
    settings = Settings(data_dir=root)
    done = root / "done.json"
    if done.is_file() and not rebuild:
        from mmtui.index.generations import current
        from mmtui.index.lexical import FILE, refresh_lexical_index

        gen = current(settings.ann_dir)
        if gen is None or not gen.has(FILE):  # stores cached before the lexical index had none
            store = Store.open(settings.db_path)
            refresh_lexical_index(settings, store.db.conn)
            store.close()
        return settings, json.loads(done.read_text())
    shutil.rmtree(root, ignore_errors=True)
    log(f"query: building a synthetic store of {n} products ({sources['source']})")
    started = time.perf_counter()
    store = Store.open(settings.db_path, create=True)
    fill = _fill_generated if "products" in sources else _fill_noisy
    t_products, t_vectors = fill(store, n, encoder, sources)
    store.set_meta("base_model", encoder.name)
    store.set_meta("base_fingerprint", encoder.fingerprint)
    store.set_meta("base_dim", str(encoder.dim))
    t = time.perf_counter()
    log(f"query: products {t_products:.0f} s, vectors {t_vectors:.0f} s; reindex")
    recall = reindex(settings, store=store)
    t_index = time.perf_counter() - t
    kept = store.db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    if kept != 2 * n:
        raise RuntimeError(f"the synthetic store kept {kept} of {2 * n} vectors: reindex dropped them as stale")
    store.close()
    info = {"products": n, "source": sources["source"], "noise_cos": None if "products" in sources else NOISE_COS,
            "insert_products_s": round(t_products, 1), "insert_vectors_s": round(t_vectors, 1),
            "reindex_s": round(t_index, 1), "reindex_recall_at_10": {k: v[0] for k, v in recall.items()},
            "total_s": round(time.perf_counter() - started, 1),
            "db_mb": round(settings.db_path.stat().st_size / 1e6, 1)}
    done.write_text(json.dumps(info, indent=2))
    return settings, info


def _fill_noisy(store, n: int, encoder, sources: dict) -> tuple[float, float]:
    """Products cycled from styles-text-only.csv, vectors: noisy copies of the source vectors. (seconds, seconds)"""
    from mmtui.build.pipeline import _record
    from mmtui.catalog.text import combined_text
    from mmtui.store.db import sha1_text

    rng = np.random.default_rng(n)
    started = time.perf_counter()
    records = []
    n_img = len(sources["image"])
    for i, p in enumerate(synthetic_products(n)):
        p.text = combined_text(p)
        p.image_status = "ok"
        p.image_path = str(FASHION / "images" / "missing.jpg")
        p.image_sha = sha1_text(f"img{i % n_img}")
        records.append(_record(p, "synthetic"))
    with store.db.conn:
        store.upsert_products(records)
    t_products = time.perf_counter() - started
    rowids = np.arange(1, n + 1)
    for kind in ("image", "text"):
        vec = _noisy(sources[kind], rowids % len(sources[kind]), rng)
        # each vector carries its product's content hash: a vector whose hash differs is stale, and reindex drops it
        shas = store.content_shas(kind)
        for s in range(0, n, 5000):
            chunk = rowids[s:s + 5000].tolist()
            store.put_vectors(encoder.fingerprint, kind, chunk, [shas[r] for r in chunk], vec[s:s + 5000])
        del shas
    return t_products, time.perf_counter() - started - t_products


GENERATED_CHUNK = 50_000  # products inserted (and vectors read from the .npy files) at a time


def _fill_generated(store, n: int, encoder, sources: dict, first: int = 0, pick: np.ndarray | None = None
                    ) -> tuple[float, float]:
    """n products of gen_products' output, streamed: a chunk of records and vectors at a time (the .npy files
    memory-mapped), ids gen<first + i>, titles as generated, synthetic prices. `pick`: which of the folder's
    products, in order (default its first n); `first`: the number of the first one (an update adds products
    after the store's). (seconds, seconds)"""
    from itertools import islice

    from mmtui.build.pipeline import _record
    from mmtui.catalog.records import Product
    from mmtui.catalog.text import combined_text
    from mmtui.store.db import sha1_text

    folder = sources["products"]
    if sources.get("fingerprint") not in (None, encoder.fingerprint):  # generated vectors: shaped like, not made by
        log(f"query: {folder} was generated from model {sources['fingerprint']}'s vectors; stored as {encoder.fingerprint}'s")
    vectors = {k: np.load(folder / f"{k}.npy", mmap_mode="r") for k in ("image", "text")}
    pick = np.arange(n) if pick is None else np.asarray(pick, dtype=np.int64)[:n]
    if len(pick) < n or (len(pick) and min(len(v) for v in vectors.values()) <= pick.max()):
        raise RuntimeError(f"{folder} has {len(vectors['text'])} products, fewer than {n}")
    t_products = t_vectors = 0.0
    with open(folder / "titles.txt", encoding="utf-8") as fh:
        lines = iter(fh)
        read = 0  # lines of titles.txt read so far
        for s in range(0, n, GENERATED_CHUNK):
            t = time.perf_counter()
            at = pick[s:s + GENERATED_CHUNK]
            block = [line.rstrip("\n") for line in islice(lines, int(at[-1]) + 1 - read)]
            titles = [block[int(k) - read] for k in at]
            read = int(at[-1]) + 1
            last = store.db.execute("SELECT coalesce(max(rowid), 0) FROM products").fetchone()[0]
            records = []
            for j, title in enumerate(titles):
                i = first + s + j
                p = Product(id=f"gen{i}", title=title, price=synthetic_price(i), row=i + 1, image_status="ok",
                            image_path=str(FASHION / "images" / "missing.jpg"), image_sha=sha1_text(f"gimg{i}"))
                p.text = combined_text(p)
                records.append(_record(p, "generated"))
            with store.db.conn:
                store.upsert_products(records)
            t_products += time.perf_counter() - t
            t = time.perf_counter()
            rows = store.db.execute("SELECT rowid, id, image_sha, text_sha FROM products WHERE rowid > ? "
                                    "ORDER BY rowid LIMIT ?", (last, len(records))).fetchall()
            if [r[1] for r in rows] != [r["id"] for r in records]:
                raise RuntimeError("generated products did not get consecutive rowids")
            rowids = [r[0] for r in rows]
            for kind, col in (("image", 2), ("text", 3)):
                for b in range(0, len(rows), 5000):
                    store.put_vectors(encoder.fingerprint, kind, rowids[b:b + 5000], [r[col] for r in rows[b:b + 5000]],
                                      np.asarray(vectors[kind][at[b:b + 5000]]))
            t_vectors += time.perf_counter() - t
            log(f"query: {s + len(records):,}/{n:,} generated products stored")
    return t_products, t_vectors


def measure(service, qs: list[str], k: int = 20) -> dict:
    from mmtui.store.filters import parse_where
    from mmtui.query.service import MODES

    modes = [m for m in MODES if m in ("lexical", "hybrid") or m in service.indexes]
    out: dict = {}
    service.load_model()  # as `mmtui search` and the TUI do before the first query
    for q in qs[:5]:  # warm-up: SQLite pages, index pages, kernels
        service.search(q, k=k, mode="hybrid")
    def timed_search(q: str, mode: str, clear: bool = True, **kw) -> tuple[float, float]:
        if clear:
            service._query_cache.clear()
        t, c = time.perf_counter(), time.process_time()
        service.search(q, k=k, mode=mode, **kw)
        return (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000

    def stats(pairs: list[tuple[float, float]]) -> dict:
        res = percentiles([w for w, _ in pairs])
        res["cpu_p50"] = percentiles([c for _, c in pairs])["p50"]
        return res

    # the service's own thread choice (mmtui.query.service.set_query_threads: 1 torch + 1 BLAS thread), as `mmtui search`
    # and the TUI run; then 2 + 2 threads for comparison
    import torch
    from threadpoolctl import threadpool_limits

    from mmtui.query.service import set_query_threads

    before = torch.get_num_threads()
    out["service_threads"] = getattr(service.encoder, "threads", None) or set_query_threads()
    out["query_encoder"] = type(service.encoder).__name__
    set_query_threads()
    service._threads_checked = time.monotonic() + 1e9  # keep that choice for this run (no re-check mid-run)
    for q in qs[:5]:  # a change of torch's thread count makes the next op build its thread pool (~70 ms here)
        service.search(q, k=k, mode="image")
    for mode in modes:
        out[mode] = stats([timed_search(q, mode) for q in qs])
    chosen = service.encoder
    try:
        torch.set_num_threads(2)
        if hasattr(chosen, "threads"):  # an ONNX Runtime session keeps its threads: a second one with 2
            from mmtui.encoders.query_encoder import open_query_encoder

            service._encoder = open_query_encoder(service.settings, service.store, 2)[0]
            service.search(qs[0], k=k, mode="hybrid")
        with threadpool_limits(limits=2, user_api="blas"):
            out["hybrid, 2 torch + 2 BLAS threads"] = stats([timed_search(q, "hybrid") for q in qs])
    finally:
        service._encoder = chosen
        torch.set_num_threads(before)
        set_query_threads()
    out["hybrid (cached query vector)"] = stats([timed_search(q, "hybrid", clear=False) for q in qs])
    flt = [parse_where("colour=Black")]
    out["hybrid + where colour=Black"] = stats([timed_search(q, "hybrid", filters=flt) for q in qs[:40]])
    # where the time goes
    parts: dict[str, list[float]] = {"encode query": [], "ann image (100)": [], "ann text (100)": [],
                                     "lexical (100)": [], "rows (20)": []}
    for q in qs[:40]:
        t = time.perf_counter()
        v = service.projector.text(service.encoder.encode_texts([q]))[0]
        parts["encode query"].append((time.perf_counter() - t) * 1000)
        for name in ("image", "text"):
            t = time.perf_counter()
            labels, _ = service.indexes[name].search(v, 100)
            parts[f"ann {name} (100)"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        service.store.lexical(q, 100)
        parts["lexical (100)"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        service.store.rows(labels[:20].tolist())
        parts["rows (20)"].append((time.perf_counter() - t) * 1000)
    out["breakdown"] = {name: percentiles(v) for name, v in parts.items()}
    return out


def run(encoder, sizes: list[int], fashion_index: Path | None, n_queries: int = 100, rebuild: bool = False) -> dict:
    from mmtui.query.service import SearchService

    sources = source_vectors(encoder, fashion_index, refresh=rebuild)
    qs = queries(n_queries)
    out: dict = {"model": encoder.name, "fingerprint": encoder.fingerprint, "queries": len(qs), "k": 20,
                 "source": sources["source"], "sizes": {}}
    from .bench_util import ensure_query_model

    for n in sizes:
        settings, info = synthetic_store(n, encoder, sources, rebuild=rebuild)
        ensure_query_model(settings, encoder)  # as build-index leaves a data dir: searches need no torch
        t = time.perf_counter()
        # the query model the service picks itself (the ONNX export), as `mmtui search` and the TUI do
        service = SearchService.open(settings)
        open_s = time.perf_counter() - t
        log(f"query: measuring at {n}")
        result = measure(service, qs)
        service.close()
        out["sizes"][str(n)] = {"store": info, "open_s": round(open_s, 3), "latency_ms": result}
    return out


def targets(result: dict, lite: bool) -> list[dict]:
    out = []
    for n, goal in TARGETS.items():
        got = result.get("sizes", {}).get(str(n))
        for stat, limit in goal.items():
            name = f"warm text query {stat} <= {limit:g} ms at {n // 1000}k (lite)"
            if not got:
                out.append({"target": name, "value": "not measured", "met": None})
                continue
            modes = [m for m in ("image", "text", "fused", "hybrid", "lexical") if m in got["latency_ms"]]
            worst_mode = max(modes, key=lambda m: got["latency_ms"][m][stat])
            value = got["latency_ms"][worst_mode][stat]
            lat = got["latency_ms"]
            two = lat.get("hybrid, 2 torch + 2 BLAS threads", {})
            row = {"target": name, "value": f"{value} ms (slowest mode: {worst_mode}; {lat.get('service_threads', '?')} "
                   f"torch + 1 BLAS thread, as the service chose at this load; hybrid {lat['hybrid'][stat]} ms, with "
                   f"2 + 2 threads {two.get(stat)} ms)",
                   "met": value <= limit}
            if not lite:
                row["met"] = None
                row["why"] = f"measured with {result['model']}, not lite"
            out.append(row)
    return out


def markdown(result: dict) -> list[str]:
    lines = [f"Model `{result['model']}`; {result['queries']} distinct queries per mode, k={result['k']}, query "
             f"cache cleared before each; vectors cloned from {result['source']} with noise (cos {NOISE_COS}). "
             "Every row but the 2 + 2 threads one runs as the service does (mmtui.query.service.set_query_threads: 2 torch "
             "threads when other processes leave about two cores idle, judged from /proc/stat, else 1; 1 BLAS thread; "
             "the choice is in "
             "speed.json as service_threads). CPU ms = process CPU time per query (all threads): about the wall time on an otherwise idle "
             "machine for 1 thread; with 2 threads it includes time spent spinning. Query encoder: "
             + ", ".join(sorted({str(r['latency_ms'].get('query_encoder', 'the torch model'))
                                 for r in result['sizes'].values()})) + " (the one the service picks).", "",
             "| products | mode | p50 ms | p90 ms | p99 ms | max ms | CPU ms p50 |", "|---|---|---|---|---|---|---|"]
    for n, r in result["sizes"].items():
        for mode, p in r["latency_ms"].items():
            if mode == "breakdown" or not isinstance(p, dict):  # service_threads, query_encoder
                continue
            lines.append(f"| {int(n):,} | {mode} | {p['p50']} | {p['p90']} | {p['p99']} | {p['max']} | "
                         f"{p.get('cpu_p50', '')} |")
    lines += ["", "Where the time goes (p50 ms of each step, alone):", "",
              "| products | " + " | ".join(next(iter(result["sizes"].values()))["latency_ms"]["breakdown"]) +
              " | service open s | reindex s |",
              "|---|" + "---|" * (len(next(iter(result["sizes"].values()))["latency_ms"]["breakdown"]) + 2)]
    for n, r in result["sizes"].items():
        b = r["latency_ms"]["breakdown"]
        lines.append(f"| {int(n):,} | " + " | ".join(str(v["p50"]) for v in b.values()) +
                     f" | {r['open_s']} | {r['store'].get('reindex_s', '')} |")
    return lines
