"""ANN recall@10 against exact search, and queries/s, at each store size (the same stores as bench_query).

Queries are what searches send: encoded text queries against the image index (cross-modal) and the
text index, plus noisy product-text vectors for more samples. Exact = brute force over all vectors.
Single-query loops (as the service searches, hnswlib on 1 thread); ef swept around the shipped value.
"""

from __future__ import annotations

import time

import numpy as np

from .bench_util import log, queries

TARGET = 0.98
EFS = (16, 32, 64, 128, 256)


def _exact_topk(vectors: np.ndarray, qs: np.ndarray, k: int) -> np.ndarray:
    out = []
    for s in range(0, len(qs), 256):
        scores = qs[s:s + 256] @ vectors.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out.append(top)
    return np.concatenate(out)


def evaluate(index, qs: np.ndarray, k: int = 10, efs=EFS) -> dict:
    """{ef: {recall, qps}} of the graph, plus exact-search qps, for one VectorIndex."""
    vectors = np.ascontiguousarray(index.vectors, dtype=np.float32)
    truth = index.labels[_exact_topk(vectors, qs, k)]
    res: dict = {"count": len(index), "M": index.manifest.M, "ef_construction": index.manifest.ef_construction,
                 "ef_shipped": index.manifest.ef, "build_s": index.manifest.build_seconds, "by_ef": {}}
    t = time.perf_counter()
    for q in qs[:100]:
        index.exact(q, k)
    res["exact_qps"] = round(min(100, len(qs)) / (time.perf_counter() - t), 1)
    if index.graph is None:
        res["by_ef"]["exact"] = {"recall": 1.0, "qps": res["exact_qps"]}
        return res
    index.graph.set_num_threads(1)
    for ef in sorted(set(efs) | {index.manifest.ef}):
        index.graph.set_ef(max(ef, k))
        got = []
        t = time.perf_counter()
        for q in qs:
            labels, _ = index.graph.knn_query(q, k=k)
            got.append(labels[0])
        qps = len(qs) / (time.perf_counter() - t)
        recall = float(np.mean([len(set(g.tolist()) & set(tr.tolist())) / k for g, tr in zip(got, truth)]))
        res["by_ef"][str(ef)] = {"recall": round(recall, 4), "qps": round(qps, 1)}
    index.graph.set_ef(index.manifest.ef)
    return res


def query_vectors(encoder, n_text: int = 100) -> np.ndarray:
    return encoder.encode_texts(queries(n_text, seed=1)).astype(np.float32)


def run(encoder, stores: dict, extra_queries: int = 400) -> dict:
    """stores: {size: Settings} of synthetic stores (bench_query.synthetic_store)."""
    from mmtui.index.ann import VectorIndex
    from mmtui.encoders.projection import search_space
    from mmtui.index.generations import current
    from mmtui.store.db import Store

    encoded = query_vectors(encoder)
    out: dict = {"queries": {"encoded text queries": len(encoded), "noisy product texts": extra_queries}, "sizes": {}}
    for n, settings in stores.items():
        log(f"ann: {n}")
        store = Store.open(settings.db_path)
        space, projector = search_space(store, settings)
        store.close()
        per: dict = {}
        index_dir = current(settings.ann_dir).dir
        for name in ("image", "text", "fused"):
            if not (index_dir / f"{name}.manifest.json").is_file():
                continue
            index = VectorIndex.load(index_dir, name, space)
            rng = np.random.default_rng(0)
            pick = rng.choice(len(index), size=min(extra_queries, len(index)), replace=False)
            text_index = VectorIndex.load(index_dir, "text", space)
            noisy = np.asarray(text_index.vectors[np.sort(pick)]) + 0.02 * rng.standard_normal(
                (len(pick), index.manifest.dim)).astype(np.float32)
            noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
            qs = np.concatenate([projector.text(encoded), noisy]).astype(np.float32)
            if qs.shape[1] != index.manifest.dim:
                continue
            per[name] = evaluate(index, qs)
        out["sizes"][str(n)] = per
    return out


def targets(result: dict) -> list[dict]:
    out = []
    for n, per in result.get("sizes", {}).items():
        for name, r in per.items():
            shipped = r["by_ef"].get(str(r["ef_shipped"])) or r["by_ef"].get("exact")
            out.append({"target": f"ANN recall@10 >= {TARGET} ({name} index, {int(n):,})",
                        "value": f"{shipped['recall']:.4f} at ef={r['ef_shipped']}, {shipped['qps']:,.0f} q/s "
                                 f"(exact {r['exact_qps']:,.0f} q/s)", "met": shipped["recall"] >= TARGET})
    return out


def markdown(result: dict) -> list[str]:
    efs = sorted({ef for per in result["sizes"].values() for r in per.values() for ef in r["by_ef"]},
                 key=lambda e: (e == "exact", int(e) if e.isdigit() else 0))
    lines = ["| products | index | M / ef_c | build s | exact q/s | " + " | ".join(f"ef={e}" for e in efs) + " |",
             "|---|---|---|---|---|" + "---|" * len(efs)]
    for n, per in result["sizes"].items():
        for name, r in per.items():
            cells = []
            for e in efs:
                v = r["by_ef"].get(e)
                mark = "**" if e == str(r["ef_shipped"]) else ""
                cells.append(f"{mark}{v['recall']:.3f} @ {v['qps']:,.0f}/s{mark}" if v else "")
            lines.append(f"| {int(n):,} | {name} | {r['M']} / {r['ef_construction']} | {r['build_s']} | "
                         f"{r['exact_qps']:,.0f} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Cells: recall@10 against exact search @ single-query queries/s (1 thread); bold = the shipped ef.")
    if "tune" in result:
        lines += [""] + tune_markdown(result["tune"])
    return lines


def tune(encoder, settings, n: int = 30_000, grid=((16, 100), (16, 200), (32, 100), (32, 200))) -> dict:
    """Build time, recall@10 and q/s for a few (M, ef_construction) on n image vectors of one store."""
    from mmtui.index.ann import VectorIndex
    from mmtui.index.generations import current
    from mmtui.encoders.projection import search_space
    from mmtui.store.db import Store

    store = Store.open(settings.db_path)
    space, projector = search_space(store, settings)
    store.close()
    index_dir = current(settings.ann_dir).dir
    full = VectorIndex.load(index_dir, "image", space)
    vectors = np.ascontiguousarray(full.vectors[:n], dtype=np.float32)
    labels = full.labels[:n]
    qs = projector.text(query_vectors(encoder)).astype(np.float32)
    rng = np.random.default_rng(1)
    text = VectorIndex.load(index_dir, "text", space)
    noisy = np.asarray(text.vectors[rng.choice(len(text), 400, replace=False)]) + 0.02 * rng.standard_normal(
        (400, text.manifest.dim)).astype(np.float32)
    qs = np.concatenate([qs, noisy / np.linalg.norm(noisy, axis=1, keepdims=True)]).astype(np.float32)
    out: dict = {"vectors": len(vectors), "grid": []}
    for M, efc in grid:
        log(f"ann tune: M={M} ef_construction={efc}")
        index = VectorIndex.build("image", space, labels, vectors, M=M, ef_construction=efc)
        r = evaluate(index, qs, efs=(32, 64, 128))
        out["grid"].append({"M": M, "ef_construction": efc, "build_s": index.manifest.build_seconds,
                            "by_ef": r["by_ef"]})
    return out


def tune_markdown(result: dict) -> list[str]:
    efs = ["32", "64", "128"]
    lines = [f"HNSW parameters on {result['vectors']:,} image vectors (cross-modal text queries):", "",
             "| M | ef_construction | build s (2 threads) | " + " | ".join(f"ef={e}" for e in efs) + " |",
             "|---|---|---|" + "---|" * len(efs)]
    for g in result["grid"]:
        lines.append(f"| {g['M']} | {g['ef_construction']} | {g['build_s']} | " + " | ".join(
            f"{g['by_ef'][e]['recall']:.3f} @ {g['by_ef'][e]['qps']:,.0f}/s" for e in efs if e in g["by_ef"]) + " |")
    return lines
