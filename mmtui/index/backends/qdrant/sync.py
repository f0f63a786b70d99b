"""Bring a data dir's Qdrant collection in line with its store (what `reindex` does for the local files).

Nothing is encoded: the vectors are the stored ones through the active projector, exactly what the local
indexes would hold. Each point carries a digest of everything uploaded for it (vectors, lexical terms, payload),
so a sync upserts only products that are new or changed, and deletes the points of products no longer in
the store. Upserts go by point id (uuid5 of the product id): a sync killed half-way and run again ends with
exactly one point per product.

The lexical vectors are FTS5's BM25 term factors (mmtui.index.lexical), which depend on the catalog's mean document
length; a product's digest holds that length rounded to 1% steps (not its exact value), so adding products
does not re-upload every point, and a shift of the mean by more than a step does.
"""

from __future__ import annotations

import hashlib
import json
import math
import time

import numpy as np

from mmtui.index.backends.spec import BackendSpec, stored_backend
from mmtui.index.fused import fused_vectors, fusion_weight
from mmtui.index.lexical import LexicalIndex, fts_fingerprint
from mmtui.progress import ProgressCallback, ProgressEvent, null_progress
from mmtui.encoders.projection import search_space
from mmtui.index.backends.qdrant.client import (
    DENSE, NUMBER_FACETS, SPARSE, TEXT_FACETS, calling, fast_local_writes, open_client, payload_of, point_id,
    term_index,
)
from mmtui.store.db import Store

BATCH = 256  # points per upsert request
SCROLL = 2048
SYNC_META = "qdrant_sync"  # what the last sync did and for which search space


def sync_if_qdrant(settings, store: Store | None, progress: ProgressCallback | None
                   ) -> dict[str, tuple[float | None, str]] | None:
    """reindex's dispatch: sync to Qdrant when the data dir records a Qdrant backend, else None (build the
    local files). Returns reindex's {name: (recall@10 against exact search, kind)}."""
    own = store is None
    store = store or Store.open(settings.db_path)
    try:
        backend = stored_backend(store)
        if not backend.is_qdrant:
            return None
        sync(settings, store, backend, progress)
        recall = 1.0 if backend.path else None  # embedded Qdrant searches exactly; a server's HNSW is its own
        return {name: (recall, "qdrant") for name in DENSE}
    finally:
        if own:
            store.close()


def sync(settings, store: Store, backend: BackendSpec, progress: ProgressCallback | None = None) -> dict:
    """Upsert new and changed products, delete removed ones; returns the counts (also kept in meta)."""
    progress = progress or null_progress
    started = time.perf_counter()
    dropped = store.drop_stale_vectors()
    if dropped:
        progress(ProgressEvent("index", 0, None, f"removed {dropped} vectors no product matches any more"))
    base = store.get_meta("base_fingerprint")
    space, projector = search_space(store, settings)
    progress(ProgressEvent("index", 0, None, f"Qdrant: reading the vectors for {backend.collection}"))
    dense = _dense_vectors(store, projector, base)
    lexical, avgdl_step = _lexical_vectors(store)
    rows = {r["rowid"]: r for r in store.db.query(
        "SELECT rowid, id, price, title_sha, text_sha, tags, " + ", ".join(TEXT_FACETS[1:]) + " FROM products")}
    dims = {name: int(v.shape[1]) for name, (_, v) in dense.items() if len(v)}
    dim = next(iter(dims.values()), 0)
    client = open_client(backend)
    _ensure_collection(client, backend, {name: dims.get(name, dim) for name in DENSE}, progress)
    if backend.path:
        fast_local_writes(client, backend.collection)

    # what the collection holds now: point id -> digest
    held: dict[str, str | None] = {}
    offset = None
    while True:
        points, offset = calling(backend, client.scroll, backend.collection, limit=SCROLL, offset=offset,
                                 with_payload=["digest"], with_vectors=False)
        held.update({str(p.id): (p.payload or {}).get("digest") for p in points})
        if offset is None:
            break

    positions = {name: {int(r): i for i, r in enumerate(ids)} for name, (ids, _) in dense.items()}
    wanted: dict[str, int] = {}
    todo: list[tuple[int, str, str]] = []  # (rowid, point id, digest)
    for rowid, row in rows.items():
        pid = point_id(row["id"])
        wanted[pid] = rowid
        digest = _digest(row, dense, positions, lexical.get(rowid), avgdl_step)
        if held.get(pid) != digest:
            todo.append((rowid, pid, digest))
    gone = [pid for pid in held if pid not in wanted]

    from qdrant_client import models

    total = len(todo)
    progress(ProgressEvent("index", 0, total, f"Qdrant: {total} points to upload, {len(rows) - total} unchanged"))
    for start in range(0, total, BATCH):
        batch = []
        for rowid, pid, digest in todo[start:start + BATCH]:
            vector: dict = {}
            for name in DENSE:
                pos = positions[name].get(rowid)
                if pos is not None:
                    vector[name] = dense[name][1][pos].tolist()
            terms = lexical.get(rowid)
            if terms is not None:
                vector[SPARSE] = models.SparseVector(indices=terms[0].tolist(), values=terms[1].tolist())
            batch.append(models.PointStruct(id=pid, vector=vector,
                                            payload={**payload_of(rows[rowid]), "digest": digest}))
        calling(backend, client.upsert, backend.collection, points=batch, wait=True)
        done = min(start + BATCH, total)
        progress(ProgressEvent("index", done, total, f"Qdrant: {done}/{total} points uploaded"))
    for start in range(0, len(gone), BATCH):
        calling(backend, client.delete, backend.collection,
                points_selector=models.PointIdsList(points=gone[start:start + BATCH]), wait=True)
    if gone:
        progress(ProgressEvent("index", len(gone), len(gone), f"Qdrant: {len(gone)} removed products deleted"))
    points = calling(backend, client.count, backend.collection, exact=True).count
    outcome = {"collection": backend.collection, "where": backend.where, "space": space, "uploaded": total,
               "deleted": len(gone), "unchanged": len(rows) - total, "points": points,
               "seconds": round(time.perf_counter() - started, 2), "fts": fts_fingerprint(store.db.conn)}
    store.set_meta(SYNC_META, json.dumps(outcome))
    store.set_meta("index_space", space)
    progress(ProgressEvent("index", points, points, f"Qdrant collection {backend.collection}: {points} points "
                                                    f"({total} uploaded, {len(gone)} deleted)"))
    return outcome


def _dense_vectors(store: Store, projector, base: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (rowids, unit vectors): what reindex would index (image and text through the projector, fused
    with the stored weight)."""
    out = {}
    for name in ("image", "text"):
        ids, vectors = store.vectors(base, name)
        if len(ids):
            vectors = projector.image(vectors) if name == "image" else projector.text(vectors)
        out[name] = (ids, np.ascontiguousarray(vectors, dtype=np.float32))
    ids, vectors = fused_vectors(store, projector, base, fusion_weight(store))
    out["fused"] = (ids, np.ascontiguousarray(vectors, dtype=np.float32))
    return out


def _lexical_vectors(store: Store) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], int]:
    """rowid -> (term indices, BM25 term factors) from products_fts, and the 1% step of its mean length."""
    try:
        index = LexicalIndex.build(store.db.conn)
    except ValueError:  # no FTS table
        return {}, 0
    counts = np.diff(index.offsets)
    term_ids = np.fromiter((term_index(t) for t in index.term_list), dtype=np.uint32, count=len(index.term_list))
    p_term = np.repeat(term_ids, counts)
    order = np.argsort(index.docs, kind="stable")
    docs, p_term, factors = index.docs[order], p_term[order], index.factors[order]
    bounds = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1], True]) if len(docs) else np.zeros(1, np.int64)
    out = {}
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx, val = p_term[a:b], factors[a:b]
        if len(np.unique(idx)) != len(idx):  # two tokens with one CRC-32: their factors add up
            idx, inverse = np.unique(idx, return_inverse=True)
            val = np.bincount(inverse, val)
        out[int(index.rowids[docs[a]])] = (idx, val.astype(np.float32))
    avgdl = float(index.meta.get("avgdl") or 1.0)
    return out, int(round(math.log(max(avgdl, 1e-9)) / math.log(1.01)))


def _digest(row: dict, dense: dict, positions: dict, terms, avgdl_step: int) -> str:
    h = hashlib.sha1(json.dumps(payload_of(row), sort_keys=True).encode())
    for name in DENSE:
        pos = positions[name].get(int(row["rowid"]))
        h.update(name.encode())
        if pos is not None:
            h.update(dense[name][1][pos].tobytes())
    if terms is not None:
        # the words (the texts FTS5 indexes) and the mean length's step, not the factors themselves
        h.update(json.dumps([row.get("title_sha"), row.get("text_sha"), row.get("tags"), avgdl_step]).encode())
        h.update(np.asarray(terms[0], np.uint32).tobytes())
    return h.hexdigest()


def _ensure_collection(client, backend: BackendSpec, dims: dict[str, int], progress: ProgressCallback) -> None:
    """Create the collection (named dense vectors, the sparse one, payload indexes) or recreate it when its
    vectors do not fit (another model: every point changes anyway)."""
    from qdrant_client import models

    name = backend.collection
    if calling(backend, client.collection_exists, name):
        info = calling(backend, client.get_collection, name)
        have = info.config.params.vectors if isinstance(info.config.params.vectors, dict) else {}
        sparse = info.config.params.sparse_vectors or {}
        if {k: v.size for k, v in have.items()} == dims and SPARSE in sparse:
            return
        progress(ProgressEvent("index", 0, None, f"Qdrant: {name} holds vectors of another shape: recreating it"))
        calling(backend, client.delete_collection, name)
    calling(backend, client.create_collection, name,
            vectors_config={n: models.VectorParams(size=max(1, d), distance=models.Distance.COSINE)
                            for n, d in dims.items()},
            sparse_vectors_config={SPARSE: models.SparseVectorParams()})
    if backend.path:
        return  # embedded Qdrant filters by reading the payload: it has no payload indexes
    for field in TEXT_FACETS:
        calling(backend, client.create_payload_index, name, field, models.PayloadSchemaType.KEYWORD)
    for field in NUMBER_FACETS:
        calling(backend, client.create_payload_index, name, field, models.PayloadSchemaType.FLOAT)
    calling(backend, client.create_payload_index, name, "rowid", models.PayloadSchemaType.INTEGER)
