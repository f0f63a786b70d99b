"""Apply the active head checkpoint to base-encoder vectors at index and query time.

Pure numpy (no torch import): a query costs two small matrix products. The base model's projector is the
identity. Outputs are always L2-normalised float32.
"""

from __future__ import annotations

import hashlib
from typing import Callable

import numpy as np

from mmtui.config import Settings
from mmtui.encoders.base import fingerprint_of, l2_normalize
from mmtui.errors import IndexMismatchError, ModelError
from mmtui.encoders.checkpoints import load_checkpoint

BASE = "base"
IDENTITY = "identity"  # the fingerprint of the identity projection (mmtui.encoders.projection uses the same)
HEAD_KINDS = ("residual", "mlp")

Fn = Callable[[np.ndarray], np.ndarray]


class Projector:
    """Maps base vectors into the search space: text(v) for queries and product texts, image(v) for images."""

    def __init__(self, name: str = BASE, fingerprint: str = IDENTITY, *, kind: str = BASE, dim: int | None = None,
                 base_fingerprint: str | None = None, text_fn: Fn | None = None, image_fn: Fn | None = None,
                 config: dict | None = None) -> None:
        self.name = name
        self.fingerprint = fingerprint  # changes whenever the projected vectors would change
        self.kind = kind  # "base", "adapter", "mlp", "finetune", ...
        self.dim = dim  # output size; None = same as the input
        self.base_fingerprint = base_fingerprint  # the encoder the head was trained on (None for base)
        self.config = config or {}
        self._text = text_fn
        self._image = image_fn

    @property
    def is_identity(self) -> bool:
        return self._text is None and self._image is None

    def text(self, v: np.ndarray) -> np.ndarray:
        return _apply(self._text, v)

    def image(self, v: np.ndarray) -> np.ndarray:
        return _apply(self._image, v)

    def __repr__(self) -> str:
        return f"Projector(name={self.name!r}, kind={self.kind!r}, fingerprint={self.fingerprint!r})"


def identity() -> Projector:
    return Projector()


def load_projector(settings: Settings, name: str | None, *, expect_fingerprint: str | None = None) -> Projector:
    """The projector of checkpoint `name` (None / "base" -> identity).

    expect_fingerprint: the base encoder's fingerprint; IndexMismatchError if the head was trained on another.
    A fine-tune checkpoint is a whole encoder, not a head: its projector is the identity (kind "finetune",
    fingerprint "identity"); making it active re-encoded the catalog with it (see promote).
    """
    if name in (None, "", BASE):
        return identity()
    ckpt = load_checkpoint(settings.checkpoints_dir, name)
    config = ckpt.config
    base_fp = config.get("base_fingerprint")
    head = config.get("head")
    if head is None or ckpt.kind in ("finetune", "lit"):  # a whole encoder: its vectors are the index's base vectors
        return Projector(name, IDENTITY, kind=ckpt.kind, base_fingerprint=base_fp, config=config)
    if expect_fingerprint and base_fp and base_fp != expect_fingerprint:
        raise IndexMismatchError(
            f"checkpoint {name} was trained on model {config.get('base_model')} ({base_fp}), "
            f"but the index uses {expect_fingerprint}",
            f"switch back with `mmtui use base`, or train a new head with `mmtui train {ckpt.kind}`")
    sha = hashlib.sha256(ckpt.weights_path.read_bytes()).hexdigest()[:16]
    fingerprint = fingerprint_of("projector", name, sha)
    if head not in HEAD_KINDS:
        raise ModelError(f"checkpoint {name} has an unknown head type {head!r}", "upgrade mmtui or train it again")
    tensors = ckpt.tensors()
    try:
        text_fn = _head_fn(head, tensors, "text", config)
        image_fn = _head_fn(head, tensors, "image", config)
    except KeyError as exc:
        raise ModelError(f"checkpoint {name} is missing weight {exc}", "train it again") from exc
    return Projector(name, fingerprint, kind=ckpt.kind, dim=config.get("out_dim"), base_fingerprint=base_fp,
                     text_fn=text_fn, image_fn=image_fn, config=config)


def _head_fn(head: str, t: dict[str, np.ndarray], side: str, config: dict) -> Fn:
    w1, b1 = t[f"{side}.fc1.weight"].T.copy(), t[f"{side}.fc1.bias"]
    w2, b2 = t[f"{side}.fc2.weight"].T.copy(), t[f"{side}.fc2.bias"]
    if head == "residual":
        alpha = float(config["alpha"])
        return lambda x: x + alpha * (np.maximum(x @ w1 + b1, 0.0) @ w2 + b2)
    return lambda x: np.maximum(x @ w1 + b1, 0.0) @ w2 + b2


def _apply(fn: Fn | None, v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    one = v.ndim == 1
    x = v[None, :] if one else v
    out = l2_normalize(fn(x) if fn is not None else x)
    return out[0] if one else out
