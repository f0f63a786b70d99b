"""benchmarks.bench_query fills a store from benchmarks.gen_products' output a chunk at a time: every product, its
title and price, and its own two vectors under their content hashes (so reindex keeps them)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from benchmarks import bench_query
from mmtui.store.db import Store


def _generated(folder, n: int, dim: int = 8):
    rng = np.random.default_rng(0)
    for kind in ("text", "image"):
        v = rng.standard_normal((n, dim)).astype(np.float32)
        np.save(folder / f"{kind}.npy", v / np.linalg.norm(v, axis=1, keepdims=True))
    (folder / "titles.txt").write_text("".join(f"Line{i} Word Navy shirt {i}\n" for i in range(n)), encoding="utf-8")
    (folder / "meta.json").write_text(json.dumps({"n": n, "fingerprint": "fp-test"}))


def test_generated_products_are_stored_with_their_own_vectors(tmp_path, monkeypatch):
    _generated(tmp_path, 23)
    monkeypatch.setattr(bench_query, "GENERATED_CHUNK", 5)  # several chunks, the last one short
    sources = bench_query.generated_sources(tmp_path)
    assert sources["fingerprint"] == "fp-test" and sources["tag"] == f"gen-{tmp_path.name}"
    store = Store.open(tmp_path / "catalog.db", create=True)
    encoder = SimpleNamespace(fingerprint="fp-test", name="lite", dim=8)
    bench_query._fill_generated(store, 21, encoder, sources)  # the first 21 of 23
    rows = store.db.execute("SELECT rowid, id, title, price FROM products ORDER BY rowid").fetchall()
    assert [r[1] for r in rows] == [f"gen{i}" for i in range(21)]
    assert rows[7][2] == "Line7 Word Navy shirt 7" and rows[7][3] == bench_query.synthetic_price(7)
    for kind in ("text", "image"):
        rowids, vectors = store.vectors("fp-test", kind)
        assert rowids.tolist() == [r[0] for r in rows]
        assert np.array_equal(vectors, np.load(tmp_path / f"{kind}.npy")[:21])
    assert store.stale_vector_count() == 0  # each vector under its product's content hash
    assert store.lexical("navy shirt", 5)
    store.close()


def test_an_update_adds_picked_products_after_the_stores_own(tmp_path, monkeypatch):
    """The +10k/-1k benchmark adds products of another generated set (some skipped) to a store that already
    holds some, after a removal: new ids and rowids after the store's, each with its own vectors."""
    base, extra = tmp_path / "base", tmp_path / "extra"
    base.mkdir(), extra.mkdir()
    _generated(base, 10)
    _generated(extra, 12)
    monkeypatch.setattr(bench_query, "GENERATED_CHUNK", 3)
    store = Store.open(tmp_path / "catalog.db", create=True)
    encoder = SimpleNamespace(fingerprint="fp-test", name="lite", dim=8)
    bench_query._fill_generated(store, 10, encoder, bench_query.generated_sources(base))
    with store.db.conn:
        store.delete_products(["gen9", "gen3"])  # the last rowid gone too: new rowids still follow the store's
    pick = np.array([1, 2, 5, 6, 7, 11])
    last = store.db.execute("SELECT max(rowid) FROM products").fetchone()[0]
    bench_query._fill_generated(store, 5, encoder, bench_query.generated_sources(extra), first=10, pick=pick)
    rows = store.db.execute("SELECT rowid, id, title FROM products WHERE rowid > ? ORDER BY rowid", [last]).fetchall()
    assert [r[1] for r in rows] == [f"gen{i}" for i in range(10, 15)]
    assert [r[2] for r in rows] == [f"Line{i} Word Navy shirt {i}" for i in pick[:5]]
    for kind in ("text", "image"):
        rowids, vectors = store.vectors("fp-test", kind, [r[0] for r in rows])
        assert rowids.tolist() == [r[0] for r in rows]
        assert np.array_equal(vectors, np.load(extra / f"{kind}.npy")[pick[:5]])
    assert store.stale_vector_count() == 0 and store.product_count() == 13
    store.close()
