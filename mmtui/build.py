"""build-index: catalog -> validated products in the store -> cached vectors -> ANN indexes.

Each step is resumable. Products are written before anything is encoded; vectors are committed batch by
batch, keyed by the content hash they were made from; the indexes are rebuilt from the stored vectors
at the end. So a re-run encodes only what is new, changed or was not finished when a build was killed.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .ann import VectorIndex
from .catalog import combined_text, load_image, read_catalog, resolve_images
from .catalog.records import Product, Reject
from .config import Settings
from .datadir import writes
from .encoders.base import Encoder, l2_normalize
from .encoders.for_index import model_spec, open_encoder
from .errors import MmtuiError
from .projection import search_space
from .progress import ProgressCallback, ProgressEvent, check_cancel, null_progress
from .splits import split_of
from .store import Store, sha1_text

RECALL_SAMPLE = 200  # queries for the ANN recall self-check


@dataclass
class BuildReport:
    catalog: str
    model: str
    products: int = 0
    with_image: int = 0
    added: int = 0
    updated: int = 0
    removed: int = 0
    encoded_images: int = 0
    encoded_texts: int = 0
    image_seconds: float = 0.0
    text_seconds: float = 0.0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    rejected_rows: int = 0  # rows not in the index at all (missing id/title, duplicates, unparsable)
    ann_recall_at_10: dict[str, float] = field(default_factory=dict)
    index_kind: dict[str, str] = field(default_factory=dict)  # "hnsw" | "exact"
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.encoded_images / self.image_seconds if self.image_seconds else 0.0

    @property
    def texts_per_s(self) -> float:
        return self.encoded_texts / self.text_seconds if self.text_seconds else 0.0

    def to_json(self) -> dict:
        out = asdict(self)
        out["images_per_s"] = round(self.images_per_s, 1)
        out["texts_per_s"] = round(self.texts_per_s, 1)
        return out


@writes("build-index")
def build_index(settings: Settings, catalog: Path | str, *, columns: dict | None = None,
                encoder: Encoder | None = None, progress: ProgressCallback | None = None,
                cancel: threading.Event | None = None, batch_size: int = 32,
                keep_missing: bool = False) -> BuildReport:
    """Index `catalog` into settings.data_dir: products and rejects, vectors for what changed, the indexes.

    Products no longer in the catalog leave the index, unless `keep_missing` (a re-encode with another model
    keeps every product it already holds, whatever the catalog path now reads)."""
    progress = progress or null_progress
    started = time.perf_counter()
    data = read_catalog(catalog, columns)
    if not data.products:
        raise _no_products(catalog, data.rejects)
    store = Store.open(settings.db_path, create=True)
    existing = store.existing_products()  # id -> the stored row, read once
    known = {r["image_path"]: (r["image_size"], r["image_mtime_ns"], r["image_sha"], r["image_status"])
             for r in existing.values() if r["image_path"]}
    image_rejects = resolve_images(data.products, data.base_dir, settings.image_cache_dir, known=known,
                                   progress=progress, cancel=cancel)
    if encoder is None:
        progress(ProgressEvent("model", 0, None, f"model {model_spec(settings, store)} (loaded only if something needs encoding)"))
        encoder = open_encoder(settings, store, lazy=True)
    # the path as given (a folder may hold several files: data.source is only the first) made absolute, and the
    # column mapping: what a re-encode after `mmtui use` of a fine-tuned model reads again
    source = str(Path(catalog).expanduser().resolve())
    report = BuildReport(catalog=source, model=encoder.name)

    # 1. products and rejects
    records = [_record(p, data.source.name) for p in data.products]
    seen = {r["id"] for r in records}
    report.added = sum(1 for r in records if r["id"] not in existing)
    report.updated = sum(1 for r in records if r["id"] in existing and _changed(existing[r["id"]], r))
    removed = [] if keep_missing else [pid for pid in existing if pid not in seen]
    dirty = [r for r in records if r["id"] not in existing or any(existing[r["id"]].get(k) != v for k, v in r.items())]
    with store.db.conn:
        store.upsert_products(dirty)  # unchanged rows are not rewritten (each write also re-indexes FTS)
        report.removed = store.delete_products(removed) if removed else 0
    all_rejects = [*data.rejects, *image_rejects]
    build_id = store.db["builds"].insert({"catalog": source, "model": encoder.name,
                                          "started": time.strftime("%Y-%m-%dT%H:%M:%S")}).last_pk
    store.replace_rejects(build_id, [_reject_record(r) for r in all_rejects])
    store.set_meta("base_model", encoder.name)
    store.set_meta("base_fingerprint", encoder.fingerprint)
    store.set_meta("base_dim", str(encoder.dim))
    if settings.checkpoint:
        store.set_meta("base_checkpoint", str(settings.checkpoint))
    store.set_meta("catalog", source)
    store.set_meta("catalog_columns", json.dumps(columns or {}, sort_keys=True))

    # 2. vectors: encode only what has no vector for this model and content
    report.encoded_images, report.image_seconds = _encode_missing(
        store, encoder, "image", progress, cancel, batch_size)
    report.encoded_texts, report.text_seconds = 0, 0.0
    for kind in ("title", "text"):
        n, seconds = _encode_missing(store, encoder, kind, progress, cancel, batch_size * 2)
        report.encoded_texts += n
        report.text_seconds += seconds

    # 3. indexes from stored vectors
    check_cancel(cancel)
    recall = reindex(settings, store=store, progress=progress)
    report.ann_recall_at_10 = {k: v[0] for k, v in recall.items()}
    report.index_kind = {k: v[1] for k, v in recall.items()}
    report.products = store.product_count()
    report.with_image = store.db.execute("SELECT count(*) FROM products WHERE image_status = 'ok'").fetchone()[0]
    report.rejects_by_reason = store.rejects_by_reason()
    report.rejected_rows = sum(1 for r in all_rejects if not r.kept)
    report.seconds = round(time.perf_counter() - started, 2)
    store.db["builds"].update(build_id, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                         "report": json.dumps(report.to_json())})
    store.set_meta("last_build", json.dumps(report.to_json()))
    store.close()
    return report


# -- products --------------------------------------------------------------------------------
def _no_products(catalog: Path | str, rejects: list[Reject]) -> MmtuiError:
    """The error for a catalog that yields no product at all: the data directory is left as it was (an index
    whose products would all be removed, or an index of nothing, is never what was meant)."""
    from collections import Counter

    from .errors import CatalogError

    if not rejects:
        return CatalogError(f"{catalog} holds no products (it is empty, or has a header and no rows)",
                            "give a catalog with at least one row (id, title, ...); the data directory was not changed")
    reasons = ", ".join(f"{n} {reason}" for reason, n in Counter(r.reason for r in rejects).most_common())
    first = rejects[0]
    rows = f"all {len(rejects)} rows were" if len(rejects) > 1 else "its one row was"
    return CatalogError(f"{catalog} yields no usable products: {rows} rejected ({reasons}); "
                        f"e.g. row {first.row}: {first.detail}",
                        "fix the rows (each needs an id and a title; --columns maps other column names); the data "
                        "directory was not changed")


def _record(p: Product, source: str) -> dict:
    text = p.text or combined_text(p)
    attrs = dict(p.attributes)
    return {
        "id": p.id, "title": p.title, "description": p.description, "category": p.category,
        "brand": p.brand, "colour": p.colour, "gender": p.gender, "price": p.price,
        "season": attrs.get("season", ""), "usage": attrs.get("usage", ""),
        "article_type": attrs.get("article_type", attrs.get("articleType", "")),
        "image_ref": p.image, "image_path": p.image_path, "image_status": p.image_status,
        "image_sha": p.image_sha, "image_size": p.image_size, "image_mtime_ns": p.image_mtime_ns,
        "text": text, "text_sha": sha1_text(text), "title_sha": sha1_text(p.title),
        "attributes": json.dumps(attrs, ensure_ascii=False, sort_keys=True),
        "split": split_of(p.id), "source": source, "row": p.row,
    }


def _changed(old: dict, new: dict) -> bool:
    return any(old.get(k) != new.get(k) for k in ("image_sha", "image_status", "text_sha", "title_sha"))


def _reject_record(r: Reject) -> dict:
    return {"product_id": r.product_id, "row": r.row, "source": r.source, "reason": r.reason,
            "detail": r.detail, "kept": int(r.kept)}


# -- encoding --------------------------------------------------------------------------------
_SHA_COLUMN = {"image": "image_sha", "text": "text_sha", "title": "title_sha"}


def _todo(store: Store, model: str, kind: str) -> list[dict]:
    column = _SHA_COLUMN[kind]
    where = {"image": "image_status = 'ok'", "text": "1", "title": "image_status = 'ok'"}[kind]
    done = store.embedding_shas(model, kind)
    rows = store.db.query(f"SELECT rowid, {column} AS sha, image_path, title, text FROM products "
                          f"WHERE {where} ORDER BY rowid")
    return [r for r in rows if done.get(r["rowid"]) != r["sha"]]


def _encode_missing(store: Store, encoder: Encoder, kind: str, progress: ProgressCallback,
                    cancel: threading.Event | None, batch_size: int) -> tuple[int, float]:
    todo = _todo(store, encoder.fingerprint, kind)
    stage = "encode-images" if kind == "image" else f"encode-{kind}s"
    if not todo:
        return 0, 0.0
    progress(ProgressEvent(stage, 0, len(todo)))
    started = time.perf_counter()
    done = 0
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    source = (_image_batches(batches, getattr(encoder, "image_size", None)) if kind == "image"
              else ((b, None) for b in batches))
    for batch, images in source:
        check_cancel(cancel)
        if kind == "image":
            ok = [(row, img) for row, img in zip(batch, images) if img is not None]
            vectors = encoder.encode_images([img for _, img in ok]) if ok else None
            batch = [row for row, _ in ok]
        else:
            vectors = encoder.encode_texts([row[kind] or "" for row in batch])
        if batch:
            store.put_vectors(encoder.fingerprint, kind, [r["rowid"] for r in batch], [r["sha"] for r in batch],
                              l2_normalize(vectors))
        done += len(batch)
        progress(ProgressEvent(stage, done, len(todo)))
    return done, time.perf_counter() - started


def _image_batches(batches: list[list[dict]], min_side: int | None = None) -> Iterator[tuple[list[dict], list]]:
    """Decode the next batch of images in a background thread while the current one is encoded (large JPEGs at a
    reduced scale that still covers the model's input side `min_side`, as image queries are)."""

    def decode(batch: list[dict]) -> list:
        out = []
        for row in batch:
            try:
                out.append(load_image(row["image_path"], min_side))
            except (MmtuiError, OSError):
                out.append(None)  # changed on disk since validation: skipped now, re-validated next build
        return out

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(decode, batches[0]) if batches else None
        for i, batch in enumerate(batches):
            images = pending.result()
            pending = pool.submit(decode, batches[i + 1]) if i + 1 < len(batches) else None
            yield batch, images


# -- indexes ---------------------------------------------------------------------------------
@writes("reindex")
def reindex(settings: Settings, store: Store | None = None, progress: ProgressCallback | None = None
            ) -> dict[str, tuple[float, str]]:
    """Rebuild the image, text and fused indexes from stored vectors through the active projector (no encoding).

    They are written as a new generation (mmtui.generations): an index whose inputs are unchanged and whose
    files check out in full is carried over, a damaged one is rebuilt; searches see the new set only once it is
    complete. Returns {name: (ANN recall@10 against exact search, "hnsw"|"exact")}.
    """
    from .generations import NewGeneration, current_or_none

    progress = progress or null_progress
    own = store is None
    store = store or Store.open(settings.db_path)
    gen = None
    try:
        dropped = store.drop_stale_vectors()
        if dropped:
            progress(ProgressEvent("index", 0, None, f"removed {dropped} vectors no product matches any more"))
        base = store.get_meta("base_fingerprint")
        space, projector = search_space(store, settings)
        results: dict[str, tuple[float, str]] = {}
        text_rowids, text_vectors = store.vectors(base, "text")
        gen = NewGeneration(settings.ann_dir, current_or_none(settings.ann_dir))
        for name in ("image", "text"):
            progress(ProgressEvent("index", 0, None, f"building the {name} index"))
            rowids, vectors = (store.vectors(base, "image") if name == "image" else (text_rowids, text_vectors))
            if len(rowids):
                vectors = projector.image(vectors) if name == "image" else projector.text(vectors)
            saved = _reusable(gen, name, space, rowids, vectors)
            if saved is not None:  # same vectors, same model, intact files: what a rebuild would make
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
            index.save(gen.dir)
            results[name] = (round(recall, 4), "hnsw" if index.graph is not None else "exact")
            progress(ProgressEvent("index", len(rowids), len(rowids), f"{name} index: {len(rowids)} vectors"))
        results["fused"] = _build_fused_index(gen, store, projector, base, space, text_vectors, progress)
        _build_lexical_index(gen, store, progress)
        gen.commit()  # searches switch to the new set of files here, all at once
        store.set_meta("index_space", space)
        return results
    finally:
        if gen is not None:
            gen.discard()  # removes it unless committed
        if own:
            store.close()


def _reusable(gen, name: str, space: str, rowids: np.ndarray, vectors: np.ndarray):
    """The manifest of the current generation's index `name` when it was built from exactly these inputs and
    its files check out in full (then it is linked into `gen`), else None (rebuild it)."""
    old = gen.base
    if old is None or old.files is None or not len(rowids):
        return None
    saved = VectorIndex.saved_if_same(old.dir, name, space, rowids, vectors)
    if saved is None:
        return None
    files = VectorIndex.files(name, saved.graph)
    if not all(old.has(f) for f in files) or old.check(full=True, names={name}):
        return None  # missing, truncated or corrupted: rebuilt
    gen.reuse(files)
    return saved


def _build_lexical_index(gen, store: Store, progress: ProgressCallback) -> None:
    """lexical.npz (mmtui.lexical): FTS5's BM25 in memory; carried over while products_fts is unchanged."""
    import errno
    import sqlite3

    from .lexical import write_lexical_index

    progress(ProgressEvent("index", 0, None, "building the lexical index"))
    try:
        outcome = write_lexical_index(gen, store.db.conn)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        outcome = f"skipped ({exc})"
    except (sqlite3.Error, ValueError) as exc:  # lexical search still works, through FTS5
        outcome = f"skipped ({exc})"
    progress(ProgressEvent("index", 1, 1, f"lexical index {outcome}"))


def _build_fused_index(gen, store: Store, projector, base: str, space: str, text_vectors: np.ndarray,
                       progress: ProgressCallback) -> tuple[float, str]:
    """The fused index (mmtui.fusion): normalise(w * image + (1 - w) * text) per product, w from meta "fusion"."""
    from .fusion import fused_vectors, fusion_weight

    w = fusion_weight(store)
    progress(ProgressEvent("index", 0, None, f"building the fused index (image weight {w:.2f})"))
    rowids, vectors = fused_vectors(store, projector, base, w)
    saved = _reusable(gen, "fused", space, rowids, vectors)
    if saved is not None:  # same vectors (and so the same weight), same model: nothing to rebuild
        progress(ProgressEvent("index", len(rowids), len(rowids), "fused index unchanged"))
        return (saved.recall_at_10 if saved.recall_at_10 is not None else 1.0), "hnsw" if saved.graph else "exact"
    index = VectorIndex.build("fused", space, rowids, vectors if len(rowids) else np.zeros((0, 0), np.float32))
    index.manifest.extra["image_weight"] = w  # keep the content digest build() put there
    queries = projector.text(text_vectors) if len(text_vectors) else index.vectors
    sample = np.random.default_rng(0).permutation(len(queries))[:RECALL_SAMPLE]
    recall = index.recall_check(np.asarray(queries)[sample]) if len(index) else 1.0
    index.manifest.recall_at_10 = round(recall, 4)
    index.save(gen.dir)
    progress(ProgressEvent("index", len(rowids), len(rowids), f"fused index: {len(rowids)} vectors"))
    return round(recall, 4), "hnsw" if index.graph is not None else "exact"
