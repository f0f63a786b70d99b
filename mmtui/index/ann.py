"""Vector indexes: a cosine graph with a JSON manifest sidecar, and exact search as fallback and reference.

Two graph stores (Manifest.store): hnswlib (float32, read into each process's memory; the fastest search) for
small and mid-sized catalogs, usearch (float16 inside the graph, opened memory-mapped so processes share it;
mmtui.index.usearch_graph) from USEARCH_FROM vectors on, or as the `MMTUI_VECTOR_STORE` setting says.
Each index keeps its vectors as a .npy file next to the graph (float32 for hnswlib, float16 for usearch): exact
search over a filtered subset, re-scoring and the recall self-check need them, and they load memory-mapped.
Small catalogs skip the graph entirely.
Loading an index whose manifest does not match the model raises IndexMismatchError, never wrong results.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmtui.errors import IndexMismatchError
from mmtui.index.generations import damaged

EXACT_BELOW = 512  # fewer vectors than this: exact search only (faster than a graph at this size)
GRAPH_M, EF_CONSTRUCTION, EF = 32, 200, 128  # the shipped graph (M, ef_construction) and search ef
# A filtered search scores few allowed vectors exactly and walks the graph when many are allowed: exact costs ~a
# per allowed vector, the walk ~b / (share allowed), so exact wins while m < sqrt(FILTER_CROSSING * n) with
# FILTER_CROSSING = b / a (measured by benchmarks/bench_scale.py; docs/figures.md, "One million products").
FILTER_CROSSING = 300.0
UPDATE_SHARE = 0.2  # VectorIndex.updated: at most this share of the labels added, changed or removed
DELETED_SHARE = 0.1  # and at most this share of the graph's slots left deleted (a full build beyond)
STORES = ("hnswlib", "usearch")
USEARCH_FROM = 200_000  # "auto": usearch from this many vectors (docs/figures.md, "One million products")


def choose_store(count: int, setting: str | None = None) -> str:
    """The graph store for `count` vectors: the setting ("hnswlib" | "usearch"), or by size for "auto"/None."""
    if setting in STORES:
        return setting
    return "usearch" if count >= USEARCH_FROM else "hnswlib"


@dataclass
class Manifest:
    name: str  # "image" | "text"
    model: str  # fingerprint of the search space (base model + active head)
    dim: int
    count: int
    M: int = 32
    ef_construction: int = 200
    ef: int = 128
    graph: bool = True  # False: exact search only
    build_seconds: float = 0.0
    built_at: str = ""
    recall_at_10: float | None = None  # self-check against exact search, measured at build time
    extra: dict = field(default_factory=dict)
    store: str = "hnswlib"  # the graph's library (manifests written before usearch lack it: hnswlib)


def build_digest(labels: np.ndarray, vectors: np.ndarray, store: str = "hnswlib") -> str:
    """content_digest with the shipped build parameters: what VectorIndex.build records by default."""
    return content_digest(labels, vectors, **_params(GRAPH_M, EF_CONSTRUCTION, EF, EXACT_BELOW, store))


def _params(M: int, ef_construction: int, ef: int, exact_below: int, store: str) -> dict:
    """The build parameters a digest covers (the store only when not hnswlib: older digests stay valid)."""
    params = dict(M=M, ef_construction=ef_construction, ef=ef, exact_below=exact_below)
    return params if store == "hnswlib" else {**params, "store": store}


def content_digest(labels: np.ndarray, vectors: np.ndarray, **params: object) -> str:
    """Digest of what an index is built from (labels, vectors, build parameters): equal digests, equal index."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()


class VectorIndex:
    def __init__(self, manifest: Manifest, labels: np.ndarray, vectors: np.ndarray, graph=None) -> None:
        self.manifest = manifest
        self.labels = labels  # int64 product rowids, aligned with vectors
        self.vectors = vectors  # float32 (n, dim), L2-normalised
        self.graph = graph
        # label -> position: labels are sorted rowids in practice (a binary search, no per-label dict: a dict
        # over 1M labels costs ~1 s and ~100 MB); a dict only for labels out of order
        self._sorted = bool(len(labels) < 2 or (np.diff(labels) > 0).all())
        self._position: dict[int, int] | None = None
        self._filter_mask: tuple | None = None  # (allowed array, its membership bytes over labels)

    def __len__(self) -> int:
        return len(self.labels)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def build(cls, name: str, model: str, labels: np.ndarray, vectors: np.ndarray, *, M: int = GRAPH_M,
              ef_construction: int = EF_CONSTRUCTION, ef: int = EF, exact_below: int = EXACT_BELOW,
              threads: int = 2, digest: str | None = None, store: str = "hnswlib") -> "VectorIndex":
        """`digest`: content_digest of these inputs and parameters when the caller has it (1 GB read at 1M).
        `store`: "hnswlib" or "usearch" (choose_store)."""
        labels = np.asarray(labels, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = int(vectors.shape[1]) if vectors.ndim == 2 and len(vectors) else 0
        digest = digest or content_digest(labels, vectors, **_params(M, ef_construction, ef, exact_below, store))
        started = time.perf_counter()
        graph = None
        use_graph = len(labels) >= exact_below
        if use_graph and store == "usearch":
            from mmtui.index.usearch_graph import UsearchGraph

            graph = UsearchGraph.build(dim, labels, vectors, M=M, ef_construction=ef_construction, ef=ef,
                                       threads=threads)
        elif use_graph:
            import hnswlib

            graph = hnswlib.Index(space="cosine", dim=dim)
            graph.init_index(max_elements=len(labels), ef_construction=ef_construction, M=M, random_seed=100)
            graph.set_num_threads(threads)
            graph.add_items(vectors, labels)
            graph.set_ef(ef)
        manifest = Manifest(name=name, model=model, dim=dim, count=len(labels), M=M,
                            ef_construction=ef_construction, ef=ef, graph=use_graph,
                            build_seconds=round(time.perf_counter() - started, 3),
                            built_at=time.strftime("%Y-%m-%dT%H:%M:%S"), extra={"digest": digest},
                            store=store if use_graph else "hnswlib")
        return cls(manifest, labels, vectors, graph)

    @staticmethod
    def saved_if_same(directory: Path, name: str, model: str, labels: np.ndarray, vectors: np.ndarray, *,
                      M: int = GRAPH_M, ef_construction: int = EF_CONSTRUCTION, ef: int = EF,
                      exact_below: int = EXACT_BELOW, digest: str | None = None,
                      store: str = "hnswlib") -> Manifest | None:
        """The manifest of the index saved in `directory` when it was built for `model` from exactly these
        labels, vectors and parameters (so rebuilding it would give the same index), else None."""
        path = directory / f"{name}.manifest.json"
        try:
            manifest = Manifest(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        files = [directory / f for f in VectorIndex.files(name, manifest.graph, manifest.store)]
        if manifest.model != model or not all(f.is_file() for f in files):
            return None
        digest = digest or content_digest(np.asarray(labels, dtype=np.int64),
                                          np.ascontiguousarray(vectors, dtype=np.float32),
                                          **_params(M, ef_construction, ef, exact_below, store))
        return manifest if manifest.extra.get("digest") == digest else None

    @classmethod
    def updated(cls, directory: Path, name: str, model: str, labels: np.ndarray, vectors: np.ndarray, *,
                M: int = GRAPH_M, ef_construction: int = EF_CONSTRUCTION, ef: int = EF, exact_below: int = EXACT_BELOW,
                threads: int = 2, max_share: float = UPDATE_SHARE, max_deleted: float = DELETED_SHARE,
                digest: str | None = None, store: str = "hnswlib") -> "VectorIndex | None":
        """The index for these inputs made by updating the graph saved in `directory` (hnswlib: removed labels
        marked deleted, new ones added into deleted slots first, changed ones updated in place), or None when
        a full build is due: no saved graph with the same model, M and ef_construction, more than `max_share` of the
        labels added, changed or removed, or more than `max_deleted` of the slots left deleted.

        Its manifest records the same content digest as a full build of these inputs (so the next reindex
        sees it as current), with extra "deleted_slots" (hnswlib keeps deleted elements in the file and
        counts them) and "updated_from". The caller runs the recall self-check as for a build."""
        labels = np.asarray(labels, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = int(vectors.shape[1]) if vectors.ndim == 2 and len(vectors) else 0
        try:
            old = Manifest(**json.loads((directory / f"{name}.manifest.json").read_text()))
            old_labels = np.load(directory / f"{name}.labels.npy")
            old_vectors = np.load(directory / _vectors_file(name, old.store), mmap_mode="r")
        except (OSError, ValueError, TypeError, EOFError):
            return None
        if not old.graph or old.model != model or old.dim != dim or len(labels) < exact_below or \
                (old.M, old.ef_construction, old.store) != (M, ef_construction, store) or \
                len(old_labels) != old.count or old_vectors.shape != (old.count, dim):
            return None
        started = time.perf_counter()
        added, changed, removed = _differences(old_labels, old_vectors, labels, vectors)
        if len(added) + len(changed) + len(removed) > max_share * len(labels):
            return None
        old_deleted = int(old.extra.get("deleted_slots", 0))
        digest = digest or content_digest(labels, vectors, **_params(M, ef_construction, ef, exact_below, store))
        change = {"added": int(len(added)), "changed": int(len(changed)), "removed": int(len(removed))}
        if store == "usearch":
            graph = _usearch_updated(directory / f"{name}.usearch", old, labels, vectors, added, changed, removed,
                                     max_deleted, threads)
            if graph is None:
                return None
            manifest = Manifest(name=name, model=model, dim=dim, count=len(labels), M=M,
                                ef_construction=ef_construction, ef=max(ef, old.ef), graph=True,
                                build_seconds=round(time.perf_counter() - started, 3),
                                built_at=time.strftime("%Y-%m-%dT%H:%M:%S"), store=store,
                                extra={"digest": digest, "deleted_slots": graph.deleted_slots(),
                                       "updated_from": old.extra.get("digest"), "update": change})
            graph.set_ef(manifest.ef)
            return cls(manifest, labels, vectors, graph)
        import hnswlib

        graph = hnswlib.Index(space="cosine", dim=dim)
        path = str(directory / f"{name}.hnsw")
        try:
            graph.load_index(path, max_elements=old.count + old_deleted + len(added), allow_replace_deleted=True)
        except (RuntimeError, OSError, ValueError, MemoryError):
            return None
        if graph.get_current_count() != old.count + old_deleted:
            return None
        dead = np.setdiff1d(np.asarray(graph.get_ids_list(), dtype=np.int64), old_labels)  # deleted slots' labels
        back = np.isin(labels[added], dead)  # products back under a label whose slot is deleted
        revived, new = added[back], added[~back]
        free = len(dead) - len(revived) + len(removed)
        deleted_after = free - min(free, len(new))
        if deleted_after > max_deleted * len(labels):
            return None
        graph.set_num_threads(threads)
        for label in labels[revived]:  # their own slot again (it takes the new vector below)
            graph.unmark_deleted(int(label))
        moved = np.concatenate([changed, revived])
        if len(moved):  # updated in place: hnswlib repairs the links around the moved vectors
            graph.add_items(vectors[moved], labels[moved], num_threads=threads)
        for label in removed:
            graph.mark_deleted(int(label))
        if len(new):  # deleted slots first, then new ones
            graph.add_items(vectors[new], labels[new], num_threads=threads, replace_deleted=True)
        search_ef = max(ef, old.ef)  # a search ef raised after the old build (to reach a recall) is kept
        graph.set_ef(search_ef)
        deleted_slots = graph.get_current_count() - len(labels)
        if deleted_slots != deleted_after:
            return None
        manifest = Manifest(name=name, model=model, dim=dim, count=len(labels), M=M,
                            ef_construction=ef_construction, ef=search_ef, graph=True,
                            build_seconds=round(time.perf_counter() - started, 3),
                            built_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
                            extra={"digest": digest, "deleted_slots": int(deleted_slots),
                                   "updated_from": old.extra.get("digest"), "update": change})
        return cls(manifest, labels, vectors, graph)

    @staticmethod
    def files(name: str, graph: bool, store: str = "hnswlib") -> list[str]:
        """The file names of index `name` (the manifest last)."""
        graph_file = [f"{name}.usearch" if store == "usearch" else f"{name}.hnsw"] if graph else []
        return [_vectors_file(name, store if graph else "hnswlib"), f"{name}.labels.npy", *graph_file,
                f"{name}.manifest.json"]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        name, store = self.manifest.name, self.manifest.store
        if store == "usearch":
            from mmtui.index.usearch_graph import write_f16

            write_f16(directory / _vectors_file(name, store), self.vectors)
        else:
            np.save(directory / f"{name}.vectors.npy", self.vectors)
        np.save(directory / f"{name}.labels.npy", self.labels)
        if self.graph is not None:
            path = directory / self.files(name, True, store)[2]
            self.graph.save_index(str(path))
            if store == "usearch":  # the file's own count of deleted slots (usearch reuses some on adding)
                self.manifest.extra["deleted_slots"] = self.graph.deleted_slots()
            # hnswlib does not report a failed write (a full disk): compare the size it meant to write
            if path.stat().st_size != self.graph.index_file_size():
                import errno

                raise OSError(errno.ENOSPC, "the graph file was written short (is the disk full?)", str(path))
        # the manifest is written last: an index without one is incomplete and is never loaded
        self.save_manifest(directory)

    def save_manifest(self, directory: Path) -> None:
        """The manifest alone (the other files unchanged: e.g. only the search ef was raised)."""
        (directory / f"{self.manifest.name}.manifest.json").write_text(json.dumps(asdict(self.manifest), indent=2))

    @staticmethod
    def check_model(directory: Path, name: str, expected_model: str) -> None:
        """IndexMismatchError now if index `name` was built for another model (reading its manifest only: what
        load() would say, without reading the graph). An unreadable manifest is left for load() to report."""
        try:
            model = json.loads((directory / f"{name}.manifest.json").read_text()).get("model")
        except (OSError, ValueError, AttributeError):
            return
        _check_model(name, model, expected_model)

    @classmethod
    def load(cls, directory: Path, name: str, expected_model: str) -> "VectorIndex":
        """The saved index; IndexMismatchError when it is for another model, IndexDamagedError when a file
        is missing or unreadable (never a half-loaded index)."""
        path = directory / f"{name}.manifest.json"
        if not path.exists():
            raise IndexMismatchError(f"no {name} index in {directory}", "run `mmtui build-index CATALOG`")
        try:
            manifest = Manifest(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise damaged(f"{name} index", directory, f"{path.name}: {exc}") from None
        _check_model(name, manifest.model, expected_model)
        usearch = manifest.graph and manifest.store == "usearch"
        try:
            vectors = np.load(directory / _vectors_file(name, manifest.store if manifest.graph else "hnswlib"),
                              mmap_mode="r")
            labels = np.load(directory / f"{name}.labels.npy")
        except (OSError, ValueError, EOFError) as exc:
            raise damaged(f"{name} index", directory, str(exc)) from None
        if len(labels) != manifest.count or vectors.ndim != 2 or labels.ndim != 1 or len(vectors) != len(labels) \
                or (len(labels) and vectors.shape[1] != manifest.dim) or labels.dtype != np.int64 \
                or vectors.dtype != (np.float16 if usearch else np.float32):
            raise damaged(f"{name} index", directory, "its files disagree with their manifest")
        graph = None
        if usearch:  # memory-mapped: opening costs ~nothing and processes share the pages
            from mmtui.index.usearch_graph import UsearchGraph

            try:
                graph = UsearchGraph.open(directory / f"{name}.usearch", manifest.dim, manifest.count,
                                          int(manifest.extra.get("deleted_slots", 0)))
            except ValueError as exc:
                raise damaged(f"{name} index", directory, f"{name}.usearch: {exc}") from None
            graph.set_ef(manifest.ef)
        elif manifest.graph:
            import hnswlib

            graph = hnswlib.Index(space="cosine", dim=manifest.dim)
            try:
                graph.load_index(str(directory / f"{name}.hnsw"), max_elements=manifest.count)
            except (RuntimeError, OSError, ValueError, MemoryError) as exc:
                raise damaged(f"{name} index", directory, f"{name}.hnsw: {exc}") from None
            if graph.get_current_count() != manifest.count + int(manifest.extra.get("deleted_slots", 0)):
                raise damaged(f"{name} index", directory, f"{name}.hnsw holds {graph.get_current_count()} vectors")
            graph.set_ef(manifest.ef)
            graph.set_num_threads(1)
        return cls(manifest, labels, np.asarray(vectors), graph)

    # -- searching --------------------------------------------------------------------------
    def positions(self, labels) -> np.ndarray:
        """Positions of `labels` in this index (aligned with them), -1 where a label is not in it."""
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if self._sorted:
            if not len(self.labels):
                return np.full(len(labels), -1, np.int64)
            pos = np.searchsorted(self.labels, labels)
            pos[pos >= len(self.labels)] = 0
            return np.where(self.labels[pos] == labels, pos, -1).astype(np.int64)
        if self._position is None:
            self._position = {int(l): i for i, l in enumerate(self.labels)}
        return np.fromiter((self._position.get(int(l), -1) for l in labels), dtype=np.int64, count=len(labels))

    def search(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None,
               strategy: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top k (labels, cosine scores) for one query vector. `allowed`: restrict to these labels, scored exactly
        when few are allowed and by the graph with a filter when many are (see filter_strategy; `strategy`
        "exact" or "graph" forces one)."""
        k = min(k, len(self.labels))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=np.int64)
            strategy = strategy or self.filter_strategy(len(allowed))
            if strategy == "graph" and self.graph is not None:
                found = self._filtered_graph(query, k, allowed)
                if found is not None:
                    return found
            positions = self.positions(allowed)
            return self._exact(query, k, np.sort(positions[positions >= 0]))
        if self.graph is None:
            return self._exact(query, k, None)
        self.graph.set_ef(max(self.manifest.ef, k + 1))
        try:
            labels, distances = self.graph.knn_query(query, k=k)
        except RuntimeError:  # hnswlib reached fewer than k items (a poorly connected graph): exact is always right
            return self._exact(query, k, None)
        # usearch's float16 distances as they are: re-scoring from the vectors file would make it resident too
        # (+0.5 GB an index at 1M) for no recall (exact over float16 vectors = float32's top 10, speed.md)
        return labels[0].astype(np.int64), self._cosines(1.0 - distances[0])

    def _rescored(self, query: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top k of a filtered search's candidates by float32 dot products with their stored vectors."""
        positions = self.positions(candidates)
        return self._exact(query, k, np.sort(positions[positions >= 0]))

    def filter_strategy(self, allowed_count: int) -> str:
        """"exact" (score the allowed vectors) or "graph" (walk the graph with a filter) for a filter allowing
        `allowed_count` labels: exact below sqrt(FILTER_CROSSING * n) allowed, or without a graph."""
        if self.graph is None or allowed_count * allowed_count <= FILTER_CROSSING * len(self.labels):
            return "exact"
        return "graph"

    def _filtered_graph(self, query: np.ndarray, k: int, allowed: np.ndarray):
        """The graph's top k among `allowed` labels, or None when it reaches fewer than k of them."""
        cached = self._filter_mask
        if cached is None or cached[0] is not allowed:
            top = int(max(self.labels.max(initial=0), allowed.max(initial=0))) + 1
            mask = np.zeros(top, dtype=np.uint8)
            mask[allowed[allowed >= 0]] = 1
            cached = self._filter_mask = (allowed, mask.tobytes(), mask)
        member = cached[1]
        if self.manifest.store == "usearch":  # no predicate in usearch's API: an oversampled search, then kept
            found = self.graph.filtered(query, k, cached[2], len(allowed), len(self.labels))
            return None if found is None else self._rescored(query, found, k)
        self.graph.set_ef(max(self.manifest.ef, k + 1))
        try:
            labels, distances = self.graph.knn_query(query, k=k, filter=member.__getitem__)
        except RuntimeError:  # fewer than k allowed labels reachable
            return None
        return labels[0].astype(np.int64), self._cosines(1.0 - distances[0])

    def _cosines(self, scores: np.ndarray) -> np.ndarray:
        """Scores checked to be cosines (vectors and queries are unit length): a value far outside [-1, 1]
        or not finite means a damaged file, an error rather than a wrong ranking. Rounding is clamped."""
        scores = np.asarray(scores, dtype=np.float32)
        if len(scores) and not (np.isfinite(scores).all() and np.abs(scores).max() <= 1.01):
            raise damaged(f"{self.manifest.name} index", "this data directory",
                          "it gives scores outside the cosine range")
        return np.clip(scores, -1.0, 1.0)

    def exact(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._exact(np.asarray(query, np.float32).reshape(-1), min(k, len(self.labels)), None)

    def _exact(self, query: np.ndarray, k: int, positions: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.vectors if positions is None else self.vectors[positions]
        if len(vectors) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        scores = vectors @ query
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        labels = self.labels[top] if positions is None else self.labels[positions[top]]
        return labels.astype(np.int64), self._cosines(scores[top])

    def vector_of(self, label: int) -> np.ndarray | None:
        pos = int(self.positions([label])[0])
        return None if pos < 0 else np.asarray(self.vectors[pos], dtype=np.float32)

    def recall_check(self, queries: np.ndarray, k: int = 10, kth: np.ndarray | None = None) -> float:
        """Mean recall@k of the graph against exact search over `queries` (1.0 without a graph).

        Ties count: catalogs hold products with identical texts or images, whose vectors are equal, and
        which of two equal vectors a search returns is arbitrary. A graph result is a hit when its true
        score reaches the exact k-th best score (within float rounding). `kth`: those scores when the caller
        has them (_kth_scores: the exact search, the costly part at 1M).
        """
        if self.graph is None or len(queries) == 0:
            return 1.0
        k = min(k, len(self.labels))
        queries = np.asarray(queries, np.float32)
        kth = self._kth_scores(queries, k) if kth is None else kth
        hits = []
        for row, found_labels in enumerate(self._graph_results(queries, k)):
            positions = self.positions(found_labels)
            found = np.asarray(self.vectors[np.sort(positions[positions >= 0])], np.float32) @ queries[row]
            hits.append(min(int((found >= kth[row] - 1e-5).sum()), k) / k)
        return float(np.mean(hits))

    def _kth_scores(self, queries: np.ndarray, k: int, chunk: int = 65536) -> np.ndarray:
        """Each query's exact k-th best score, the vectors read a chunk at a time (200 queries x 1M scores in
        one matrix is 0.8 GB)."""
        best = np.full((len(queries), 0), -np.inf, np.float32)
        for s in range(0, len(self.labels), chunk):
            scores = queries @ np.asarray(self.vectors[s:s + chunk], np.float32).T
            both = np.concatenate([best, scores], axis=1)
            keep = min(k, both.shape[1])
            best = -np.partition(-both, keep - 1, axis=1)[:, :keep]
        return best.min(axis=1)

    def tune_ef(self, queries: np.ndarray, target: float = 0.98, k: int = 10, max_ef: int = 1024) -> float:
        """Raise the search ef (M and ef_construction unchanged: no rebuild) until recall_check over `queries`
        reaches `target`, by steps of 1.5x from the manifest's ef up to max_ef; the ef found is kept in the
        manifest (saved with the index, used by every search). Returns the recall at that ef."""
        return self.tune_ef_sets({"queries": queries}, target, k, max_ef).get("queries", 1.0)  # none: nothing to miss

    def tune_ef_sets(self, sets: dict[str, np.ndarray], target: float = 0.98, k: int = 10,
                     max_ef: int = 1024) -> dict[str, float]:
        """tune_ef over named query sets; returns each set's recall@k at the ef found (1.0 without a graph).
        Each set's exact search runs once, not once per ef tried."""
        if self.graph is None:
            return {name: 1.0 for name in sets}
        sets = {name: np.asarray(q, np.float32) for name, q in sets.items() if len(q)}
        kth = {name: self._kth_scores(q, min(k, len(self.labels))) for name, q in sets.items()}
        ef = self.manifest.ef
        while True:
            self.graph.set_ef(max(ef, k + 1))
            recalls = {name: self.recall_check(q, k, kth[name]) for name, q in sets.items()}
            if min(recalls.values(), default=1.0) >= target or ef >= max_ef:
                break
            ef = min(max_ef, int(ef * 1.5))
        self.manifest.ef = ef
        if k == 10:
            self.manifest.recall_at_10 = round(min(recalls.values(), default=1.0), 4)
        return recalls

    def _graph_results(self, queries: np.ndarray, k: int) -> list[np.ndarray]:
        """The graph's labels for each query. A poorly connected graph can reach fewer than k items, and then
        hnswlib refuses the whole batch: such a query gets the most it can reach (missing results count as misses)."""
        try:
            return list(self.graph.knn_query(queries, k=k)[0])
        except RuntimeError:
            pass
        results = []
        for query in queries:
            for reachable in range(k, 0, -1):
                try:
                    results.append(self.graph.knn_query(query, k=reachable)[0][0])
                    break
                except RuntimeError:
                    continue
            else:
                results.append(np.zeros(0, np.int64))
        return results


def _check_model(name: str, model: str | None, expected_model: str) -> None:
    if model != expected_model:
        raise IndexMismatchError(
            f"the {name} index was built for model {model}, but the active model is {expected_model}",
            "run `mmtui build-index CATALOG` (or `mmtui use NAME` back) so the index matches the model")


def _vectors_file(name: str, store: str) -> str:
    return f"{name}.vectors.f16.npy" if store == "usearch" else f"{name}.vectors.npy"


def _usearch_updated(path: Path, old: Manifest, labels: np.ndarray, vectors: np.ndarray, added: np.ndarray,
                     changed: np.ndarray, removed: np.ndarray, max_deleted: float, threads: int):
    """The saved usearch graph read into memory and changed: removed and changed labels removed, changed and
    added ones added (usearch reuses deleted slots first). None when the file does not open or too many slots
    would stay deleted (a full build then)."""
    from mmtui.index.usearch_graph import UsearchGraph

    old_deleted = int(old.extra.get("deleted_slots", 0))
    if old_deleted + len(removed) - len(added) > max_deleted * len(labels):
        return None
    try:
        graph = UsearchGraph.open(path, old.dim, old.count, old_deleted, view=False,
                                  ef_construction=old.ef_construction)
    except ValueError:
        return None
    graph.remove(np.concatenate([labels[changed], removed]))
    moved = np.concatenate([changed, added])
    graph.add(labels[moved], vectors[moved], threads)
    return graph


def _differences(old_labels: np.ndarray, old_vectors: np.ndarray, labels: np.ndarray, vectors: np.ndarray,
                 chunk: int = 65536) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(added, changed, removed): positions in `labels` of labels not in `old_labels` and of those whose vector
    differs, and the labels only in `old_labels`. The old vectors are read a chunk at a time (they may be
    memory-mapped)."""
    order = np.argsort(old_labels, kind="stable")
    ordered = old_labels[order]
    if len(ordered):
        at = np.minimum(np.searchsorted(ordered, labels), len(ordered) - 1)
        known = ordered[at] == labels
    else:
        at, known = np.zeros(len(labels), dtype=np.int64), np.zeros(len(labels), dtype=bool)
    old_rows = np.where(known, order[at] if len(ordered) else 0, -1)
    both = np.flatnonzero(known)
    differs = np.zeros(len(both), dtype=bool)
    for s in range(0, len(both), chunk):
        rows = both[s:s + chunk]
        old = np.asarray(old_vectors[old_rows[rows]])  # float16 for usearch: compared at that precision
        differs[s:s + chunk] = np.any(old != vectors[rows].astype(old.dtype, copy=False), axis=1)
    still = np.zeros(len(old_labels), dtype=bool)
    still[old_rows[both]] = True
    return np.flatnonzero(~known), both[differs], old_labels[~still]
