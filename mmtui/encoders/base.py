"""The Encoder interface every model implements: texts and images -> L2-normalised float32 vectors.

Vectors of texts and images live in one space, so a text query can be compared with image vectors.
Nothing here imports torch; implementations do, inside their own modules.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class Encoder(Protocol):
    name: str  # the model spec as the user wrote it, e.g. "lite" or "openclip:ViT-B-32/laion2b_s34b_b79k"
    fingerprint: str  # changes whenever the vectors would change (weights, config, preprocessing)
    dim: int
    # the side the model's preprocessing scales images to; None: unknown (images are decoded at full size).
    # Large JPEGs are decoded at a reduced scale that still covers it: vectors of images at least twice that
    # size differ from a full decode by a cosine of ~0.99 (0.987-1.0 over 40 photos at 1200-1600 px, lite).
    image_size: int | None

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row L2-normalised."""

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(len(images), dim) float32, each row L2-normalised. Images are RGB PIL images."""


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def fingerprint_of(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


class FakeEncoder:
    """A deterministic, torch-free encoder for tests where the model does not matter.

    Texts: hashed bag of words. Images: a tiny colour thumbnail projected to `dim`.
    Words shared between texts make their vectors close, which is enough to test ranking plumbing.
    """

    name = "fake"
    image_size = None
    word_vectors = None  # no sentence model behind it: query understanding matches words by spelling and use only

    def __init__(self, dim: int = 32, seed: int = 0) -> None:
        self.dim = dim
        self.fingerprint = fingerprint_of("fake", dim, seed)
        rng = np.random.default_rng(seed)
        self._image_proj = rng.standard_normal((4 * 4 * 3, dim)).astype(np.float32)
        self.texts_encoded = 0
        self.images_encoded = 0

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in str(text).lower().split():
                slot = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim
                out[i, slot] += 1.0
            out[i, 0] += 1e-3  # never a zero vector
        self.texts_encoded += len(texts)
        return l2_normalize(out)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        rows = []
        for image in images:
            small = np.asarray(image.convert("RGB").resize((4, 4)), dtype=np.float32) / 255.0
            rows.append(small.reshape(-1) @ self._image_proj)
        self.images_encoded += len(images)
        return l2_normalize(np.stack(rows) if rows else np.zeros((0, self.dim), np.float32))
