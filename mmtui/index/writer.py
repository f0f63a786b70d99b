"""The ANN indexes of a data dir, rebuilt from the stored vectors through the active projector: image, text and
fused vector indexes, and the in-memory lexical one. No encoding happens here: build-index calls it after encoding,
and promoting a head or learning the fused weight calls it alone.
"""

from __future__ import annotations

import errno
import sqlite3

import numpy as np

from mmtui.index.ann import EF, VectorIndex, build_digest, choose_store
from mmtui.config import Settings
from mmtui.store.datadir import writes
from mmtui.encoders.base import l2_normalize
from mmtui.index.fused import fuse, fused_vectors, fusion_weight
from mmtui.index.generations import NewGeneration, current_or_none
from mmtui.index.lexical import write_lexical_index
from mmtui.index.probes import load_probes
from mmtui.progress import ProgressCallback, ProgressEvent, counted, null_progress
from mmtui.encoders.projection import search_space
from mmtui.store.db import Store

RECALL_SAMPLE = 200  # queries for the ANN recall self-check
RECALL_TARGET = 0.98  # a graph below this at the shipped ef searches with a larger ef (VectorIndex.tune_ef)
MAX_EF = 1024  # ... up to this


@writes("reindex")
def reindex(settings: Settings, store: Store | None = None, progress: ProgressCallback | None = None
            ) -> dict[str, tuple[float, str]]:
    """Rebuild the image, text and fused indexes from stored vectors through the active projector (no encoding).

    They are written as a new generation (mmtui.index.generations): an index whose inputs are unchanged and whose
    files check out in full is carried over, a damaged one is rebuilt; searches see the new set only once it is
    complete. After a small change an index is updated from the current one instead of built whole
    (VectorIndex.updated; the lexical index likewise). Returns {name: (ANN recall@10 against exact search,
    "hnsw"|"exact")}.
    """
    from mmtui.index.backends.qdrant.sync import sync_if_qdrant  # a data dir on Qdrant syncs its collection instead

    synced = sync_if_qdrant(settings, store, progress)
    if synced is not None:
        return synced
    progress = progress or null_progress
    own = store is None
    store = store or Store.open(settings.db_path)
    gen = None
    try:
        dropped = store.drop_stale_vectors()
        if dropped:
            progress(ProgressEvent("index", 0, None,
                                   f"removed {counted(dropped, 'vector')} no product matches any more"))
        base = store.get_meta("base_fingerprint")
        space, projector = search_space(store, settings)
        results: dict[str, tuple[float, str]] = {}
        text_rowids, text_vectors = store.vectors(base, "text")
        text_sample = _sample(text_vectors)  # the self-checks' queries: not the whole array kept (1 GB at 1M)
        probes = load_probes(store, base)  # query-like texts (mmtui.catalog.probes), as a search projects them
        check = _Check(projector.text(probes.vectors) if probes is not None else None,
                       probes.digest if probes is not None else None)
        gen = NewGeneration(settings.ann_dir, current_or_none(settings.ann_dir))
        projected: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # the fused index is made from these
        for name in ("image", "text"):
            rowids, vectors = (store.vectors(base, "image") if name == "image" else (text_rowids, text_vectors))
            if name == "text":
                del text_vectors
            if len(rowids):
                vectors = projector.image(vectors) if name == "image" else projector.text(vectors)
            projected[name] = (rowids, vectors)
            # self-check with cross-modal queries (product texts against images), as searches are
            results[name] = _write_index(gen, name, space, rowids, vectors, progress,
                                         lambda index, cross=name == "image":
                                         check.sets(_recall_queries(projector, text_sample, index, cross)),
                                         store_setting=settings.vector_store, check=check.digest)
        del rowids, vectors
        results["fused"] = _build_fused_index(gen, store, projector, base, space, text_sample, progress, projected,
                                              settings.vector_store, check)
        _build_lexical_index(gen, store, progress)
        gen.commit()  # searches switch to the new set of files here, all at once
        store.set_meta("index_space", space)
        return results
    finally:
        if gen is not None:
            gen.discard()  # removes it unless committed
        if own:
            store.close()


def _write_index(gen, name: str, space: str, rowids: np.ndarray, vectors: np.ndarray, progress: ProgressCallback,
                 queries, extra: dict | None = None, label: str = "", store_setting: str | None = None,
                 check: str | None = None) -> tuple[float, str]:
    """Index `name` of the new generation: carried over when its inputs are unchanged, else the old graph
    updated after a small change, else built whole; then the recall self-check (`queries(index)`: named query
    sets) and saved. `extra`: kept in the manifest next to the content digest. `store_setting`:
    Settings.vector_store. `check`: the digest of the probes among the queries (None: none). Returns (recall@10,
    "hnsw"|"exact")."""
    store = choose_store(len(rowids), store_setting)
    # the digest once for the three steps (1 GB read at 1M)
    digest = build_digest(rowids, vectors, store) if len(rowids) else None
    saved = _reusable(gen, name, space, rowids, vectors, queries, digest, store, check)
    if saved is not None:  # same vectors, same model, intact files: what a rebuild would make
        progress(ProgressEvent("index", len(rowids), len(rowids), f"{name} index unchanged"))
        return (saved.recall_at_10 if saved.recall_at_10 is not None else 1.0), "hnsw" if saved.graph else "exact"
    progress(ProgressEvent("index", 0, None, f"building the {label or name + ' index'}"))  # said only when it is
    index = _updated(gen, name, space, rowids, vectors, digest, store)  # a small change: the old graph, updated
    if index is None:
        index = VectorIndex.build(name, space, rowids, vectors if len(rowids) else np.zeros((0, 0), np.float32),
                                  digest=digest, store=store)
    index.manifest.extra.update(extra or {})
    recall = _self_check(index, queries(index), check)
    index.save(gen.dir)
    progress(ProgressEvent("index", len(rowids), len(rowids), f"{name} index: {len(rowids)} vectors" + _how(index)))
    return round(recall, 4), "hnsw" if index.graph is not None else "exact"


def _reusable(gen, name: str, space: str, rowids: np.ndarray, vectors: np.ndarray, queries=None,
              digest: str | None = None, store: str = "hnswlib", check: str | None = None):
    """The manifest of the current generation's index `name` when it was built from exactly these inputs and
    its files check out in full (then it is linked into `gen`), else None (rebuild it).

    `queries(index)`: the self-check's query sets, `check` the digest of the probes among them. A graph saved with
    a recall under RECALL_TARGET and an ef that can still rise (built before the build tuned ef), or checked
    without these probes, is checked again: from the build's ef (what a build of the same graph would choose)
    when the probes are new to it, from its own when only its recall was short. Its files are carried over and
    only a new manifest is written."""
    old = gen.base
    if old is None or old.files is None or not len(rowids):
        return None
    saved = VectorIndex.saved_if_same(old.dir, name, space, rowids, vectors, digest=digest, store=store)
    if saved is None:
        return None
    files = VectorIndex.files(name, saved.graph, saved.store)
    if not all(old.has(f) for f in files) or old.check(full=True, names={name}):
        return None  # missing, truncated or corrupted: rebuilt
    short = (saved.recall_at_10 if saved.recall_at_10 is not None else 1.0) < RECALL_TARGET and saved.ef < MAX_EF
    new_probes = check is not None and saved.extra.get("check", {}).get("probes") != check
    if queries is not None and saved.graph and (short or new_probes):
        index = VectorIndex.load(old.dir, name, space)
        if new_probes:
            index.manifest.ef = min(index.manifest.ef, EF)
        _self_check(index, queries(index), check)
        gen.reuse(files[:-1])  # the manifest last: written anew, never through a link to the old one
        index.save_manifest(gen.dir)
        return index.manifest
    gen.reuse(files)
    return saved


def _updated(gen, name: str, space: str, rowids: np.ndarray, vectors: np.ndarray,
             digest: str | None = None, store: str = "hnswlib") -> VectorIndex | None:
    """The current generation's index `name` updated to these inputs (VectorIndex.updated: the graph loaded,
    removed labels marked deleted, new and changed vectors added) when its files check out in full and the
    change is small; None: build it whole."""
    old = gen.base
    if old is None or old.files is None or not len(rowids):
        return None
    if not all(old.has(f) for f in VectorIndex.files(name, True, store)) or old.check(full=True, names={name}):
        return None
    return VectorIndex.updated(old.dir, name, space, rowids, vectors, digest=digest, store=store)


def _how(index: VectorIndex) -> str:
    change = index.manifest.extra.get("update")
    return "" if change is None else (f" (updated: +{change['added']} ~{change['changed']} -{change['removed']}, "
                                      f"{index.manifest.extra['deleted_slots']} deleted slots)")


def _build_lexical_index(gen, store: Store, progress: ProgressCallback) -> None:
    """lexical.npz (mmtui.index.lexical): FTS5's BM25 in memory; carried over while products_fts is unchanged."""
    try:
        outcome = write_lexical_index(gen, store.db.conn, announce=lambda: progress(
            ProgressEvent("index", 0, None, "building the lexical index")))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        outcome = f"skipped ({exc})"
    except (sqlite3.Error, ValueError) as exc:  # lexical search still works, through FTS5
        outcome = f"skipped ({exc})"
    progress(ProgressEvent("index", 1, 1, f"lexical index {outcome}"))


def _self_check(index: VectorIndex, queries, check: str | None = None) -> float:
    """The index's recall@10 against exact search over `queries` (an array, or named sets: each must reach the
    target), kept in its manifest with what it was checked on (extra "check": the probes' digest, each set's
    recall). A graph under RECALL_TARGET at its ef (large catalogs: 0.93 for the image graph at 1M products with
    ef=128; short shopper texts need more than product texts) searches with the ef where every set reaches it
    instead (M and ef_construction unchanged, so nothing is rebuilt). Returns the lowest set's recall."""
    sets = queries if isinstance(queries, dict) else {"products": queries}
    if not len(index):
        return 1.0
    recalls = index.tune_ef_sets(sets, target=RECALL_TARGET, max_ef=MAX_EF)
    recall = min(recalls.values(), default=1.0)
    index.manifest.recall_at_10 = round(recall, 4)
    index.manifest.extra["check"] = {"probes": check, "recall": {k: round(v, 4) for k, v in recalls.items()}}
    return recall


class _Check:
    """The probes' part of the self-check: their projected vectors (None: an older store without probes)."""

    def __init__(self, probes: np.ndarray | None, digest: str | None) -> None:
        self.probes, self.digest = probes, digest

    def sets(self, products: np.ndarray) -> dict[str, np.ndarray]:
        """The self-check's query sets: today's product texts and, when there are probes, the probes."""
        return {"products": products} if self.probes is None else {"products": products, "probes": self.probes}


def _sample(vectors: np.ndarray) -> np.ndarray:
    """RECALL_SAMPLE rows of `vectors` (a copy), the rows _recall_queries takes."""
    return np.asarray(vectors[np.random.default_rng(0).permutation(len(vectors))[:RECALL_SAMPLE]])


def _recall_queries(projector, text_sample: np.ndarray, index: VectorIndex, cross_modal: bool) -> np.ndarray:
    """RECALL_SAMPLE queries for the self-check: product texts through the projector (cross-modal), or the
    index's own vectors. Only the sample is projected (at 1M products projecting all took seconds)."""
    if cross_modal and len(text_sample):  # _sample(text vectors), made before they were let go
        return projector.text(text_sample)
    source = index.vectors
    sample = np.random.default_rng(0).permutation(len(source))[:RECALL_SAMPLE]
    picked = np.asarray(source[sample])
    return picked


def _fused_from(projected: dict, w: float) -> tuple[np.ndarray, np.ndarray]:
    """fusion.fused_vectors from the image and text vectors reindex already read and projected (the same
    vectors, without reading and projecting them again)."""
    ids, text = projected["text"]
    if not len(ids):
        return ids, text
    out = np.empty_like(text)
    for s in range(0, len(text), 65536):  # products without an image: their text vector (fuse's rule)
        out[s:s + 65536] = l2_normalize(text[s:s + 65536])
    img_ids, img = projected["image"]
    if len(img_ids):  # block by block: no image array aligned with the texts (1 GB at 1M)
        _, t_pos, i_pos = np.intersect1d(ids, img_ids, return_indices=True)
        for s in range(0, len(t_pos), 65536):
            rows = t_pos[s:s + 65536]
            out[rows] = fuse(text[rows], img[i_pos[s:s + 65536]], w)
    return ids, out


def _build_fused_index(gen, store: Store, projector, base: str, space: str, text_sample: np.ndarray,
                       progress: ProgressCallback, projected: dict | None = None,
                       store_setting: str | None = None, check: _Check | None = None) -> tuple[float, str]:
    """The fused index (mmtui.index.fused): normalise(w * image + (1 - w) * text) per product, w from meta "fusion"."""
    w = fusion_weight(store)
    if projected is not None and {"image", "text"} <= set(projected):
        rowids, vectors = _fused_from(projected, w)
    else:
        rowids, vectors = fused_vectors(store, projector, base, w)
    # (same vectors means the same weight: an unchanged fused index is carried over like the others)
    check = check or _Check(None, None)
    return _write_index(gen, "fused", space, rowids, vectors, progress,
                        lambda index: check.sets(_recall_queries(projector, text_sample, index, True)),
                        {"image_weight": w}, label=f"fused index (image weight {w:.2f})",
                        store_setting=store_setting, check=check.digest)
