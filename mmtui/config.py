"""Settings: command-line flag > MMTUI_* environment variable > default.

All paths live inside the data directory, so one directory holds everything a build makes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = "index"
DEFAULT_MODEL = "lite"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR))
    model: str | None = None  # "lite" or "openclip:ARCH/PRETRAINED"; None = what the index was built with, else lite
    checkpoint: Path | None = None  # open_clip weights file for offline use
    device: str | None = None  # None = CUDA when available, else CPU
    lock_timeout: float = 600.0  # seconds a writer waits for another one in the same data dir (0: fail at once)

    @classmethod
    def load(
        cls,
        data_dir: str | os.PathLike | None = None,
        model: str | None = None,
        checkpoint: str | os.PathLike | None = None,
        device: str | None = None,
        lock_timeout: float | None = None,
    ) -> "Settings":
        env = os.environ
        data = data_dir or env.get("MMTUI_DATA_DIR") or DEFAULT_DATA_DIR
        ckpt = checkpoint or env.get("MMTUI_CHECKPOINT")
        return cls(
            data_dir=Path(data).expanduser(),
            model=model or env.get("MMTUI_MODEL") or None,
            checkpoint=Path(ckpt).expanduser() if ckpt else None,
            device=device or env.get("MMTUI_DEVICE") or None,
            lock_timeout=lock_timeout if lock_timeout is not None else _seconds(env.get("MMTUI_LOCK_TIMEOUT"), 600.0),
        )

    @property
    def db_path(self) -> Path:
        return self.data_dir / "catalog.db"

    @property
    def ann_dir(self) -> Path:
        return self.data_dir / "ann"

    @property
    def image_cache_dir(self) -> Path:
        return self.data_dir / "cache" / "images"

    @property
    def checkpoints_dir(self) -> Path:
        return self.data_dir / "checkpoints"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"


def _seconds(text: str | None, default: float) -> float:
    try:
        return max(0.0, float(text)) if text else default
    except ValueError:
        return default
