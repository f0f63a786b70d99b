"""The lite fingerprint remembered in the store, so an unchanged rebuild needs no torch import (seconds).

The fingerprint itself needs torch (the CPU's bf16 support, the CUDA check, the preprocessing version); it is
remembered in meta under a key of everything it can depend on, and reused while that key is the same.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

META_KEY = "lite_fingerprint_memo"
_CODE = ("lite.py", "lite_config.py", "towers.py", "preprocess.py", "base.py")  # what the fingerprint is computed by
_FINGERPRINT_ENV = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def read(store) -> dict:
    """The remembered {"key", "fingerprint", "dim"} of this index, or {}."""
    try:
        return json.loads(store.get_meta(META_KEY) or "{}")
    except ValueError:
        return {}


def key(spec: str, checkpoint: Path | None, device: str | None) -> str | None:
    """Everything the lite fingerprint can depend on, read without importing torch: the weights and config, the
    encoder code, the torch version, the CPU's flags and whether a GPU could be there. None for other models.

    The fingerprint itself needs torch (bf16 support of the CPU, the CUDA check, the preprocessing version), which
    costs seconds to import; an unchanged rebuild reuses the one remembered under the same key instead. A wrong
    memo cannot mix vectors silently: the real model checks the fingerprint when it loads."""
    if spec != "lite" and not spec.startswith("lite:"):
        return None
    from importlib import metadata  # ~0.1 s to import: only a build that opens a lite model needs it
    here = Path(__file__).resolve().parent
    weights = Path(spec.split(":", 1)[1]).expanduser() if spec.startswith("lite:") else here / "weights" / "lite.safetensors"
    h = hashlib.sha256()
    try:
        for path in (weights, weights.with_suffix(".json"), *(here / f for f in _CODE)):
            h.update(path.read_bytes())
        h.update(metadata.version("torch").encode())
    except (OSError, metadata.PackageNotFoundError):
        return None
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), "")
    except OSError:
        return None  # not Linux: no cheap way to know the CPU, so no memo
    gpu = sorted(p.name for pattern in ("nvidia*", "kfd") for p in Path("/dev").glob(pattern))
    env = [os.environ.get(k, "") for k in _FINGERPRINT_ENV]
    h.update(json.dumps([spec, str(checkpoint or ""), device or "", flags, gpu, env, sys.version]).encode())
    return h.hexdigest()


def write(store, key_: str, fingerprint: str, dim: int, features: str | None = None) -> None:
    store.set_meta(META_KEY, json.dumps({"key": key_, "fingerprint": fingerprint, "dim": dim, "features": features}))
