"""The local backend: a data dir's graphs (hnswlib, or usearch memory-mapped) and lexical.npz, in the current
generation of DATA_DIR/ann.

Each graph is read when a query first needs it (LazyIndexes: ~1.3 GB a graph at 1M products, so an image query
need not wait for the text and fused graphs, nor hold them in memory). A writer that commits a new generation is
noticed by one stat per query (stale()); the service then reloads between queries. Lexical queries are answered
from lexical.npz while it matches the store's products_fts, and by FTS5 otherwise (same hits and scores).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmtui.errors import IndexMismatchError
from mmtui.index.ann import VectorIndex
from mmtui.index.backends.base import VECTOR_INDEXES, Ranked, SearchBackend
from mmtui.index.generations import IndexDamagedError, current, index_of, stamp
from mmtui.index.lexical import FastLexical
from mmtui.store.datadir import is_locked, lock_holder
from mmtui.store.db import COMMON_WORD_SHARE, fts_words


class LocalBackend(SearchBackend):
    """The hnswlib graphs and the BM25 arrays of the current generation (mmtui.index.generations)."""

    def __init__(self, settings, store, space: str) -> None:
        self.settings, self.store = settings, store
        self._load(space)

    def _load(self, space: str) -> None:
        loaded = _load_indexes(self.settings, space)
        self._snapshot = (loaded.indexes, loaded.damaged)  # replaced as one: a query takes both from one generation
        self.stamp = loaded.stamp
        usable = loaded.directory is not None and "lexical" not in loaded.damaged
        self._fast_lexical = FastLexical(loaded.directory) if usable else None

    def current(self):
        return self._snapshot

    def stale(self) -> bool:
        return self.stamp is not None and stamp(self.settings.ann_dir) != self.stamp

    def reload(self, space: str, projector=None) -> None:
        self._load(space)

    def prepare(self, names: Sequence[str]) -> None:
        indexes, _ = self._snapshot
        if isinstance(indexes, LazyIndexes):
            for name in names:
                indexes.load(name)

    def preload(self, names: Sequence[str] | None = None) -> threading.Thread:
        """Read the indexes (`names`, default all) on a background thread, in that order: a query that needs one
        still being read waits for it, never uses it half-read."""
        indexes, _ = self._snapshot
        names = list(indexes) if names is None else [n for n in names if n in indexes]
        thread = threading.Thread(target=self.prepare, args=(names,), name="mmtui-preload", daemon=True)
        thread.start()
        return thread

    @property
    def lexical_index(self):
        """The in-memory BM25 index when it matches the store's products_fts now (None: FTS5 answers)."""
        return self._fast_lexical.current(self.store.db.conn) if self._fast_lexical is not None else None

    def lexical(self, query: str, n: int, where: str = "1", params: Sequence = (),
                allowed: np.ndarray | None = None) -> Ranked:
        return lexical_hits(self.store, self._fast_lexical, query, n, where, params, allowed)


def lexical_hits(store, fast: FastLexical | None, query: str, n: int, where: str = "1", params: Sequence = (),
                 allowed: np.ndarray | None = None) -> Ranked:
    """lexical.npz's BM25 (`fast`), or FTS5's when it cannot answer exactly: the same hits and scores. A filter
    is answered in memory when its rowids are known (`allowed`), else by FTS5 with the SQL join."""
    if fast is not None and (allowed is not None or (where == "1" and not params)):
        hits = fast.query(store.db.conn, fts_words(query), n, allowed, COMMON_WORD_SHARE)
        if hits is not None:
            return hits
    return store.lexical(query, n, where, list(params))


@dataclass
class _Loaded:
    indexes: dict  # name -> VectorIndex
    damaged: dict  # name -> IndexDamagedError ("lexical" included: FTS5 answers then)
    stamp: tuple | None
    directory: Path | None  # the generation's directory (lexical.npz)


def _load_indexes(settings, space: str) -> _Loaded:
    """The current generation's image and text indexes, and the fused one when it has it, each read when a query
    first needs it (LazyIndexes). The generation's other files (lexical.npz) are checked now: those that fail their
    checks (mmtui.index.generations) are damaged, reported when a query needs them."""
    ann_dir = settings.ann_dir
    try:
        gen = current(ann_dir)
    except IndexDamagedError as exc:  # the pointer itself: every index, lexical through FTS5
        return _Loaded({}, {name: exc for name in (*VECTOR_INDEXES, "lexical")}, stamp(ann_dir), None)
    if gen is None:
        raise IndexMismatchError(f"no image index in {ann_dir}", "run `mmtui build-index CATALOG`")
    others = {index_of(f) for f in (gen.files or {})} - set(VECTOR_INDEXES)
    damaged = gen.damaged_indexes(names=others) if others else {}
    names = [name for name in VECTOR_INDEXES if name != "fused" or gen.has("fused.manifest.json")]
    for name in names:  # an index for another model is an error at open, as when the graphs were read here
        try:
            VectorIndex.check_model(gen.dir, name, space)
        except IndexMismatchError:
            _raise_if_being_rewritten(settings.data_dir)
            raise
    return _Loaded(LazyIndexes(settings, gen, space, names, damaged), damaged, gen.stamp, gen.dir)


class LazyIndexes(Mapping):
    """The vector indexes of one generation, name -> VectorIndex, each read when first asked for: its files are
    checked (mmtui.index.generations: sizes, checksums of the graph and small files) and the graph loaded (~1.3 GB
    for 1M products, so an image query need not wait for the text and fused graphs, nor hold them in memory).

    Loads happen under one lock and an index is published only once loaded in full: a query, or the background
    load of preload(), never sees half an index. A damaged index goes to `damaged` (shared with the service)."""

    def __init__(self, settings, gen, space: str, names: list[str], damaged: dict) -> None:
        self._settings, self._gen, self._space = settings, gen, space
        self._names = list(names)
        self.damaged = damaged
        self._loaded: dict = {}
        self._lock = threading.Lock()

    def __getitem__(self, name: str):
        index = self._loaded.get(name)
        if index is not None:
            return index
        if name not in self._names:
            raise KeyError(name)
        if not self.load(name):
            error = self.damaged[name]
            raise type(error)(error.message, error.hint)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:  # without loading it (Mapping's would)
        return name in self._names and name not in self.damaged

    def __iter__(self):
        return iter([name for name in self._names if name not in self.damaged])

    def __len__(self) -> int:
        return len(list(iter(self)))

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    def load(self, name: str) -> bool:
        """Load index `name` now unless it is (True), or absent or damaged (False: see `damaged`)."""
        if name in self._loaded:
            return True
        if name not in self._names:
            return False
        with self._lock:
            if name in self._loaded:
                return True
            if name in self.damaged:
                return False
            problems = self._gen.damaged_indexes(names={name})
            if problems:
                self.damaged.update(problems)
                return False
            try:
                index = VectorIndex.load(self._gen.dir, name, self._space)
            except IndexDamagedError as exc:
                self.damaged[name] = exc
                return False
            except IndexMismatchError:
                _raise_if_being_rewritten(self._settings.data_dir)
                raise
            self._loaded[name] = index
            return True


def _raise_if_being_rewritten(data_dir) -> None:
    """An index for another model than the store's while a writer holds the data dir: a `use` or a build with
    another model is between switching the model and committing the new indexes. Say so, not "rebuild"."""
    if is_locked(data_dir):
        raise IndexMismatchError(f"the index in {data_dir} is being rewritten for another model by another process "
                                 f"({lock_holder(data_dir) or 'unknown'})", "search again when it has finished")
