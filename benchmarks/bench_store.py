"""Vector stores at scale on distinct products (benchmarks/gen_products.py): hnswlib vs usearch (float16, `view`).

Every figure comes from mmtui's own VectorIndex (build, the build's recall self-check and ef tuning, save, load,
search with k=100 as hybrid asks each index), each step in a fresh process:

    python -m benchmarks.bench_store build  N STORE KIND   # build + self-check + save (run under /usr/bin/time -v)
    python -m benchmarks.bench_store search N STORE KIND   # open, RSS, p50/p99, recall@10, a 2nd process
    python -m benchmarks.bench_store update N STORE KIND   # +10k/-1k: VectorIndex.updated vs the full build
    python -m benchmarks.bench_store queries N              # exact top-10 of the query sets (cached)

KIND: text | image. Query sets (recall@10 against exact float32 search over the same vectors):
  products  500 held-out generated products' text vectors (another seed): item-like queries
  shopper   shopper-style phrases made from the catalogs' vocabularies (colour + type + gender / word + type),
            encoded by the lite text tower as a search does; benchmarks/queries/shopper-store-dev.txt
For KIND=image both sets are cross-modal (text queries, image vectors), as hybrid's image list is.
Results: WORK/store-results/*.json.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .bench_util import REPO, WORK, log, percentiles

K = 100  # what hybrid asks each vector index for
N_TIMED = 1000
SHOPPER_FILE = REPO / "benchmarks" / "queries" / "shopper-store-dev.txt"


def _data(n: int) -> Path:
    return WORK / f"products-{n}"


def _index_dir(n: int, store: str, kind: str) -> Path:
    return WORK / "store-indexes" / f"{n}-{store}-{kind}"


def _results(name: str, data: dict) -> None:
    out = WORK / "store-results"
    out.mkdir(parents=True, exist_ok=True)
    data["load_average"] = [round(x, 2) for x in os.getloadavg()]
    data["at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    (out / f"{name}.json").write_text(json.dumps(data, indent=2))
    print(json.dumps(data, indent=2))


def _rss_mb() -> dict:
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts[0] in ("Rss:", "Pss:", "Shared_Clean:", "Private_Clean:", "Private_Dirty:"):
            out[parts[0][:-1]] = round(int(parts[1]) / 1024, 1)
    out["Private"] = round(out.get("Private_Clean", 0) + out.get("Private_Dirty", 0), 1)
    return out


# -- queries ------------------------------------------------------------------------------------------------
def shopper_phrases(limit: int = 400) -> list[str]:
    """Shopper-style phrases from the source catalogs' own colours, types and genders (no eval-set words)."""
    from .gen_products import SOURCES, _read_source

    rng = np.random.default_rng(7)
    phrases = set()
    cats = [_read_source(p) for p in SOURCES if (p / "catalog.db").is_file()]
    while len(phrases) < limit:
        c = cats[0] if rng.random() < 0.8 else cats[1]
        i = int(rng.integers(len(c["title"])))
        kind = c["type"][i].split(">")[-1].strip().lower()
        colour, gender = c["colour"][i].lower(), c["gender"][i].lower()
        form = rng.integers(4)
        if form == 0 and colour:
            phrases.add(f"{colour} {kind}" + (f" for {gender}" if gender else ""))
        elif form == 1:
            words = [w for w in c["title"][i].lower().split() if w.isalpha() and len(w) > 3]
            if words:
                phrases.add(f"{words[int(rng.integers(len(words)))]} {kind}")
        elif form == 2:
            phrases.add(f"{kind} under {int(rng.integers(5, 60)) * 100}")
        elif colour:
            phrases.add(f"cheap {colour} {kind}")
    return sorted(phrases)[:limit]


def query_sets(n: int) -> dict[str, np.ndarray]:
    """{"products", "shopper"}: query vectors (float32, unit), cached."""
    cache = WORK / "store-queries"
    cache.mkdir(parents=True, exist_ok=True)
    prod = cache / "products.npy"
    if not prod.is_file():
        from .gen_products import Model, SOURCES

        text, _, _ = Model(SOURCES).chunk(0, 500, seed=99)  # another stream: not in any index
        np.save(prod, text)
    shop = cache / "shopper.npy"
    if not shop.is_file():
        from .bench_util import load_model

        phrases = shopper_phrases()
        SHOPPER_FILE.parent.mkdir(parents=True, exist_ok=True)
        SHOPPER_FILE.write_text("\n".join(phrases) + "\n")
        encoder = load_model("lite")
        np.save(shop, np.concatenate([encoder.encode_texts(phrases[s:s + 64]) for s in range(0, len(phrases), 64)]))
    return {"products": np.load(prod), "shopper": np.load(shop)}


def truth(n: int, kind: str, k: int = 10) -> dict[str, np.ndarray]:
    """Exact float32 top-k labels (positions) of each query set over the generated vectors, cached."""
    sets = query_sets(n)
    out = {}
    for name, q in sets.items():
        path = WORK / "store-queries" / f"truth-{n}-{kind}-{name}.npy"
        if not path.is_file():
            vectors = np.load(_data(n) / f"{kind}.npy", mmap_mode="r")
            best_s = np.full((len(q), 0), -np.inf, np.float32)
            best_i = np.zeros((len(q), 0), np.int64)
            for s in range(0, len(vectors), 100_000):
                scores = q @ np.asarray(vectors[s:s + 100_000]).T
                top = np.argpartition(-scores, k, axis=1)[:, :k]
                best_s = np.concatenate([best_s, np.take_along_axis(scores, top, 1)], axis=1)
                best_i = np.concatenate([best_i, top + s], axis=1)
                order = np.argsort(-best_s, axis=1)[:, :k]
                best_s, best_i = np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)
            np.save(path, best_i)
        out[name] = np.load(path)
    return out


# -- steps --------------------------------------------------------------------------------------------------
def build(n: int, store: str, kind: str, ef_construction: int | None = None) -> dict:
    """`ef_construction`: other than the shipped one (a cheaper build when the machine cannot afford it: file sizes
    and memory do not depend on it, recall at a given ef and build time do)."""
    from mmtui.index.ann import VectorIndex
    from mmtui.index.writer import _self_check

    vectors = np.load(_data(n) / f"{kind}.npy", mmap_mode="r")
    labels = np.arange(1, n + 1, dtype=np.int64)  # product rowids
    t, c = time.perf_counter(), time.process_time()
    from mmtui.index.ann import EF_CONSTRUCTION

    index = VectorIndex.build(kind, "bench", labels, vectors, store=store,
                              ef_construction=ef_construction or EF_CONSTRUCTION)
    built_s, built_cpu = time.perf_counter() - t, time.process_time() - c
    # the build's own self-check: 200 product texts (reindex's _recall_queries), ef raised until recall >= 0.98
    sample = np.random.default_rng(0).permutation(n)[:200]
    text = np.load(_data(n) / "text.npy", mmap_mode="r")
    recall = _self_check(index, np.asarray(text[np.sort(sample)]))
    out_dir = _index_dir(n, store, kind)
    out_dir.mkdir(parents=True, exist_ok=True)
    index.save(out_dir)
    result = {"n": n, "store": store, "kind": kind, "ef_construction": index.manifest.ef_construction, "build_s": round(built_s, 1), "build_cpu_s": round(built_cpu, 1),
              "total_s": round(time.perf_counter() - t, 1), "total_cpu_s": round(time.process_time() - c, 1), "ef": index.manifest.ef, "self_check_recall": recall,
              "files_mb": {p.name: round(p.stat().st_size / 1e6, 1) for p in out_dir.iterdir()},
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    _results(f"build-{n}-{store}-{kind}", result)
    return result


def timed(search, queries: np.ndarray, runs: int) -> dict:
    """Wall and CPU ms percentiles of `search(query)` over `runs` queries (cycling through `queries`)."""
    wall, cpu = [], []
    for i in range(runs):
        q = queries[i % len(queries)]
        t, c = time.perf_counter(), time.process_time()
        search(q)
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return {"wall_ms": percentiles(wall), "cpu_ms": percentiles(cpu)}


def search(n: int, store: str, kind: str, second: bool = False) -> dict:
    from mmtui.index.ann import VectorIndex

    before = _rss_mb()
    t = time.perf_counter()
    index = VectorIndex.load(_index_dir(n, store, kind), kind, "bench")
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    index.search(query_sets(n)["products"][0], K)
    first_ms = (time.perf_counter() - t) * 1000
    sets, exact = query_sets(n), truth(n, kind)
    recall = {}
    for name, q in sets.items():
        hits = [len(set((index.search(v, K)[0][:10] - 1).tolist()) & set(exact[name][i].tolist())) / 10
                for i, v in enumerate(q)]
        recall[name] = round(float(np.mean(hits)), 4)
    timing = timed(lambda q: index.search(q, K), np.concatenate(list(sets.values())), N_TIMED)
    after = _rss_mb()
    result = {"n": n, "store": store, "kind": kind, "ef": index.manifest.ef, "open_s": round(open_s, 3),
              "first_query_ms": round(first_ms, 1), "recall_at_10": recall, **timing,
              "rss_before_open": before, "rss_after": after,
              "added_private_mb": round(after["Private"] - before["Private"], 1)}
    if second:
        return result
    # a second process opening the same files while this one holds them
    child = subprocess.run([sys.executable, "-m", "benchmarks.bench_store", "second", str(n), store, kind],
                           capture_output=True, text=True, cwd=REPO, env=os.environ)
    try:
        result["second_process"] = json.loads(child.stdout)
    except ValueError:
        result["second_process"] = {"error": child.stderr[-2000:]}
    _results(f"search-{n}-{store}-{kind}", result)
    return result


def update(n: int, store: str, kind: str, added: int = 10_000, removed: int = 1_000) -> dict:
    """+added/-removed products: VectorIndex.updated on the saved index vs its full build time; top-10 overlap of
    the updated index with exact search over the new set (a full rebuild's own overlap is its recall)."""
    from mmtui.index.ann import VectorIndex
    from mmtui.index.writer import _self_check
    from .gen_products import Model, SOURCES

    src = _index_dir(n, store, kind)
    built = json.loads((WORK / "store-results" / f"build-{n}-{store}-{kind}.json").read_text())
    vectors = np.load(_data(n) / f"{kind}.npy", mmap_mode="r")
    rng = np.random.default_rng(5)
    gone = np.sort(rng.choice(n, removed, replace=False))
    keep = np.ones(n, bool)
    keep[gone] = False
    text_new, image_new, _ = Model(SOURCES).chunk(0, added, seed=55)
    fresh = text_new if kind == "text" else image_new
    labels = np.concatenate([np.arange(1, n + 1, dtype=np.int64)[keep], np.arange(n + 1, n + added + 1)])
    new_vectors = np.concatenate([np.asarray(vectors)[keep], fresh])
    t, c = time.perf_counter(), time.process_time()
    saved = json.loads((src / f"{kind}.manifest.json").read_text())
    index = VectorIndex.updated(src, kind, "bench", labels, new_vectors, store=store, M=saved["M"],
                                ef_construction=saved["ef_construction"])
    if index is None:
        raise SystemExit("updated() refused: a full build would be made")
    text = np.load(_data(n) / "text.npy", mmap_mode="r")
    sample = np.random.default_rng(0).permutation(n)[:200]
    _self_check(index, np.asarray(text[np.sort(sample)]))
    out = src.with_name(src.name + "-updated")
    index.save(out)
    update_s, update_cpu = time.perf_counter() - t, time.process_time() - c
    q = query_sets(n)["products"]
    overlap = []
    for v in q[:200]:
        exact = set(index.exact(v, 10)[0].tolist())
        overlap.append(len(exact & set(index.search(v, K)[0][:10].tolist())) / 10)
    result = {"n": n, "store": store, "kind": kind, "added": added, "removed": removed,
              "update_s": round(update_s, 1), "full_build_s": built["total_s"],
              "share_of_full_build": round(update_s / built["total_s"], 3),
              # CPU: comparable across loads (the build's excludes its self-check and save: the share is an upper bound)
              "update_cpu_s": round(update_cpu, 1), "full_build_cpu_s": built["build_cpu_s"],
              "cpu_share_of_full_build": round(update_cpu / built["build_cpu_s"], 3),
              "top10_overlap_with_exact_after_update": round(float(np.mean(overlap)), 4),
              "manifest_update": index.manifest.extra.get("update"), "deleted_slots":
              index.manifest.extra.get("deleted_slots"),
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    _results(f"update-{n}-{store}-{kind}", result)
    return result


def inputs(n: int) -> dict:
    """Peak RSS of what reindex holds before building a graph, at n products: the image and text vectors read
    from a Store (embeddings table filled from the generated vectors) and the fused ones made from them."""
    from mmtui.index.fused import fusion_weight
    from mmtui.index.writer import _fused_from
    from mmtui.store.db import Store

    path = WORK / f"vectors-store-{n}" / "catalog.db"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        store = Store.open(path, create=True)
        for kind in ("image", "text"):
            vectors = np.load(_data(n) / f"{kind}.npy", mmap_mode="r")
            for s in range(0, n, 20_000):
                rows = list(range(s + 1, min(n, s + 20_000) + 1))
                store.put_vectors("bench", kind, rows, ["x"] * len(rows), np.asarray(vectors[s:s + len(rows)]))
        store.close()
    started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    store = Store.open(path)
    t = time.perf_counter()
    from mmtui.encoders.projector import identity

    text_ids, text_vectors = store.vectors("bench", "text")  # as reindex: raw texts until projected
    image_ids, image_vectors = store.vectors("bench", "image")
    projected = {"image": (image_ids, identity().image(image_vectors))}
    del image_vectors
    projected["text"] = (text_ids, identity().text(text_vectors))
    del text_vectors
    read_s = time.perf_counter() - t
    after_read = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fused = _fused_from(projected, fusion_weight(store))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"n": n, "read_s": round(read_s, 1), "peak_before_mb": round(started, 1),
              "peak_after_reading_mb": round(after_read, 1), "peak_after_fused_mb": round(peak, 1),
              "arrays_mb": round((sum(v.nbytes for _, v in projected.values()) + fused[1].nbytes) / 1e6, 1)}
    store.close()
    _results(f"inputs-{n}", result)
    return result


def main() -> None:
    step, n = sys.argv[1], int(sys.argv[2])
    if step == "inputs":
        inputs(n)
        return
    if step == "queries":
        for kind in ("text", "image"):
            truth(n, kind)
        print("ok")
        return
    store, kind = sys.argv[3], sys.argv[4]
    if step == "build":
        build(n, store, kind, int(sys.argv[5]) if len(sys.argv) > 5 else None)
    elif step == "search":
        search(n, store, kind)
    elif step == "second":
        print(json.dumps(search(n, store, kind, second=True)))
    elif step == "update":
        update(n, store, kind)
    else:
        raise SystemExit(f"unknown step {step}")


if __name__ == "__main__":
    log(" ".join(sys.argv[1:]))
    main()
