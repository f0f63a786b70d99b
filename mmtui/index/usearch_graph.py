"""The usearch graph behind a VectorIndex for large catalogs: float16 vectors inside the graph, the file opened
memory-mapped (`view`) so any number of searching processes share one copy through the page cache.

UsearchGraph answers the subset of hnswlib's Index that VectorIndex uses (set_ef, knn_query returning
cosine distances and raising RuntimeError when fewer than k are reached, save_index, index_file_size,
get_current_count), so the index code keeps one path for both. usearch's Python API has no filter predicate:
a filtered search oversamples the graph and keeps the allowed labels (`filtered`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DTYPE = "f16"  # recall@10 without re-scoring 0.999 at 100k (i8: 0.90), half hnswlib's float32 (speed.md)
CHUNK = 65536  # vectors added at a time: the build converts a chunk, never a second copy of all of them
OVERSAMPLE = 1.5  # a filtered search asks the graph for k * n / allowed * OVERSAMPLE candidates


def _usearch_index():
    """usearch's Index class, with onnxruntime imported first: the other order crashes the process (encoders/ort.py)."""
    from mmtui.encoders import ort
    from mmtui.errors import ModelError

    try:
        ort.load()
    except (ImportError, ModelError):  # not installed, or usearch came first: queries then encode with torch
        pass

    from usearch.index import Index

    return Index


class UsearchGraph:
    def __init__(self, index, dim: int, count: int, deleted: int = 0) -> None:
        self.index = index
        self.dim = dim
        self._count = count + deleted  # slots, as hnswlib counts them (deleted ones included)
        self.ef = 128

    # -- making ---------------------------------------------------------------------------------
    @classmethod
    def build(cls, dim: int, labels: np.ndarray, vectors, *, M: int, ef_construction: int, ef: int,
              threads: int) -> "UsearchGraph":
        Index = _usearch_index()
        index = Index(ndim=dim, metric="cos", dtype=DTYPE, connectivity=M, expansion_add=ef_construction,
                      expansion_search=ef)
        for s in range(0, len(labels), CHUNK):
            index.add(np.asarray(labels[s:s + CHUNK], dtype=np.uint64),
                      np.ascontiguousarray(vectors[s:s + CHUNK], dtype=np.float32), threads=threads)
        graph = cls(index, dim, len(labels))
        graph.set_ef(ef)
        return graph

    @classmethod
    def open(cls, path: Path, dim: int, count: int, deleted: int = 0, *, view: bool = True,
             ef_construction: int | None = None) -> "UsearchGraph":
        """The saved graph, memory-mapped read-only (`view`) or read into memory to be changed. ValueError when the
        file is not a usearch graph of `dim` float16 vectors holding `count` live and `deleted` deleted slots.
        `ef_construction`: the expansion vectors added from now on get (the file does not keep it)."""
        Index = _usearch_index()
        try:
            meta = Index.metadata(str(path))
        except (RuntimeError, OSError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        if meta is None or int(meta["dimensions"]) != dim or str(meta["kind_scalar"]).split(".")[-1].lower() \
                != DTYPE or (int(meta["count_present"]), int(meta["count_deleted"])) != (count, deleted):
            raise ValueError(f"its header does not match the manifest ({meta})")
        index = Index(ndim=dim, metric="cos", dtype=DTYPE, enable_key_lookups=not view)
        try:
            index.view(str(path)) if view else index.load(str(path))
        except (RuntimeError, OSError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        if ef_construction is not None:  # else usearch's default 128, whatever the graph was built with
            index.expansion_add = int(ef_construction)
        return cls(index, dim, count, deleted)

    def deleted_slots(self) -> int:
        return self._count - len(self.index)

    def remove(self, labels: np.ndarray) -> None:
        if len(labels):
            self.index.remove(np.asarray(labels, dtype=np.uint64))

    def add(self, labels: np.ndarray, vectors: np.ndarray, threads: int) -> None:
        """New labels (a label already in the graph must be removed first). Deleted slots are reused first."""
        for s in range(0, len(labels), CHUNK):
            self.index.add(np.asarray(labels[s:s + CHUNK], dtype=np.uint64),
                           np.ascontiguousarray(vectors[s:s + CHUNK], dtype=np.float32), threads=threads)
        self._count = max(self._count, len(self.index))

    def save_index(self, path: str) -> None:
        self.index.save(path)
        meta = _usearch_index().metadata(path)
        self._count = int(meta["count_present"]) + int(meta["count_deleted"])

    def index_file_size(self) -> int:
        return int(self.index.serialized_length)

    # -- hnswlib's interface, as VectorIndex uses it ----------------------------------------------
    def get_current_count(self) -> int:
        return self._count

    def set_num_threads(self, threads: int) -> None:
        pass  # given per call

    def set_ef(self, ef: int) -> None:
        self.ef = int(ef)
        self.index.expansion_search = int(ef)

    def knn_query(self, queries, k: int = 1, filter=None, num_threads: int = 1):
        """(labels, cosine distances), each (queries, k); RuntimeError when a query reached fewer than k."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        self.index.expansion_search = max(self.ef, k)
        found = self.index.search(queries, k, threads=num_threads)
        counts = np.atleast_1d(getattr(found, "counts", len(found.keys)))
        keys = np.atleast_2d(found.keys)
        if (counts < k).any():
            raise RuntimeError(f"the graph reached {int(counts.min())} of {k} items")
        return keys.astype(np.int64), np.atleast_2d(found.distances).astype(np.float32)

    def filtered(self, query: np.ndarray, k: int, member: np.ndarray, allowed: int, n: int) -> np.ndarray | None:
        """At least k candidate labels allowed by `member` (uint8 by label) from an oversampled search, None when
        the graph reached fewer than k of them (the caller then scores the allowed vectors exactly)."""
        want = min(n, int(k * n / max(allowed, 1) * OVERSAMPLE) + k)
        self.index.expansion_search = max(self.ef, want)
        found = np.asarray(self.index.search(np.asarray(query, np.float32), want, threads=1).keys, dtype=np.int64)
        found = found[(found >= 0) & (found < len(member))]
        keep = found[member[found] == 1]
        return keep if len(keep) >= k else None


def write_f16(path: Path, vectors, chunk: int = CHUNK) -> None:
    """vectors as a float16 .npy, converted a chunk at a time (the float32 input is never copied whole)."""
    n = len(vectors)
    dim = int(vectors.shape[1]) if n else 0
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))
    for s in range(0, n, chunk):
        out[s:s + chunk] = np.asarray(vectors[s:s + chunk], dtype=np.float32)
    out.flush()
    del out
    if os.path.getsize(path) < n * dim * 2:
        import errno

        raise OSError(errno.ENOSPC, "the vectors file was written short (is the disk full?)", str(path))
