"""Versioned checkpoints: CHECKPOINTS_DIR/<kind>-NNN/ with

    model.safetensors   weights (never pickle)
    config.json         kind, base model and fingerprint, dims, hyper-parameters, created
    metrics.json        validation / test figures of the saved (best) epoch
    history.json        [{"epoch", "train_loss", "val_loss", "val_r10", ...}] one row per epoch
    curves.png          loss and validation R@10 per epoch (matplotlib, Agg backend)

A checkpoint is written into a temporary folder and renamed into place, so a crash never leaves half of one.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import numpy as np

from mmtui.config import Settings
from mmtui.errors import ModelError

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
METRICS = "metrics.json"
HISTORY = "history.json"
CURVES = "curves.png"
NAME_RE = re.compile(r"^(?P<kind>[a-z][a-z0-9_]*)-(?P<n>\d{3,})$")


@dataclass
class Checkpoint:
    name: str
    path: Path
    config: dict
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.config.get("kind", "")

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    def as_dict(self) -> dict:
        """name, kind, path, created, base_model, val_r10, test_r10, config, metrics (for listings)."""
        return {"name": self.name, "kind": self.kind, "path": str(self.path), "created": self.config.get("created"),
                "base_model": self.config.get("base_model"), "val_r10": self.metrics.get("val_r10"),
                "test_r10": (self.metrics.get("test") or {}).get("recall@10"), "config": self.config,
                "metrics": self.metrics}

    # a read-only mapping view of as_dict(), so `{**checkpoint}` and checkpoint["name"] work
    def keys(self):
        return self.as_dict().keys()

    def __getitem__(self, key: str):
        return self.as_dict()[key]

    def get(self, key: str, default=None):
        return self.as_dict().get(key, default)

    def tensors(self) -> dict[str, np.ndarray]:
        """The weights as float32 numpy arrays (no torch needed)."""
        from safetensors.numpy import load_file

        return {k: np.asarray(v, dtype=np.float32) for k, v in load_file(str(self.weights_path)).items()}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def next_name(root: Path, kind: str) -> str:
    """kind-001, kind-002, ...: one more than the highest existing number of that kind."""
    highest = 0
    if root.exists():
        for child in root.iterdir():
            m = NAME_RE.match(child.name)
            if m and m["kind"] == kind:
                highest = max(highest, int(m["n"]))
    return f"{kind}-{highest + 1:03d}"


def save_checkpoint(root: Path, kind: str, tensors: Mapping[str, object], config: dict, metrics: dict,
                    history: list[dict], *, name: str | None = None, extra_files: Mapping[str, str] | None = None,
                    plot: bool = True) -> Checkpoint:
    """Write a new versioned checkpoint; tensors are numpy arrays or torch tensors (saved as safetensors)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = name or next_name(root, kind)
    final = root / name
    if final.exists():
        raise ModelError(f"checkpoint {name} already exists", "choose another name or delete the folder")
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        _save_tensors(tensors, tmp / WEIGHTS)
        config = {"name": name, "kind": kind, "created": now_iso(), **config}
        _write_json(tmp / CONFIG, config)
        _write_json(tmp / METRICS, metrics)
        _write_json(tmp / HISTORY, history)
        for fname, text in (extra_files or {}).items():
            (tmp / fname).write_text(text)
        if plot and history:
            plot_curves(history, tmp / CURVES, title=name)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Checkpoint(name, final, config, metrics, history)


def load_checkpoint(root: Path, name: str) -> Checkpoint:
    """ModelError (with the available names as a hint) when there is no such checkpoint."""
    path = Path(root) / name
    if "/" in name or "\\" in name or name.startswith(".") or not (path / CONFIG).is_file():
        names = [c.name for c in list_checkpoints(root)]
        raise ModelError(f"no checkpoint named {name!r}",
                         f"available: {', '.join(names)}" if names else "train one with `mmtui train adapter`")
    if not (path / WEIGHTS).is_file():
        raise ModelError(f"checkpoint {name} has no {WEIGHTS}", f"delete {path} and train again")
    try:
        config = json.loads((path / CONFIG).read_text())
        metrics = _read_json(path / METRICS, {})
        history = _read_json(path / HISTORY, [])
    except json.JSONDecodeError as exc:
        raise ModelError(f"checkpoint {name} is damaged: {exc}", f"delete {path} and train again") from exc
    return Checkpoint(name, path, config, metrics, history)


def list_checkpoints(root: "Path | Settings") -> list[Checkpoint]:
    """Every readable checkpoint, oldest first (by created time, then name). root: a folder, or Settings."""
    root = Path(getattr(root, "checkpoints_dir", root))
    found = []
    if root.exists():
        for child in sorted(root.iterdir()):
            if child.is_dir() and not child.name.startswith(".") and (child / CONFIG).is_file():
                try:
                    found.append(load_checkpoint(root, child.name))
                except ModelError:
                    continue
    return sorted(found, key=lambda c: (c.config.get("created", ""), c.name))


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """Train/validation loss and validation R@10 per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_r10) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [row.get("train_loss") for row in history], marker="o", label="train loss")
    ax_loss.plot(epochs, [row.get("val_loss") for row in history], marker="o", label="val loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_r10.plot(epochs, [row.get("val_r10") for row in history], marker="o", color="tab:green")
    ax_r10.set_xlabel("epoch")
    ax_r10.set_ylabel("validation R@10")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _save_tensors(tensors: Mapping[str, object], path: Path) -> None:
    values = list(tensors.values())
    if values and hasattr(values[0], "detach"):
        from safetensors.torch import save_file

        save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(path))
    else:
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=False, default=_json_default) + "\n")


def _read_json(path: Path, default: object) -> object:
    return json.loads(path.read_text()) if path.is_file() else default


def _json_default(value: object) -> object:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def finetuned_settings(settings: Settings, checkpoint_dir: Path) -> Settings:
    """Settings that load a fine-tuned checkpoint as the base model (registers its arch config first)."""
    from mmtui.encoders.openclip import register_configs  # torch: only for a fine-tuned open_clip checkpoint

    config = json.loads((checkpoint_dir / "config.json").read_text())
    if config.get("open_clip_config"):
        register_configs(checkpoint_dir)
    return replace(settings, model=config["model_spec"], checkpoint=checkpoint_dir / "model.safetensors")
