"""The lite heads in numpy: pooled tower features -> search vectors, the same function as
mmtui.encoders.lite.ImageHead / TextHead in eval mode (tested against them). The torch-free query path runs the
towers in ONNX Runtime and these on top, so heads adapted to a catalog need no export of their own."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmtui.encoders.base import l2_normalize
from mmtui.encoders.lite_config import features_only, read_config
from mmtui.errors import ModelError


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)  # F.normalize


class NumpyLiteHeads:
    """The image and text heads of a features-only lite checkpoint (no fine-tuned tower tail, mean pooling)."""

    def __init__(self, config: dict, tensors: dict[str, np.ndarray]) -> None:
        if not features_only(config):
            raise ModelError("these lite heads have fine-tuned tower layers: they run in torch",
                             "search loads torch for this model")
        t = {k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}
        self.config = config
        self.dim = int(config["dim"])
        image = config["image"]
        self.pooled = list(image["pooled"])
        self.dims = {k: int(v) for k, v in config["image_dims"].items()}
        self.mu, self.sd = t["image.mu"], t["image.sd"]
        self.image_w, self.image_b = t["image.proj.weight"].T.copy(), t["image.proj.bias"]
        self.text_w, self.text_b = t["text.proj.weight"].T.copy(), t["text.proj.bias"]
        self.bridge = image.get("bridge")
        if self.bridge:
            start = sum(self.dims[n] for n in self.pooled[:self.pooled.index("head_mean")])
            self.head_slice = slice(start, start + self.dims["head_mean"])
            self.fc_w, self.fc_b = t["image.fc_w"].T.copy(), t["image.fc_b"]
            self.class_text = t["image.class_text"]
            self.bridge_weight = float(t["image.bridge_weight"])
            self.top = int(self.bridge.get("top", 10))
            self.temperature = float(self.bridge.get("temperature", 1.0))  # softmax temperature (lite.bridge_names)

    @classmethod
    def load(cls, weights: Path) -> tuple["NumpyLiteHeads", bytes]:
        """(heads, the raw weight bytes: their sha256 is part of the model's fingerprint)."""
        config, raw = read_config(weights)
        try:
            from safetensors.numpy import load as load_bytes

            tensors = load_bytes(raw)
        except Exception as exc:  # corrupt file: safetensors raises various errors
            raise ModelError(f"lite model weights are unreadable: {weights} ({exc})",
                             "reinstall mmtui, or re-create the weights with `mmtui train lit`") from exc
        try:
            return cls(config, tensors), raw
        except KeyError as exc:
            raise ModelError(f"lite weights {weights} lack {exc}", "the .safetensors and .json files must come "
                             "from the same training run") from exc

    def text(self, pooled: np.ndarray) -> np.ndarray:
        """Mean-pooled MiniLM states (n, 384) -> L2-normalised vectors (n, dim)."""
        return l2_normalize(np.asarray(pooled, np.float32) @ self.text_w + self.text_b)

    def image_flat(self, z: np.ndarray) -> np.ndarray:
        """Pooled features concatenated in the config's order (n, total) -> unnormalised head output."""
        out = ((z - self.mu) / self.sd) @ self.image_w + self.image_b
        if not self.bridge:
            return out
        # the ImageNet bridge (see ImageHead): the likeliest classes' names, placed by the text head's projection
        logits = z[:, self.head_slice] @ self.fc_w + self.fc_b
        idx = np.argpartition(-logits, self.top - 1, axis=1)[:, :self.top]
        values = np.take_along_axis(logits, idx, axis=1)
        if self.temperature != 1.0:
            values = values / self.temperature
        p = np.exp(values - values.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        names = np.einsum("nk,nkd->nd", p, self.class_text[idx])
        bridge = names @ self.text_w + self.text_b
        return _normalize(out) + self.bridge_weight * _normalize(bridge)

    def image(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Pooled tower features by name (the config's `pooled` list, colour included) -> L2-normalised vectors."""
        z = np.concatenate([np.asarray(features[n], np.float32) for n in self.pooled], axis=1)
        return l2_normalize(self.image_flat(z))
