"""Lexical search: SQLite FTS5 bm25() against the in-memory BM25 index (mmtui.index.lexical), at 10k and 100k products.

The stores hold the synthetic products of bench_query (styles-text-only.csv titles and attributes, cycled)
and nothing else (no vectors): FTS5 is all lexical search needs. Cached under .work/lexical-<n>.
Reported: index build seconds and size, p50/p99 ms of Store.lexical (k=20) unfiltered and with a
filter (gender=Men), and agreement: queries whose top-20 rowid sets are equal, and those whose
(rowid, score) lists are identical.

    MMTUI_THREADS=1 .venv/bin/python -m benchmarks.bench_lexical [--sizes 10000,100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from .bench_util import WORK, log, percentiles, queries

STORE_VERSION = 1


def lexical_store(n: int) -> Path:
    """A data dir with n synthetic products (FTS5 filled by the store's triggers); built once."""
    from mmtui.build.pipeline import _record
    from mmtui.catalog.text import combined_text
    from mmtui.store.db import Store

    from .bench_query import synthetic_products

    root = WORK / f"lexical-{n}-v{STORE_VERSION}"
    if (root / "done").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    log(f"lexical: building a store of {n} products")
    store = Store.open(root / "catalog.db", create=True)
    records = []
    for p in synthetic_products(n):
        p.text = combined_text(p)
        records.append(_record(p, "synthetic"))
    with store.db.conn:
        store.upsert_products(records)
    store.close()
    (root / "done").write_text("ok")
    return root


def measure(n: int, n_queries: int) -> dict:
    from mmtui.store.filters import parse_where, where_sql
    from mmtui.index.backends.local import lexical_hits
    from mmtui.index.lexical import FastLexical, LexicalIndex, ensure_lexical_index
    from mmtui.store.db import Store

    root = lexical_store(n)
    store = Store.open(root / "catalog.db")
    ann = root / "ann"
    (ann / "lexical.npz").unlink(missing_ok=True)
    t = time.perf_counter()
    ensure_lexical_index(ann, store.db.conn)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    fast = FastLexical(ann)
    index: LexicalIndex = fast.current(store.db.conn)
    load_ms = (time.perf_counter() - t) * 1000
    assert index is not None, "the index just built does not match its store"
    qs = queries(n_queries)
    out: dict = {"products": n, "build_s": round(build_s, 2), "load_ms": round(load_ms, 1),
                 "file_mb": round((ann / "lexical.npz").stat().st_size / 1e6, 1), "terms": len(index.terms),
                 "postings": int(len(index.docs))}
    for label, spec in (("unfiltered", []), ("gender=Men", ["gender=Men"])):
        where, params = where_sql([parse_where(s) for s in spec]) if spec else ("1", [])
        allowed = store.filtered_rowids(where, params) if spec else None
        for q in qs[:5]:  # warm both paths (page cache, tokeniser)
            lexical_hits(store, fast, q, 20, where, params, allowed)
        slow_ms, fast_ms, same_set, identical, max_diff = [], [], 0, 0, 0.0
        for q in qs:
            t = time.perf_counter()
            ref = store.lexical(q, 20, where, params)
            slow_ms.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            got = lexical_hits(store, fast, q, 20, where, params, allowed)
            fast_ms.append((time.perf_counter() - t) * 1000)
            same_set += {r for r, _ in ref} == {r for r, _ in got}
            identical += ref == got
            if ref and got and len(ref) == len(got):
                max_diff = max(max_diff, max(abs(a - b) for (_, a), (_, b) in zip(ref, got)))
        out[label] = {"fts5_ms": percentiles(slow_ms), "fast_ms": percentiles(fast_ms),
                      "top20_same_set": f"{same_set}/{len(qs)}", "identical": f"{identical}/{len(qs)}",
                      "max_score_diff": max_diff}
        log(f"lexical {n}: {label}: FTS5 p50 {out[label]['fts5_ms']['p50']} ms, fast p50 "
            f"{out[label]['fast_ms']['p50']} ms, same top-20 sets {same_set}/{len(qs)}")
    store.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    results = [measure(int(n), args.queries) for n in args.sizes.split(",")]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
