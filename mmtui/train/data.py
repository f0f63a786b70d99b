"""Training data from the store's cache: paired base-encoder vectors, grouped by split.

Query side = the 'title' vectors (a title reads like a search query); product side = the 'image' vectors
(optionally also the combined-'text' vectors). Only products that have every requested kind are used.
No torch here: trainers turn these arrays into tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmtui.config import Settings
from mmtui.encoders import load_encoder
from mmtui.errors import TrainingError
from mmtui.metrics import ranks_of_targets
from mmtui.catalog.splits import SPLITS
from mmtui.store.db import Store

FINGERPRINT_META_KEYS = ("base_fingerprint", "model_fingerprint")


@dataclass
class PairedSplit:
    rowids: np.ndarray  # int64 (n,)
    query: np.ndarray  # float32 (n, dim): title vectors
    image: np.ndarray  # float32 (n, dim): image vectors of the same products
    text: np.ndarray | None = None  # float32 (n, dim): combined-text vectors, when asked for

    def __len__(self) -> int:
        return int(self.rowids.shape[0])


@dataclass
class PairedData:
    fingerprint: str
    dim: int
    splits: dict[str, PairedSplit]

    @property
    def train(self) -> PairedSplit:
        return self.splits["train"]

    @property
    def val(self) -> PairedSplit:
        return self.splits["val"]

    @property
    def test(self) -> PairedSplit:
        return self.splits["test"]


def base_fingerprint(settings: Settings, store: Store) -> str:
    """The fingerprint of the base encoder whose vectors the store caches.

    Read from store meta when the build recorded it; else the only fingerprint with image vectors;
    else the fingerprint of settings.model (loads the encoder).
    """
    for key in FINGERPRINT_META_KEYS:
        value = store.get_meta(key)
        if value:
            return value
    found = [r[0] for r in store.db.execute("SELECT DISTINCT model FROM embeddings WHERE kind = 'image'")]
    if len(found) == 1:
        return found[0]
    if not found:
        raise TrainingError("the index has no cached image vectors to train on",
                            "run `mmtui build-index CATALOG` on a catalog with images first")
    return load_encoder(settings.model, settings.checkpoint, settings.device).fingerprint


def load_pairs(store: Store, fingerprint: str, *, with_text: bool = False,
               require: tuple[str, ...] = ("train", "val")) -> PairedData:
    """Paired (title, image[, text]) vectors of `fingerprint`, by split; TrainingError if a required split is empty."""
    kinds = ["title", "image"] + (["text"] if with_text else [])
    loaded = {kind: store.vectors(fingerprint, kind) for kind in kinds}
    common = None
    for rowids, _ in loaded.values():
        common = set(rowids.tolist()) if common is None else common & set(rowids.tolist())
    if not common:
        raise TrainingError(f"no products have both title and image vectors for model {fingerprint}",
                            "run `mmtui build-index CATALOG` with this model on a catalog with images")
    dims = {vecs.shape[1] for _, vecs in loaded.values()}
    if len(dims) != 1:
        raise TrainingError(f"cached vectors have different sizes {sorted(dims)}", "rebuild the index")
    split_of = store.splits()
    keep = np.array(sorted(common), dtype=np.int64)
    by_kind = {}
    for kind, (rowids, vecs) in loaded.items():
        index = {int(r): i for i, r in enumerate(rowids)}
        by_kind[kind] = vecs[[index[int(r)] for r in keep]]
    labels = np.array([split_of.get(int(r), "") for r in keep])
    splits = {}
    for name in SPLITS:
        mask = labels == name
        splits[name] = PairedSplit(keep[mask], by_kind["title"][mask], by_kind["image"][mask],
                                   by_kind["text"][mask] if with_text else None)
    for name in require:
        if len(splits[name]) < 2:
            raise TrainingError(f"the {name} split has {len(splits[name])} products with images (need at least 2)",
                                "index a larger catalog: training uses 80% of the products, validation 10%")
    return PairedData(fingerprint, dims.pop(), splits)


def paired_r10(queries: np.ndarray, items: np.ndarray, k: int = 10) -> float:
    """Exact-item recall@k: query i's one relevant item is item i, exact search over all items (numpy)."""
    q = np.asarray(queries, dtype=np.float32)
    v = np.asarray(items, dtype=np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    ranks = ranks_of_targets(q @ v.T, np.arange(q.shape[0]))
    return float(np.mean(ranks <= k))


def kmeans_labels(x: np.ndarray, k: int, *, iters: int = 10, seed: int = 0) -> np.ndarray:
    """Spherical k-means cluster labels of L2-normalised rows (numpy; a few iterations are plenty here)."""
    rng = np.random.default_rng(seed)
    k = max(1, min(k, x.shape[0]))
    picks = [int(rng.integers(x.shape[0]))]  # farthest-point start: each centre the row least like the others
    closest = x @ x[picks[0]]
    for _ in range(k - 1):
        picks.append(int(np.argmin(closest)))
        closest = np.maximum(closest, x @ x[picks[-1]])
    centres = x[picks].copy()
    labels = np.zeros(x.shape[0], dtype=np.int64)
    for _ in range(iters):
        labels = np.argmax(x @ centres.T, axis=1)
        for c in range(k):
            members = x[labels == c]
            if len(members):
                centre = members.sum(axis=0)
                centres[c] = centre / max(float(np.linalg.norm(centre)), 1e-12)
    return labels


def hard_batches(labels: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of indices from one cluster each, so in-batch negatives look alike (harder negatives);
    each cluster's remainder goes into shared batches at the end. Every index appears once."""
    batches, leftovers = [], []
    for c in rng.permutation(np.unique(labels)):
        members = rng.permutation(np.flatnonzero(labels == c))
        full = len(members) - len(members) % batch_size
        batches += [members[i:i + batch_size] for i in range(0, full, batch_size)]
        leftovers.append(members[full:])
    rest = np.concatenate(leftovers) if leftovers else np.zeros(0, dtype=np.int64)
    batches += [rest[i:i + batch_size] for i in range(0, len(rest), batch_size)]
    return [b for b in batches if len(b) >= 2]
