"""The self-check's query-like probes as stored: texts of mmtui.catalog.probes and their raw text vectors (the base
model's, before any projector), in the store's meta under PROBES_KEY, for one base model fingerprint. The build
writes them; reindex reads them (also when run alone: `mmtui use`, promote, a new fusion weight), projects them
like queries and checks each graph on them as well as on product texts (mmtui.index.writer)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

import numpy as np

PROBES_KEY = "ann_probes"
VERSION = 1  # of the probe making (mmtui.catalog.probes): a new one re-checks every graph once


@dataclass(frozen=True)
class Probes:
    model: str  # the base fingerprint the vectors were encoded with
    texts: list[str]
    vectors: np.ndarray  # float32 (len(texts), dim), raw: the projector is applied by the reader
    products: int = 0  # the catalog's size when they were made

    @property
    def digest(self) -> str:
        """What a graph's manifest records as checked on ("check"): the probe version, model and vectors."""
        h = hashlib.sha1(f"{VERSION}:{self.model}:".encode())
        h.update(np.ascontiguousarray(self.vectors, np.float32).tobytes())
        return f"v{VERSION}-{h.hexdigest()[:12]}"


def save_probes(store, model: str, texts: list[str], vectors: np.ndarray, products: int = 0) -> Probes:
    vectors = np.ascontiguousarray(vectors, np.float32)
    if vectors.ndim != 2 or len(vectors) != len(texts):
        raise ValueError(f"{len(texts)} probe texts but vectors of shape {vectors.shape}")
    store.set_meta(PROBES_KEY, json.dumps({"version": VERSION, "model": model, "products": products, "texts": texts,
                                           "dim": int(vectors.shape[1]),
                                           "vectors": base64.b64encode(vectors.tobytes()).decode()}))
    return Probes(model, list(texts), vectors, products)


def load_probes(store, model: str | None) -> Probes | None:
    """The stored probes when they were made by this probe version for base model `model`, else None (an older
    store, another model: the self-check uses product texts only, as before probes)."""
    raw = store.get_meta(PROBES_KEY)
    if not raw or not model:
        return None
    try:
        data = json.loads(raw)
        if data.get("version") != VERSION or data.get("model") != model:
            return None
        vectors = np.frombuffer(base64.b64decode(data["vectors"]), np.float32).reshape(-1, int(data["dim"]))
        texts = [str(t) for t in data["texts"]]
        products = int(data.get("products", 0))
    except (ValueError, KeyError, TypeError):
        return None  # damaged: no probes rather than a failed reindex
    return Probes(model, texts, vectors.copy(), products) if len(texts) == len(vectors) and len(texts) else None
