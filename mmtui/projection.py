"""The active head: which projector maps the base model's cached vectors into the search space.

The base model alone is the identity (no torch needed); a trained checkpoint (adapter, mlp, fusion)
is loaded by mmtui.train.projector only when one is active.
"""

from __future__ import annotations

import numpy as np

from .config import Settings
from .encoders.base import l2_normalize


class IdentityProjector:
    name = "base"
    fingerprint = "identity"

    def text(self, v: np.ndarray) -> np.ndarray:
        return l2_normalize(v)

    def image(self, v: np.ndarray) -> np.ndarray:
        return l2_normalize(v)


def active_name(store) -> str:
    return store.get_meta("active_model") or "base"


def active_projector(settings: Settings, store):
    name = active_name(store)
    if name == "base":
        return IdentityProjector()
    from .train.projector import load_projector

    return load_projector(settings, name)
