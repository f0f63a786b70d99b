"""Which encoder an index uses: the model spec (--model, else what the index was built with, else lite) and the
encoder for it, lazily when its fingerprint is already known. Searching and building share it; it imports no
catalog or build code, so opening a search service stays light."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from mmtui.config import DEFAULT_MODEL, Settings
from mmtui.encoders import fingerprint_memo
from mmtui.encoders.base import Encoder

if TYPE_CHECKING:
    from mmtui.store.db import Store


def model_spec(settings: Settings, store: Store | None) -> str:
    """The model to use: --model / MMTUI_MODEL, else what this index was built with, else lite."""
    if settings.model:
        return settings.model
    if store is not None:
        return store.get_meta("base_model") or DEFAULT_MODEL
    return DEFAULT_MODEL


ADAPTATION_KEY = "adaptation"  # store meta: the heads build-index adapted to this catalog (mmtui.train.adapt)


def adaptation_info(store: Store | None) -> dict:
    try:
        return json.loads(store.get_meta(ADAPTATION_KEY) or "{}") if store is not None else {}
    except ValueError:
        return {}


def adapted_weights(settings: Settings, store: Store | None, spec: str) -> Path | None:
    """The weights adapted to this catalog for model `spec` (inside the data dir), if there are any."""
    info = adaptation_info(store)
    if info.get("for_model") != spec or not info.get("weights") or info.get("disabled"):
        return None
    path = settings.data_dir / info["weights"]
    return path if path.is_file() else None


def open_encoder(settings: Settings, store: Store | None, lazy: bool = False, adapted: bool = True) -> Encoder:
    """The encoder of this index: model_spec's, with the heads adapted to the catalog when there are some (and
    `adapted`). Its name stays the spec ("lite"): the adaptation is a property of the index, not another model."""
    from mmtui.encoders import lite_weights

    spec = model_spec(settings, store)
    weights = adapted_weights(settings, store, spec) if adapted else None
    encoder = _open(settings, store, f"lite:{weights}" if weights else spec, lazy)
    encoder.name = spec
    encoder.weights_path = weights or lite_weights(spec)  # the heads, for re-projecting cached features
    return encoder


def _open(settings: Settings, store: Store | None, spec: str, lazy: bool) -> Encoder:
    # looked up on the package when called, not when this module loads: the package's loaders are the seam
    # tests replace (tests/unit/test_fingerprint_memo.py)
    from mmtui.encoders import LazyEncoder, lazy_encoder, load_encoder

    checkpoint = settings.checkpoint
    if checkpoint is None and store is not None and store.get_meta("base_model") == spec:
        stored = store.get_meta("base_checkpoint")
        checkpoint = Path(stored) if stored else None
    if not lazy:
        return load_encoder(spec, checkpoint=checkpoint, device=settings.device)
    key = fingerprint_memo.key(spec, checkpoint, settings.device) if store is not None else None
    memo = fingerprint_memo.read(store) if key else {}
    if key and memo.get("key") == key:  # same weights, code, torch and machine: same fingerprint, no torch import
        return LazyEncoder(spec, memo["fingerprint"], int(memo["dim"]),
                           lambda: load_encoder(spec, checkpoint=checkpoint, device=settings.device),
                           memo.get("features"))
    encoder = lazy_encoder(spec, checkpoint=checkpoint, device=settings.device)
    if key and isinstance(encoder, LazyEncoder):
        fingerprint_memo.write(store, key, encoder.fingerprint, encoder.dim, encoder.feature_fingerprint)
    return encoder
