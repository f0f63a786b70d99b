"""Settings: command-line flag > MMTUI_* environment variable > default.

All paths live inside the data directory, so one directory holds everything a build makes.
Values are checked here, at the edge: a bad device or MMTUI_THREADS is a ConfigError with a hint,
never a traceback later.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mmtui.errors import ConfigError

DEFAULT_DATA_DIR = "index"
DEFAULT_MODEL = "lite"
DEVICES = ("cpu", "cuda", "cuda:N", "mps")  # as shown in messages
_DEVICE = re.compile(r"^(cpu|cuda|cuda:\d{1,3}|mps)$")
MAX_THREADS = 256


def check_device(device: str | None, source: str = "--device") -> str | None:
    """The device string, lower-cased and stripped, or None; ConfigError for anything torch would not accept."""
    if device is None:
        return None
    value = device.strip().lower()
    if not value:
        return None
    if not _DEVICE.match(value):
        raise ConfigError(f"{source} {device!r} is not a device",
                          "use one of: " + ", ".join(DEVICES) + " (or leave it out: CUDA when available, else CPU)")
    return value


def env_threads() -> int | None:
    """MMTUI_THREADS as a thread count (1..256), None when unset or empty; ConfigError when it is not one."""
    raw = os.environ.get("MMTUI_THREADS", "").strip()
    if not raw:
        return None
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_THREADS:
        raise ConfigError(f"MMTUI_THREADS={raw!r} is not a thread count",
                          f"set it to a whole number from 1 to {MAX_THREADS}, or unset it to let mmtui choose")
    return n


def check_env_choice(name: str, choices: tuple[str, ...] | list[str]) -> str | None:
    """An MMTUI_* variable that takes one of `choices` (case-insensitive), None when unset or empty."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if raw.lower() not in choices:
        raise ConfigError(f"{name}={raw!r} is not one of the choices",
                          f"set it to one of: {', '.join(choices)}, or unset it")
    return raw.lower()


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(DEFAULT_DATA_DIR))
    model: str | None = None  # "lite" or "openclip:ARCH/PRETRAINED"; None = what the index was built with, else lite
    checkpoint: Path | None = None  # open_clip weights file for offline use
    device: str | None = None  # None = CUDA when available, else CPU
    lock_timeout: float = 600.0  # seconds a writer waits for another one in the same data dir (0: fail at once)
    vector_store: str = "auto"  # MMTUI_VECTOR_STORE: the ANN graphs' library, hnswlib | usearch | auto (by size)

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
        if "\x00" in str(data) or (ckpt and "\x00" in str(ckpt)):
            raise ConfigError("a path contains a NUL byte", "check --data-dir / MMTUI_DATA_DIR and --checkpoint")
        if device:
            device = check_device(device, "--device")
        else:
            device = check_device(env.get("MMTUI_DEVICE") or None, "MMTUI_DEVICE")
        env_threads()  # checked now, used when a model runs
        return cls(
            data_dir=Path(data).expanduser(),
            model=(model or env.get("MMTUI_MODEL") or "").strip() or None,
            checkpoint=Path(ckpt).expanduser() if ckpt else None,
            device=device,
            lock_timeout=lock_timeout if lock_timeout is not None else _seconds(env.get("MMTUI_LOCK_TIMEOUT"), 600.0),
            vector_store=check_env_choice("MMTUI_VECTOR_STORE", ("auto", "hnswlib", "usearch")) or "auto",
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
