"""The active head: which projector maps the base model's cached vectors into the search space, and the
fingerprint of that space (search_space), which every index and query of it is keyed by.

The base model alone is the identity (no torch needed); a trained checkpoint (adapter, mlp, fusion)
is loaded by mmtui.encoders.projector (numpy) only when one is active.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mmtui.config import Settings
from mmtui.encoders.base import l2_normalize
from mmtui.errors import MmtuiError
from mmtui.encoders.projector import load_projector

if TYPE_CHECKING:
    from mmtui.store.db import Store


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
    return load_projector(settings, name)


def search_space(store: Store, settings: Settings):
    """(fingerprint of the search space, projector) for the active model."""
    base = store.get_meta("base_fingerprint")
    if not base:
        raise MmtuiError("this data directory has no built index", "run `mmtui build-index CATALOG`")
    projector = active_projector(settings, store)
    space = base if projector.fingerprint == "identity" else f"{base}+{projector.fingerprint}"
    return space, projector
