"""Which encoder an index uses: the model spec (--model, else what the index was built with, else lite) and the
encoder for it, lazily when its fingerprint is already known. Searching and building share it; it imports no
catalog or build code, so opening a search service stays light."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, fields
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


@dataclass
class HeadsAdaptation:
    """The lite heads build-index adapted to this catalog, as kept in the store's meta (paths inside the data dir)."""
    for_model: str  # the model spec the heads were adapted from ("lite", "lite1", ...)
    weights: str | None  # the adapted heads; None when the shipped heads won on validation
    pairs: str  # the sorted keys of the training pairs they learned from (.npy)
    model: str  # the heads in use: "adapted" or "shipped"
    base_sha: str  # the shipped heads they started from
    n_train: int
    n_val: int
    before: dict  # validation figures of the shipped heads
    after: dict  # ... and of the adapted ones
    at: str
    disabled: bool = False  # --no-adapt: kept for a later build, not in use
    tuned: str | None = None  # the shipped heads with their ImageNet bridge weighted for this catalog, if not as shipped

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def in_use(self) -> str | None:
        """The heads file (inside the data dir) the index uses: the adapted heads, else the shipped heads with the
        bridge weight chosen for this catalog; None: the shipped heads as they are."""
        if self.model == "adapted" and not self.disabled and self.weights:
            return self.weights
        return self.tuned


@dataclass
class AdapterAdaptation:
    """The residual adapter build-index trained for an open_clip index, as kept in the store's meta."""
    adapter_digest: str  # the training pairs it learned from
    base: str  # the base fingerprint it was trained over
    model: str  # the adapter's name when promoted, else "base"

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def read_adaptation(store: Store | None) -> HeadsAdaptation | AdapterAdaptation | None:
    """The adaptation build-index recorded for this index, or None (none yet, or unreadable)."""
    try:
        info = json.loads(store.get_meta(ADAPTATION_KEY) or "{}") if store is not None else {}
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    for kind in (HeadsAdaptation, AdapterAdaptation):
        names = {f.name for f in fields(kind)}
        required = {f.name for f in fields(kind) if f.default is MISSING}
        if required <= info.keys():
            return kind(**{k: v for k, v in info.items() if k in names})
    return None


def base_model_figures(store: Store | None) -> tuple[bool, float | None]:
    """Whether the base model's heads in use are adapted to this catalog, and their validation title -> picture
    R@10 as build-index measured it (None when it measured none)."""
    heads = read_adaptation(store)
    if not isinstance(heads, HeadsAdaptation):
        return False, None
    adapted = heads.model == "adapted" and not heads.disabled
    r10 = ((heads.after if adapted else heads.before) or {}).get("title->picture", {}).get("r10")
    return adapted, r10


def adapted_heads_problem(settings: Settings, store: Store | None) -> tuple[str, str] | None:
    """(file inside the data dir, why) when the adapted heads this index records in use cannot be read in full;
    None when they can, or when none are in use."""
    info = read_adaptation(store)
    if not isinstance(info, HeadsAdaptation) or not info.in_use():
        return None
    path = settings.data_dir / info.in_use()
    if not path.is_file():
        return info.in_use(), "missing"
    try:
        from safetensors.numpy import load_file

        load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - safetensors' own error type, or whatever a garbled file raises
        return info.in_use(), f"unreadable ({type(exc).__name__}: {exc})"
    return None


def adapted_weights(settings: Settings, store: Store | None, spec: str) -> Path | None:
    """The heads adapted to this catalog for model `spec` (inside the data dir: trained on it, or the shipped heads
    with their bridge weighted for it), if there are any."""
    info = read_adaptation(store)
    if not isinstance(info, HeadsAdaptation) or info.for_model != spec or not info.in_use():
        return None
    path = settings.data_dir / info.in_use()
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
