"""Fused product vectors: one vector per product from its image and its text (seeds 003/004).

    fused = normalise(w * image + (1 - w) * text)      (both through the active projector)

A product without an image is represented by its text vector alone. The query side stays text-only, so a query
costs what it did before; the fused index is built from cached vectors at reindex time (nothing is encoded).
The weight w is learned on the validation split by grid search (mmtui.train.weights.fusion.learn_fusion_weight), stored
in the store's meta under "fusion", and 0.5 until something was learned.
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from mmtui.encoders.base import l2_normalize

DEFAULT_WEIGHT = 0.5
META_KEY = "fusion"


def fuse(text: np.ndarray, image: np.ndarray, w: float) -> np.ndarray:
    """normalise(w * image + (1 - w) * text), row by row; rows of `image` that are all zero (no image) give
    the text vector alone."""
    text = np.asarray(text, np.float32)
    image = np.asarray(image, np.float32)
    out = np.empty(text.shape, np.float32)
    for s in range(0, len(text), 65536):  # a block at a time: whole-array temporaries were ~5x the input at 1M
        t, i = text[s:s + 65536], image[s:s + 65536]
        has_image = np.linalg.norm(i, axis=1) > 0
        out[s:s + 65536] = l2_normalize(np.where(has_image[:, None], w * i + (1.0 - w) * t, t))
    return out


def product_vectors(store: Any, projector: Any, base: str, rowids: Sequence[int] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rowids, text vectors, image vectors) of every product with a text vector, both through the projector;
    image rows are zero for products without an image vector."""
    ids, text = store.vectors(base, "text", rowids)
    if not len(ids):
        return ids, text, text
    text = projector.text(text)
    image = np.zeros_like(text)
    img_ids, img = store.vectors(base, "image", rowids)
    if len(img_ids):
        common, t_pos, i_pos = np.intersect1d(ids, img_ids, return_indices=True)
        image[t_pos] = projector.image(img[i_pos])
    return ids, text, image


def fused_vectors(store: Any, projector: Any, base: str, w: float | None = None,
                  rowids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rowids, fused vectors) for the fused index; w defaults to the stored (learned) weight."""
    ids, text, image = product_vectors(store, projector, base, rowids)
    if not len(ids):
        return ids, text
    return ids, fuse(text, image, fusion_weight(store) if w is None else w)


def fusion_weight(store: Any) -> float:
    """The learned image weight from meta "fusion", else DEFAULT_WEIGHT."""
    info = fusion_info(store)
    try:
        return float(info["image_weight"]) if info else DEFAULT_WEIGHT
    except (KeyError, TypeError, ValueError):
        return DEFAULT_WEIGHT


def fusion_info(store: Any) -> dict | None:
    raw = store.get_meta(META_KEY)
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    return info if isinstance(info, dict) else None
