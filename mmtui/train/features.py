"""Frozen-tower feature extraction with an on-disk cache, so LiT heads re-train in seconds.

Image features are keyed by a hash of the image file bytes, text features by a hash of the text; both live
under a folder named after the tower, the preprocessing version and the feature set, so a change in any of
them starts a fresh cache. Each extraction run appends shard files (safetensors, keys in the metadata):
nothing is pickled, and a cancelled run keeps the shards it finished.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from mmtui.catalog.images import load_image
from mmtui.encoders import towers
from mmtui.errors import TrainingError
from mmtui.progress import ProgressCallback, ProgressEvent, check_cancel

IMAGE_FEATURE_SET = "img-v2"  # bump when image_taps / colour_features output or the decoding changes (v2: load_image)
TEXT_FEATURE_SET = "txt-v1"
IMAGE_TAP_BLOCKS = (12, 15)  # cached inputs of these blocks let training fine-tune the tail of the tower
TEXT_TAP_LAYER = 4  # hidden_states[4] = input of the last two transformer layers
SHARD_ROWS = 1024


def _sha(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


class ShardCache:
    """Rows of named float16/float32 arrays keyed by strings, stored as appendable safetensors shards."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._where: dict[str, tuple[Path, int]] = {}
        for shard in sorted(self.folder.glob("shard-*.safetensors")):
            try:
                from safetensors import safe_open

                with safe_open(str(shard), framework="np") as f:
                    keys = json.loads((f.metadata() or {}).get("keys", "[]"))
            except Exception:  # a corrupt or half-written shard: ignore it, its rows get re-extracted
                continue
            for row, key in enumerate(keys):
                self._where[key] = (shard, row)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def write(self, keys: list[str], arrays: dict[str, np.ndarray]) -> None:
        if not keys:
            return
        n = len(list(self.folder.glob("shard-*.safetensors")))
        path = self.folder / f"shard-{n:05d}-{_sha(''.join(keys).encode())[:8]}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp),
                  metadata={"keys": json.dumps(keys)})
        tmp.replace(path)
        for row, key in enumerate(keys):
            self._where[key] = (path, row)

    def read(self, keys: Sequence[str]) -> dict[str, list[np.ndarray]]:
        """Per array name, a list of rows in the order of `keys` (all keys must be present)."""
        by_shard: dict[Path, list[tuple[int, int]]] = {}
        for i, key in enumerate(keys):
            shard, row = self._where[key]
            by_shard.setdefault(shard, []).append((i, row))
        out: dict[str, list] = {}
        for shard, pairs in by_shard.items():
            data = load_file(str(shard))
            for name, arr in data.items():
                slot = out.setdefault(name, [None] * len(keys))
                for i, row in pairs:
                    slot[i] = arr[row]
        return out


def image_key(path: str | Path) -> str:
    return _sha(Path(path).read_bytes())


def extract_image_features(paths: Sequence[str | Path], cache_dir: Path, *, variant: str = "lite0",
                           device: str = "cpu", batch_size: int = 32, progress: ProgressCallback | None = None,
                           cancel: threading.Event | None = None) -> dict[str, np.ndarray]:
    """Features of each image (rows aligned with `paths`): pooled stage/head features, tap maps, colour stats.

    Only images not yet in the cache run through the tower.
    """
    towers.set_default_threads()
    cache = ShardCache(Path(cache_dir) / f"{IMAGE_FEATURE_SET}-{variant}-{towers.PREPROCESS_VERSION}")
    keys = [image_key(p) for p in paths]
    todo: dict[str, Path] = {}
    for key, p in zip(keys, paths):
        if key not in cache and key not in todo:
            todo[key] = Path(p)
    if todo:
        model = towers.load_image_tower(variant, device)
        if device == "cpu":
            model = model.to(memory_format=torch.channels_last)
        size = towers.IMAGE_SIZES[variant]
        items = list(todo.items())
        pending_keys: list[str] = []
        pending: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(items), batch_size):
            check_cancel(cancel)
            chunk = items[start:start + batch_size]
            images = [load_image(p, size) for _, p in chunk]  # decoded exactly as build-index decodes them
            pixels = towers.images_to_array(images, size)
            x = towers.array_to_tensor(pixels).to(device)
            if device == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                taps = towers.image_taps(model, x, towers.STAGE_ENDS[variant], IMAGE_TAP_BLOCKS)
            arrays = {k: v.cpu().numpy().astype(np.float16 if k.startswith("tap") else np.float32)
                      for k, v in taps.items()}
            arrays["colour"] = towers.colour_features(pixels)
            for k, v in arrays.items():
                pending.setdefault(k, []).append(v)
            pending_keys.extend(k for k, _ in chunk)
            if len(pending_keys) >= SHARD_ROWS or start + batch_size >= len(items):
                cache.write(pending_keys, {k: np.concatenate(v) for k, v in pending.items()})
                pending_keys, pending = [], {}
            if progress:
                progress(ProgressEvent("features-images", min(start + batch_size, len(items)), len(items),
                                       f"image features ({variant})"))
    rows = cache.read(keys)
    return {name: np.stack(vals) for name, vals in rows.items()}


def extract_text_features(texts: Sequence[str], cache_dir: Path, *, device: str = "cpu", batch_size: int = 128,
                          progress: ProgressCallback | None = None,
                          cancel: threading.Event | None = None) -> dict[str, np.ndarray]:
    """MiniLM features of each text: `tap` (n, T, 384) hidden states entering layer TEXT_TAP_LAYER+1,
    `last` (n, T, 384), `mask` (n, T), `mean` (n, 384); T = longest text in this call."""
    towers.set_default_threads()
    cache = ShardCache(Path(cache_dir) / f"{TEXT_FEATURE_SET}-minilm-l6-{towers.PREPROCESS_VERSION}")
    keys = [_sha(str(t).encode()) for t in texts]
    todo: dict[str, str] = {}
    for key, t in zip(keys, texts):
        if key not in cache and key not in todo:
            todo[key] = str(t)
    if todo:
        tokenizer, model = towers.load_text_tower(device)
        items = list(todo.items())
        for start in range(0, len(items), 1024):
            chunk = items[start:start + 1024]
            parts: dict[str, list[np.ndarray]] = {}
            for b in range(0, len(chunk), batch_size):
                check_cancel(cancel)
                sub = [t for _, t in chunk[b:b + batch_size]]
                batch = {k: v.to(device) for k, v in towers.tokenize(tokenizer, sub).items()}
                with torch.inference_mode():
                    taps = towers.text_taps(model, batch, TEXT_TAP_LAYER)
                for k, v in taps.items():
                    arr = v.cpu().numpy()
                    if arr.ndim >= 2 and k != "mean":  # pad token axis to TEXT_MAX_TOKENS for stacking
                        pad = [(0, 0), (0, towers.TEXT_MAX_TOKENS - arr.shape[1])] + [(0, 0)] * (arr.ndim - 2)
                        arr = np.pad(arr, pad)
                    parts.setdefault(k, []).append(arr.astype(np.float16 if k in ("tap", "last") else np.float32))
                if progress:
                    progress(ProgressEvent("features-texts", min(start + b + batch_size, len(items)), len(items),
                                           "text features"))
            cache.write([k for k, _ in chunk], {k: np.concatenate(v) for k, v in parts.items()})
    rows = cache.read(keys)
    out = {name: np.stack(vals) for name, vals in rows.items()}
    if not len(texts):
        raise TrainingError("no texts to encode", "the catalog has no titles in this split")
    t = max(1, int(out["mask"].sum(axis=1).max()))
    for k in ("tap", "last", "mask"):
        out[k] = out[k][:, :t]
    return out
