"""The search-backend interface: where a query's candidate lists come from.

SearchService (mmtui.query.service) owns one backend and asks it for candidates per signal; the local files
(mmtui.index.backends.local) and a Qdrant collection (mmtui.index.backends.qdrant.search) implement it. The
service fuses the lists, applies the query understanding and reads the products' rows from the store: a backend
holds only what searches read, and the SQLite store stays the source of truth.

Optional capabilities default to what a backend without them does: nothing to prepare, no background load,
filters as rowids, one call per signal.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, Protocol

import numpy as np

from mmtui.errors import MmtuiError

Ranked = list[tuple[int, float]]  # [(rowid, score)] best first
VECTOR_INDEXES = ("image", "text", "fused")  # "fused" is optional: indexes built before it existed lack it


class VectorSource(Protocol):
    """One searchable set of product vectors (an hnswlib graph, or a named vector of a Qdrant collection)."""

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]: ...

    def vector_of(self, rowid: int) -> np.ndarray | None: ...

    @property
    def labels(self) -> np.ndarray: ...

    @property
    def vectors(self) -> np.ndarray: ...

    def __len__(self) -> int: ...


class SearchBackend(ABC):
    """What SearchService asks of the place a data dir's searchable copy lives."""

    @abstractmethod
    def current(self) -> tuple[Mapping[str, VectorSource], dict[str, MmtuiError]]:
        """(indexes, damaged) that searches read now: one query takes both from one call, so it never mixes two
        generations. `damaged` maps an index name to the error a query that needs it raises."""

    def stale(self) -> bool:
        """Whether a writer made a newer copy since this one was loaded (the service then reloads)."""
        return False

    @abstractmethod
    def reload(self, space: str, projector: Any) -> None:
        """Read what searches use again, for the active model's search space and projector."""

    @abstractmethod
    def lexical(self, query: str, n: int, where: str = "1", params: Sequence = (),
                allowed: np.ndarray | None = None) -> Ranked:
        """BM25 candidates for the query's words; `where`/`params` is the filter as SQL, `allowed` its rowids."""

    def prepare(self, names: Sequence[str]) -> None:
        """Make the named indexes ready before a query uses them (damage is then known); nothing by default."""

    def preload(self, names: Sequence[str] | None = None) -> threading.Thread | None:
        """Read the named indexes (default all) in the background; None when there is nothing to read."""
        return None

    def allowed(self, rowids: np.ndarray, filters: Sequence) -> np.ndarray:
        """The rowids a filter allows, in the form this backend searches with."""
        return rowids

    def signal_lists(self, signals: Sequence[str], query: str, vector: np.ndarray | Callable[[], np.ndarray] | None,
                     n: int, where: str, params: Sequence, allowed: np.ndarray | None,
                     indexes: Mapping[str, VectorSource], pool: Executor | None = None) -> dict[str, Ranked]:
        """Each signal's top n candidates, lexical first, then the vector indexes. `vector`: the query's vector, or
        a function that encodes it (called once, when a vector index is searched). `pool`: threads to run the
        signals side by side: lexical starts there while this thread encodes the query, the first vector index is
        searched here and the others there. usearch, numpy and ONNX Runtime release the GIL, so at 1M products the
        image graph's search overlaps the text graph's and the lexical one (benchmarks/results/speed.md)."""
        names = [name for name in VECTOR_INDEXES if name in signals]
        encode = vector if callable(vector) else (lambda: vector)
        if pool is None:
            ranked = {"lexical": self.lexical(query, n, where, params, allowed)} if "lexical" in signals else {}
            query_vector = encode() if names else None
            ranked.update({name: vector_hits(indexes, name, query_vector, n, allowed) for name in names})
            return ranked
        lexical = pool.submit(self.lexical, query, n, where, params, allowed) if "lexical" in signals else None
        query_vector = encode() if names else None
        later = {name: pool.submit(vector_hits, indexes, name, query_vector, n, allowed) for name in names[1:]}
        here = {name: vector_hits(indexes, name, query_vector, n, allowed) for name in names[:1]}
        ranked = {"lexical": lexical.result()} if lexical is not None else {}
        ranked.update(here)
        ranked.update({name: future.result() for name, future in later.items()})
        return ranked

    def close(self) -> None:
        """Release what the backend holds open (the store is the service's)."""


def vector_hits(indexes: Mapping[str, VectorSource], name: str, vector: np.ndarray, n: int,
                allowed: np.ndarray | None = None) -> Ranked:
    labels, scores = indexes[name].search(vector, n, allowed)
    return list(zip(labels.tolist(), scores.tolist()))
