"""Moving a built data dir to embedded Qdrant, and its queries against the local backend's.

    python -m benchmarks.bench_qdrant DATA_DIR [--grow N] [--queries 50]

DATA_DIR (a built store, e.g. a synthetic one under benchmarks/.work/stores) is copied to a scratch folder; with
--grow N the copy first gets N products in all (copies of its products, vectors with small noise); then it is
moved to embedded Qdrant (the sync build-index --backend qdrant:DIR runs: nothing is encoded) and synced a
second time (nothing changed: nothing uploaded). Queries: the same texts on both backends, each query's vector
cached first, so the figures are the candidate lists, fusion and rows, not the encoder.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .bench_util import log, percentiles, queries, rss_mb


def grow(settings, n: int) -> None:
    """Copies of the store's products (new ids, vectors with small noise) up to n products, local indexes rebuilt."""
    from mmtui.index.writer import reindex
    from mmtui.store.db import Store

    store = Store.open(settings.db_path)
    have = store.product_count()
    base = store.get_meta("base_fingerprint")
    rows = list(store.db.query("SELECT * FROM products ORDER BY rowid"))
    by_rowid = {r["rowid"]: r for r in rows}
    vecs = {kind: store.vectors(base, kind) for kind in ("image", "text")}
    rng = np.random.default_rng(0)
    next_rowid = max(r["rowid"] for r in rows) + 1
    while have < n:
        take = rows[: min(len(rows), n - have)]
        new = []
        for i, r in enumerate(take):
            new.append({**r, "rowid": next_rowid + i, "id": f"{r['id']}-g{next_rowid + i}"})
        with store.db.conn:
            store.db["products"].insert_all(new, alter=False)
        old_to_new = {r["rowid"]: next_rowid + i for i, r in enumerate(take)}
        for kind, (ids, v) in vecs.items():
            keep = np.isin(ids, list(old_to_new))
            noisy = v[keep] + rng.standard_normal(v[keep].shape).astype(np.float32) * 0.02
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            column = "image_sha" if kind == "image" else "text_sha"  # the copies' content: their vectors stay current
            shas = [by_rowid[int(r)][column] for r in ids[keep]]
            store.put_vectors(base, kind, [old_to_new[int(r)] for r in ids[keep]], shas, noisy)
        next_rowid += len(take)
        have += len(take)
    log(f"grown to {store.product_count()} products; rebuilding the local indexes")
    reindex(settings, store=store)
    store.close()


def query_times(service, texts: list[str], modes: list[str]) -> dict:
    for q in texts:  # the query vectors, cached
        service.query_vector(q)
    out = {}
    for mode in modes:
        ms = []
        for q in texts:
            t = time.perf_counter()
            service.search(q, k=10, mode=mode, understand=False)
            ms.append((time.perf_counter() - t) * 1000)
        out[mode] = percentiles(ms)
    return out


def server_fusion(service, texts: list[str]) -> dict:
    """Qdrant's own weighted RRF (prefetch + rrf in one request) against the default (the candidate lists in one
    batch, fused by mmtui.query.hybrid): p50 of each, and how much of the default's top 10 it keeps."""
    from mmtui.query.hybrid import CANDIDATES, RRF_K

    weights = service.hybrid_weights()
    ms, overlap = [], []
    for q in texts:
        t = time.perf_counter()
        fused = service.backend.server_fused(q, service.query_vector(q), 10, weights, candidates=CANDIDATES,
                                             rrf_k=RRF_K)
        ms.append((time.perf_counter() - t) * 1000)
        default = {service.store.rowid_of([h.id])[h.id] for h in service.search(q, k=10, mode="hybrid",
                                                                                   understand=False).hits}
        overlap.append(len(default & {r for r, _ in fused}) / max(1, len(default)))
    return {"weights": weights, "p50_ms": percentiles(ms)["p50"], "top10_overlap_with_default": round(
        float(np.mean(overlap)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--grow", type=int, default=0)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    from mmtui.index.backends.spec import choose_backend
    from mmtui.config import Settings
    from mmtui.index.writer import reindex
    from mmtui.query.service import SearchService
    from mmtui.store.db import Store

    scratch = Path(tempfile.mkdtemp(prefix="mmtui-qdrant-"))
    try:
        settings = Settings(data_dir=scratch / "data")
        shutil.copytree(args.data_dir, settings.data_dir, ignore=shutil.ignore_patterns(".write.lock"))
        if args.grow:
            grow(settings, args.grow)
        texts = queries(args.queries)
        local = SearchService.open(settings)
        result = {"products": local.store.product_count(), "local": query_times(local, texts, ["image", "text",
                                                                                               "lexical", "hybrid"])}
        local.close()
        choose_backend(settings, f"qdrant:{scratch / 'qdrant'}")
        rss = rss_mb()
        t = time.perf_counter()
        reindex(settings)
        result["move_s"] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()
        reindex(settings)
        result["resync_unchanged_s"] = round(time.perf_counter() - t, 1)
        store = Store.open(settings.db_path)
        result["sync"] = json.loads(store.get_meta("qdrant_sync"))
        store.close()
        q = SearchService.open(settings)
        result["qdrant_embedded"] = query_times(q, texts, ["image", "text", "lexical", "hybrid"])
        result["server_side_rrf"] = server_fusion(q, texts)
        result["rss_mb_growth"] = round(rss_mb() - rss, 0)
        result["qdrant_folder_mb"] = round(sum(p.stat().st_size for p in (scratch / "qdrant").rglob("*")
                                               if p.is_file()) / 1e6, 1)
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
