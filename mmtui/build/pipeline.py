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
from functools import partial
from pathlib import Path
from typing import Iterator

import numpy as np

from mmtui.build.caches import remove_damaged
from mmtui.catalog.text import combined_text
from mmtui.catalog.images import load_image, resolve_images
from mmtui.catalog.readers import read_catalog
from mmtui.catalog.records import Product, Reject
from mmtui.config import Settings
from mmtui.store.datadir import writes
from mmtui.encoders.base import Encoder, l2_normalize
from mmtui.encoders.for_index import model_spec, open_encoder
from mmtui.errors import ConfigError, MmtuiError
from mmtui.index.writer import reindex
from mmtui.progress import ProgressCallback, ProgressEvent, check_cancel, null_progress
from mmtui.catalog.splits import split_of
from mmtui.store.db import CONTENT, Store, sha1_text
from mmtui.train.adapt import adapt_to_catalog, project_missing


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
    adaptation: dict = field(default_factory=dict)  # mmtui.train.adapt.Adaptation.to_json()
    ranking: dict = field(default_factory=dict)  # mmtui.train.weights.hybrid.learn_at_build: hybrid weights
    understanding: dict = field(default_factory=dict)  # mmtui.train.weights.understanding.learn_at_build
    query_model: dict = field(default_factory=dict)  # mmtui.build.query_model: the torch-free query model
    encodings: dict[str, str] = field(default_factory=dict)  # catalog file name -> the text encoding it was read as
    encoded_on: str = "this process"  # or e.g. "local Ray, 2 CPU actors", "Ray cluster at HOST:6379, 4 GPU actors"
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
                keep_missing: bool = False, adapt: bool = True, encode_on=None) -> BuildReport:
    """Index `catalog` into settings.data_dir: products and rejects, vectors for what changed, the indexes.

    Products no longer in the catalog leave the index, unless `keep_missing` (a re-encode with another model
    keeps every product it already holds, whatever the catalog path now reads). With `adapt`, the model's heads
    are adapted to the catalog's own title-picture pairs (mmtui.train.adapt) before the indexes are built.
    `encode_on` (an object with `where` and `encode_missing`, e.g. mmtui.build.ray_encode.RayEncode) encodes elsewhere."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size {batch_size!r} is not a positive whole number", "use e.g. --batch-size 32")
    progress = progress or null_progress
    started = time.perf_counter()
    data = read_catalog(catalog, columns)
    if not data.products:
        raise _no_products(catalog, data.rejects)
    store = Store.open(settings.db_path, create=True)
    for name, problem in remove_damaged(settings, store).items():
        progress(ProgressEvent("check", 0, None, f"{name} was damaged ({problem}): it is made again"))
    existing = store.existing_products()  # id -> the stored row, read once
    known = {r["image_path"]: (r["image_size"], r["image_mtime_ns"], r["image_sha"], r["image_status"])
             for r in existing.values() if r["image_path"]}
    image_rejects = resolve_images(data.products, data.base_dir, settings.image_cache_dir, known=known,
                                   progress=progress, cancel=cancel)
    if encoder is None:
        progress(ProgressEvent("model", 0, None,
                               f"model {model_spec(settings, store)} (loaded only if something needs encoding)"))
        encoder = open_encoder(settings, store, lazy=True, adapted=adapt)
    # the path as given (a folder may hold several files: data.source is only the first) made absolute, and the
    # column mapping: what a re-encode after `mmtui use` of a fine-tuned model reads again
    source = str(Path(catalog).expanduser().resolve())
    report = BuildReport(catalog=source, model=encoder.name, encodings=dict(data.encodings))
    rejects = [*data.rejects, *image_rejects]
    build_id = _store_products(store, data, existing, rejects, source, encoder, report, keep_missing)
    _record_model(settings, store, encoder, source, columns)
    _encode(store, encoder, encode_on, report, progress, cancel, batch_size)
    check_cancel(cancel)
    encoder = _adapt(settings, store, encoder, report, adapt, progress, cancel)
    recall = _index_and_learn(settings, store, encoder, report, progress, cancel)
    check_cancel(cancel)
    report.query_model = _export_query_model(settings, encoder, progress)
    _finish(store, report, recall, rejects, build_id, started)
    return report


def _store_products(store: Store, data, existing: dict[str, dict], rejects: list[Reject], source: str,
                    encoder: Encoder, report: BuildReport, keep_missing: bool) -> int:
    """Step 1: the catalog's products (only new and changed rows written) and this build's rejects; products
    gone from the catalog removed unless `keep_missing`. Counts in `report`; returns the build's id."""
    records = [_record(p, data.source.name) for p in data.products]
    seen = {r["id"] for r in records}
    report.added = sum(1 for r in records if r["id"] not in existing)
    report.updated = sum(1 for r in records if r["id"] in existing and _changed(existing[r["id"]], r))
    removed = [] if keep_missing else [pid for pid in existing if pid not in seen]
    dirty = [r for r in records if r["id"] not in existing or any(existing[r["id"]].get(k) != v for k, v in r.items())]
    with store.db.conn:
        store.upsert_products(dirty)  # unchanged rows are not rewritten (each write also re-indexes FTS)
        report.removed = store.delete_products(removed) if removed else 0
    build_id = store.db["builds"].insert({"catalog": source, "model": encoder.name,
                                          "started": time.strftime("%Y-%m-%dT%H:%M:%S")}).last_pk
    store.replace_rejects(build_id, [_reject_record(r) for r in rejects])
    return build_id


def _record_model(settings: Settings, store: Store, encoder: Encoder, source: str, columns: dict | None) -> None:
    """The model, the catalog path and its column mapping, as a later search or re-encode reads them."""
    store.set_meta("base_model", encoder.name)
    store.set_meta("base_fingerprint", encoder.fingerprint)
    store.set_meta("base_dim", str(encoder.dim))
    if settings.checkpoint:
        store.set_meta("base_checkpoint", str(settings.checkpoint))
    store.set_meta("catalog", source)
    store.set_meta("catalog_columns", json.dumps(columns or {}, sort_keys=True))


def _encode(store: Store, encoder: Encoder, encode_on, report: BuildReport, progress: ProgressCallback,
            cancel: threading.Event | None, batch_size: int) -> None:
    """Step 2: vectors for what has none for this model and content, here or on `encode_on` (e.g.
    mmtui.build.ray_encode.RayEncode: the same work list, encoded on an actor pool, written here alike)."""
    if encode_on is not None:
        (report.encoded_images, report.image_seconds, report.encoded_texts,
         report.text_seconds) = encode_on.encode_missing(store, encoder, progress, cancel, batch_size)
        report.encoded_on = encode_on.where
        return
    report.encoded_images, report.image_seconds = _encode_missing(
        store, encoder, "image", progress, cancel, batch_size)
    report.encoded_texts, report.text_seconds = 0, 0.0
    for kind in ("title", "text"):
        n, seconds = _encode_missing(store, encoder, kind, progress, cancel, batch_size * 2)
        report.encoded_texts += n
        report.text_seconds += seconds


def _adapt(settings: Settings, store: Store, encoder: Encoder, report: BuildReport, enabled: bool,
           progress: ProgressCallback, cancel: threading.Event | None) -> Encoder:
    """Step 3: the model adapted to the catalog from the features the encoding kept (no tower runs again).
    Returns the encoder later steps encode queries with."""
    adaptation = adapt_to_catalog(settings, store, encoder, enabled=enabled, progress=progress, cancel=cancel)
    report.adaptation = adaptation.to_json()
    if adaptation.weights is not None and adaptation.weights != getattr(encoder, "weights_path", None):
        return encoder.with_heads(adaptation.weights)
    return encoder


def _index_and_learn(settings: Settings, store: Store, encoder: Encoder, report: BuildReport,
                     progress: ProgressCallback, cancel: threading.Event | None) -> dict:
    """Steps 4-6: the indexes from the stored vectors, then the hybrid weights and the weights of what a query
    names, learned on the validation products. Returns reindex's {index: (recall@10, kind)}."""
    from mmtui.train.weights.hybrid import learn_at_build
    from mmtui.train.weights.understanding import learn_at_build as learn_understanding_at_build

    check_cancel(cancel)
    _make_probes(store, encoder, progress)
    recall = reindex(settings, store=store, progress=progress)
    check_cancel(cancel)
    report.ranking = learn_at_build(settings, store, encoder, progress=progress)  # a signal at chance: no vote
    if report.ranking.get("status") == "learned":
        recall.update(reindex(settings, store=store, progress=progress))  # the fused index, with the learned weight
    check_cancel(cancel)
    report.understanding = learn_understanding_at_build(settings, store, encoder, progress=progress)
    return recall


def _make_probes(store: Store, encoder: Encoder, progress: ProgressCallback) -> None:
    """Step 4a: the self-check's query-like probes (mmtui.catalog.probes), encoded by the text tower as queries
    are (raw: reindex projects them) and stored for the base model (mmtui.index.probes). Kept while the model is
    the same and the catalog has neither doubled nor halved since they were made: each new set re-checks every
    graph once, and a build with nothing to encode need not load the model for them."""
    from mmtui.catalog.probes import probe_texts
    from mmtui.index.probes import load_probes, save_probes

    base = store.get_meta("base_fingerprint")
    if not base or base != encoder.fingerprint:  # the vectors are another model's: no probes of this one
        return
    count = store.product_count()
    saved = load_probes(store, base)
    if saved is not None and saved.products / 2 < count < saved.products * 2:
        return
    texts = probe_texts(store)
    if not texts:
        return
    save_probes(store, base, texts, encoder.encode_texts(texts), count)
    progress(ProgressEvent("index", len(texts), len(texts), f"{len(texts)} query-like probes for the ANN check"))


def _export_query_model(settings: Settings, encoder: Encoder, progress: ProgressCallback) -> dict:
    """Step 7: the query model exported to ONNX and checked against torch, so a search needs no torch."""
    from mmtui.build.query_model import export_query_model

    return export_query_model(settings, encoder, progress=progress)


def _finish(store: Store, report: BuildReport, recall: dict, rejects: list[Reject], build_id: int,
            started: float) -> None:
    """The report's totals, kept with the build's row and as the last build; the store closed."""
    report.ann_recall_at_10 = {k: v[0] for k, v in recall.items()}
    report.index_kind = {k: v[1] for k, v in recall.items()}
    report.products = store.product_count()
    report.with_image = store.db.execute("SELECT count(*) FROM products WHERE image_status = 'ok'").fetchone()[0]
    report.rejects_by_reason = store.rejects_by_reason()
    report.rejected_rows = sum(1 for r in rejects if not r.kept)
    report.seconds = round(time.perf_counter() - started, 2)
    store.db["builds"].update(build_id, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                         "report": json.dumps(report.to_json())})
    store.set_meta("last_build", json.dumps(report.to_json()))
    store.close()


# -- products --------------------------------------------------------------------------------
def _no_products(catalog: Path | str, rejects: list[Reject]) -> MmtuiError:
    """The error for a catalog that yields no product at all: the data directory is left as it was (an index
    whose products would all be removed, or an index of nothing, is never what was meant)."""
    from collections import Counter

    from mmtui.errors import CatalogError

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
def _todo(store: Store, model: str, kind: str, features: str | None = None) -> list[dict]:
    """Rows of `kind` with no vector of `model` for their content (or, with `features`, no cached features)."""
    column, where = CONTENT[kind]
    done = store.embedding_shas(model, kind)
    have = store.embedding_shas(features, f"{kind}-features") if features else None
    rows = store.db.query(f"SELECT rowid, {column} AS sha, image_path, title, text FROM products "
                          f"WHERE {where} ORDER BY rowid")
    return [r for r in rows if done.get(r["rowid"]) != r["sha"] or (have is not None and have.get(r["rowid"]) != r["sha"])]


STAGES = {"image": "encode-images", "title": "encode-titles", "text": "encode-texts"}


def missing(store: Store, encoder: Encoder, kind: str) -> list[dict]:
    """The rows of `kind` to encode with `encoder`: vectors made from cached features first (other heads over
    the same towers: re-projected, not encoded), then what still has no vector for this model and content."""
    features_fp = getattr(encoder, "feature_fingerprint", None)
    weights = getattr(encoder, "weights_path", None)
    if features_fp and weights is not None:
        project_missing(store, weights, encoder.fingerprint, features_fp, kind)
    return _todo(store, encoder.fingerprint, kind, features_fp)


def _encode_missing(store: Store, encoder: Encoder, kind: str, progress: ProgressCallback,
                    cancel: threading.Event | None, batch_size: int) -> tuple[int, float]:
    features_fp = getattr(encoder, "feature_fingerprint", None)
    todo = missing(store, encoder, kind)
    stage = STAGES[kind]
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
        batch, vectors, features = encode_batch(encoder, kind, batch, images, features_fp)
        write_encoded(store, encoder.fingerprint, features_fp, kind, batch, vectors, features)
        done += len(batch)
        progress(ProgressEvent(stage, done, len(todo)))
    return done, time.perf_counter() - started


def _image_batches(batches: list[list[dict]], min_side: int | None = None) -> Iterator[tuple[list[dict], list]]:
    """Decode the next batch of images in a background thread while the current one is encoded (large JPEGs at a
    reduced scale that still covers the model's input side `min_side`, as image queries are)."""

    decode = partial(decode_images, min_side=min_side)

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(decode, batches[0]) if batches else None
        for i, batch in enumerate(batches):
            images = pending.result()
            pending = pool.submit(decode, batches[i + 1]) if i + 1 < len(batches) else None
            yield batch, images


def decode_images(rows: list[dict], min_side: int | None = None) -> list:
    """The images of `rows` (their image_path), None where one cannot be decoded (changed on disk since
    validation: skipped now, re-validated next build). A Ray encode decodes with this too."""
    out = []
    for row in rows:
        try:
            out.append(load_image(row["image_path"], min_side))
        except (MmtuiError, OSError):
            out.append(None)
    return out


def encode_batch(encoder: Encoder, kind: str, batch: list[dict], images: list | None,
                 features_fp: str | None) -> tuple[list[dict], np.ndarray | None, np.ndarray | None]:
    """(rows encoded, their vectors, their features or None) for one batch of `kind` rows; images that could not
    be decoded (None) are left out. With `features_fp`, the features the heads read are kept too, so adapting
    the heads needs no second pass of the towers."""
    features = None
    if kind == "image":
        ok = [(row, img) for row, img in zip(batch, images) if img is not None]
        batch = [row for row, _ in ok]
        inputs = [img for _, img in ok]
        if not inputs:
            vectors = None
        elif features_fp:
            vectors, features = encoder.encode_images_with_features(inputs)
        else:
            vectors = encoder.encode_images(inputs)
    elif features_fp:
        vectors, features = encoder.encode_texts_with_features([row[kind] or "" for row in batch])
    else:
        vectors = encoder.encode_texts([row[kind] or "" for row in batch])
    return batch, vectors, features


def write_encoded(store: Store, fingerprint: str, features_fp: str | None, kind: str, batch: list[dict],
                  vectors: np.ndarray | None, features: np.ndarray | None) -> None:
    """Store one encoded batch (features first, then vectors: a vector is only there once its features are)."""
    if not batch:
        return
    rowids, shas = [r["rowid"] for r in batch], [r["sha"] for r in batch]
    if features is not None:
        store.put_features(features_fp, kind, rowids, shas, features)
    store.put_vectors(fingerprint, kind, rowids, shas, l2_normalize(vectors))
