"""The lite model's config and fingerprints, read without torch: the torch-free query path
(mmtui.encoders.onnx_query) must know which model an index was built with before it decides not to load torch."""

from __future__ import annotations

import json
from pathlib import Path

from mmtui.encoders.base import fingerprint_of
from mmtui.encoders.preprocess import PREPROCESS_VERSION
from mmtui.errors import ModelError

FORMAT = "mmtui-lite-v1"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def default_weights() -> Path:
    return WEIGHTS_DIR / "lite.safetensors"


def read_config(weights: Path) -> tuple[dict, bytes]:
    """(config, raw weight bytes) of a lite checkpoint: NAME.safetensors beside NAME.json; ModelError when either
    is missing or the config is not a lite one (the weights are parsed by whoever uses them)."""
    weights = Path(weights)
    config_path = weights.with_suffix(".json")
    hint = "reinstall mmtui, or re-create the weights with `mmtui train lit`"
    if not weights.is_file() or not config_path.is_file():
        raise ModelError(f"lite model weights not found: {weights} (+ {config_path.name})", hint)
    try:
        raw = weights.read_bytes()
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"lite model weights are unreadable: {weights} ({exc})", hint) from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelError(f"{config_path} is not a {FORMAT} config", hint)
    return config, raw


def lite_fingerprint(config: dict, weights_sha: str, image_bf16: bool) -> str:
    """What the vectors of a lite model depend on: its config (not its recorded metrics), its weights' hash, the
    preprocessing and whether the image tower runs in bf16."""
    public = {k: v for k, v in config.items() if k not in ("metrics", "trained_on")}
    return fingerprint_of("lite", json.dumps(public, sort_keys=True), weights_sha, PREPROCESS_VERSION, image_bf16)


def feature_fingerprint_of(config: dict, image_bf16: bool) -> str | None:
    """The fingerprint of what the heads read (pooled frozen-tower features of images, mean-pooled MiniLM states of
    texts): the same for every set of heads over the same towers, so heads adapted to a catalog re-project cached
    features instead of running the towers again. None when the heads read more than that (a fine-tuned tail)."""
    if not features_only(config):
        return None
    return fingerprint_of("lite-features", config.get("image_tower", "lite0"), list(config["image"]["pooled"]),
                          config.get("text_tower", "all-MiniLM-L6-v2"), PREPROCESS_VERSION, image_bf16)


def features_only(config: dict) -> bool:
    """Heads that read only pooled features: no tower tail, mean pooling of the text."""
    return (config["image"].get("tail_from") is None and config["text"].get("tail_from") is None
            and config["text"].get("pool", "mean") == "mean" and bool(config["image"].get("pooled")))
