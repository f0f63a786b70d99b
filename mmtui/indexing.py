"""The ANN indexes of a data dir, rebuilt from the stored vectors through the active projector: image, text and
fused vector indexes, and the in-memory lexical one. No encoding happens here: build-index calls it after encoding,
and promoting a head or learning the fused weight calls it alone.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from .ann import VectorIndex
from .config import Settings
from .fusion import fused_vectors, fusion_weight
from .lexical import ensure_lexical_index
from .progress import ProgressCallback, ProgressEvent, null_progress
from .projection import search_space
from .store import Store

RECALL_SAMPLE = 200  # queries for the ANN recall self-check


def reindex(settings: Settings, store: Store | None = None, progress: ProgressCallback | None = None
            ) -> dict[str, tuple[float, str]]:
    """Rebuild the image, text and fused indexes from stored vectors through the active projector (no encoding).

    Returns {name: (ANN recall@10 against exact search, "hnsw"|"exact")}.
    """
    progress = progress or null_progress
    own = store is None
    store = store or Store.open(settings.db_path)
    try:
        base = store.get_meta("base_fingerprint")
        space, projector = search_space(store, settings)
        results: dict[str, tuple[float, str]] = {}
        text_rowids, text_vectors = store.vectors(base, "text")
        for name in ("image", "text"):
            progress(ProgressEvent("index", 0, None, f"building the {name} index"))
            rowids, vectors = (store.vectors(base, "image") if name == "image" else (text_rowids, text_vectors))
            if len(rowids):
                vectors = projector.image(vectors) if name == "image" else projector.text(vectors)
            saved = VectorIndex.saved_if_same(settings.ann_dir, name, space, rowids, vectors) if len(rowids) else None
            if saved is not None:  # same vectors, same model: the index on disk is what a rebuild would make
                results[name] = (saved.recall_at_10 if saved.recall_at_10 is not None else 1.0,
                                 "hnsw" if saved.graph else "exact")
                progress(ProgressEvent("index", len(rowids), len(rowids), f"{name} index unchanged"))
                continue
            index = VectorIndex.build(name, space, rowids, vectors if len(rowids) else np.zeros((0, 0), np.float32))
            # self-check with cross-modal queries (product texts against images), as searches are
            queries = projector.text(text_vectors) if name == "image" and len(text_vectors) else index.vectors
            sample = np.random.default_rng(0).permutation(len(queries))[:RECALL_SAMPLE]
            recall = index.recall_check(np.asarray(queries)[sample]) if len(index) else 1.0
            index.manifest.recall_at_10 = round(recall, 4)
            index.save(settings.ann_dir)
            results[name] = (round(recall, 4), "hnsw" if index.graph is not None else "exact")
            progress(ProgressEvent("index", len(rowids), len(rowids), f"{name} index: {len(rowids)} vectors"))
        results["fused"] = _build_fused_index(settings, store, projector, base, space, text_vectors, progress)
        _build_lexical_index(settings, store, progress)
        store.set_meta("index_space", space)
        return results
    finally:
        if own:
            store.close()


def _build_lexical_index(settings: Settings, store: Store, progress: ProgressCallback) -> None:
    """ann/lexical.npz (mmtui.lexical): FTS5's BM25 in memory; rewritten only when products_fts changed."""
    progress(ProgressEvent("index", 0, None, "building the lexical index"))
    try:
        outcome = ensure_lexical_index(settings.ann_dir, store.db.conn)
    except (sqlite3.Error, OSError, ValueError) as exc:  # lexical search still works, through FTS5
        outcome = f"skipped ({exc})"
    progress(ProgressEvent("index", 1, 1, f"lexical index {outcome}"))


def _build_fused_index(settings: Settings, store: Store, projector, base: str, space: str, text_vectors: np.ndarray,
                       progress: ProgressCallback) -> tuple[float, str]:
    """The fused index (mmtui.fusion): normalise(w * image + (1 - w) * text) per product, w from meta "fusion"."""
    w = fusion_weight(store)
    progress(ProgressEvent("index", 0, None, f"building the fused index (image weight {w:.2f})"))
    rowids, vectors = fused_vectors(store, projector, base, w)
    saved = VectorIndex.saved_if_same(settings.ann_dir, "fused", space, rowids, vectors) if len(rowids) else None
    if saved is not None:  # same vectors (and so the same weight), same model: nothing to rebuild
        progress(ProgressEvent("index", len(rowids), len(rowids), "fused index unchanged"))
        return (saved.recall_at_10 if saved.recall_at_10 is not None else 1.0), "hnsw" if saved.graph else "exact"
    index = VectorIndex.build("fused", space, rowids, vectors if len(rowids) else np.zeros((0, 0), np.float32))
    index.manifest.extra["image_weight"] = w  # keep the content digest build() put there
    queries = projector.text(text_vectors) if len(text_vectors) else index.vectors
    sample = np.random.default_rng(0).permutation(len(queries))[:RECALL_SAMPLE]
    recall = index.recall_check(np.asarray(queries)[sample]) if len(index) else 1.0
    index.manifest.recall_at_10 = round(recall, 4)
    index.save(settings.ann_dir)
    progress(ProgressEvent("index", len(rowids), len(rowids), f"fused index: {len(rowids)} vectors"))
    return round(recall, 4), "hnsw" if index.graph is not None else "exact"
