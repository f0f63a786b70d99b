"""Which encoder an index uses: the model spec (--model, else what the index was built with, else lite) and the
encoder for it, lazily when its fingerprint is already known. Searching and building share it; it imports no
catalog or build code, so opening a search service stays light."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..config import DEFAULT_MODEL, Settings
from . import fingerprint_memo
from .base import Encoder

if TYPE_CHECKING:
    from ..store import Store


def model_spec(settings: Settings, store: Store | None) -> str:
    """The model to use: --model / MMTUI_MODEL, else what this index was built with, else lite."""
    if settings.model:
        return settings.model
    if store is not None:
        return store.get_meta("base_model") or DEFAULT_MODEL
    return DEFAULT_MODEL


def open_encoder(settings: Settings, store: Store | None, lazy: bool = False) -> Encoder:
    # looked up on the package when called, not when this module loads: the package's loaders are the seam
    # tests replace (tests/unit/test_fingerprint_memo.py)
    from . import LazyEncoder, lazy_encoder, load_encoder

    spec = model_spec(settings, store)
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
                           lambda: load_encoder(spec, checkpoint=checkpoint, device=settings.device))
    encoder = lazy_encoder(spec, checkpoint=checkpoint, device=settings.device)
    if key and isinstance(encoder, LazyEncoder):
        fingerprint_memo.write(store, key, encoder.fingerprint, encoder.dim)
    return encoder
