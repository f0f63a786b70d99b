"""SearchService: a query (text or image) -> vectors -> candidates -> fusion and filters -> Hits.

One service per process: the store, the ANN indexes and the model are opened once and reused.
The model is loaded on first use (or explicitly with `load_model()`, which the TUI calls in a worker).

The store, ann, projection, catalog and encoder modules (numpy, sqlite-utils, PIL) are imported inside the
methods that use them: the TUI imports this module for Hit and MODES before Textual starts, and opens the
service on another thread meanwhile.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from mmtui.errors import IndexMismatchError, MmtuiError, QueryError
from mmtui.store.filters import where_sql
from mmtui.query.hybrid import default_weights, fuse_ranked, hybrid_weights
from mmtui.store.tags import product_tags

MODES = ("image", "text", "lexical", "hybrid", "fused")
VECTOR_INDEXES = ("image", "text", "fused")  # "fused" is optional: indexes built before it existed lack it


@dataclass
class Hit:
    id: str
    title: str
    score: float
    rank: int = 0
    category: str = ""
    colour: str = ""
    gender: str = ""
    brand: str = ""
    price: float | None = None
    image_path: str | None = None  # a local, validated image file, or None (text-only product)
    image_status: str = "ok"
    signals: dict[str, float] = field(default_factory=dict)  # per-signal score, e.g. {"image": 0.31}
    attributes: dict[str, Any] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)  # each signal's share of the fused score (sums to 1)
    tags: list[str] = field(default_factory=list)  # zero-shot image tags (mmtui.build.enrich), e.g. ["blue", "striped"]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchResult:
    mode: str
    hits: list[Hit]
    query: str | None = None  # the text, or the image path for image queries
    kind: str = "text"  # "text" | "image"
    took_ms: float = 0.0
    understood: Any = None  # mmtui.query.understanding.parse.Understanding of a text query (None: nothing to understand)

    def to_json(self) -> dict[str, Any]:
        out = {"query": self.query, "kind": self.kind, "mode": self.mode, "took_ms": round(self.took_ms, 2),
               "hits": [h.to_json() for h in self.hits]}
        if self.understood is not None:
            out["understood"] = self.understood.to_json()
        return out


CANDIDATES = 100  # per-signal candidates fused in hybrid mode


class SearchService:
    """Opened once per process; every search reuses the store, the indexes and the model."""

    def __init__(self, settings, store, indexes: dict, projector, space: str, encoder=None, *,
                 damaged: dict | None = None, stamp: tuple | None = None, remote=None) -> None:
        self.settings = settings
        self.store = store
        self.indexes = indexes  # {"image": VectorIndex, "text": VectorIndex[, "fused": VectorIndex]}
        self.damaged = damaged if damaged is not None else {}  # (the lazy indexes add to it) index name -> IndexDamagedError (mmtui.index.generations), raised when needed
        self._snapshot = (self.indexes, self.damaged)  # replaced as one: a query takes both from one generation
        self._stamp = stamp  # generations.stamp() of the loaded generation: a new one is loaded between queries
        self._reload_lock = __import__("threading").Lock()
        self.projector = projector
        self.space = space
        self._encoder = encoder
        self._encoder_lock = threading.Lock()
        self._query_cache: dict[str, Any] = {}
        self._allowed_cache: dict[tuple, Any] = {}  # filter -> allowed rowids, while the products are unchanged
        self._allowed_version: tuple = ()
        self._filter_columns = None  # mmtui.index.filter_columns.FilterColumns of the current products
        self._threads_checked = 0.0  # time.monotonic() of the last look at the machine's load
        self._understanding = None  # mmtui.query.understanding.state.State of the current products (made on first use)
        self.remote = remote  # mmtui.index.backends.qdrant.search.QdrantRemote when the data dir's index is on Qdrant
        if remote is not None:
            self.indexes = remote.attach(self)
            self._snapshot = (self.indexes, self.damaged)

    @classmethod
    def open(cls, settings, encoder=None) -> "SearchService":
        from mmtui.encoders.projection import search_space
        from mmtui.store.db import Store

        start_watching_load()
        store = Store.open(settings.db_path)
        built_with = store.get_meta("base_model")
        if settings.model and built_with and settings.model != built_with:
            raise IndexMismatchError(
                f"this index was built with model {built_with!r}, not {settings.model!r}",
                f"run `mmtui build-index CATALOG --model {settings.model}` (into another --data-dir to keep both), "
                f"or drop --model to search with {built_with!r}")
        space, projector = search_space(store, settings)
        from mmtui.index.backends.spec import stored_backend

        backend = stored_backend(store)
        if backend.is_qdrant:  # candidates from a Qdrant collection (mmtui.index.backends.qdrant.search)
            from mmtui.index.backends.qdrant.search import QdrantRemote

            remote = QdrantRemote.open(backend, store, space)
            if encoder is not None:
                cls._check_encoder(store, encoder)
            return cls(settings, store, {}, projector, space, encoder, remote=remote)
        loaded = _load_indexes(settings, space)
        _use_lexical(store, loaded)
        if encoder is not None:
            cls._check_encoder(store, encoder)
        return cls(settings, store, loaded.indexes, projector, space, encoder, damaged=loaded.damaged,
                   stamp=loaded.stamp)

    @staticmethod
    def _check_encoder(store, encoder) -> None:
        if encoder.fingerprint != store.get_meta("base_fingerprint"):
            raise IndexMismatchError(
                f"model {encoder.name!r} (fingerprint {encoder.fingerprint}) is not the model this index was built "
                f"with (fingerprint {store.get_meta('base_fingerprint')})",
                "run `mmtui build-index CATALOG` again so the index matches the model")

    # -- model -------------------------------------------------------------------------------
    @property
    def model_ready(self) -> bool:
        return self._encoder is not None

    def load_model(self) -> None:
        """Load the model ahead of the first query (the TUI does this in the background), and run it once:
        first calls set up kernels and prepacked weights (~0.2 s) that a user's first query would otherwise wait for."""
        self.encoder.encode_texts(["warm up"])
        self.understand("warm up")
        if self._understanding is not None:  # the understanding's own word model loads on the first word it has
            from mmtui.encoders.words import phrase_vectors  # never seen (~0.1 s): now, not in a shopper's query

            phrase_vectors(["warm"])

    def preload(self, names=None) -> threading.Thread:
        """Read the indexes (`names`, default all) on a background thread, in that order: a query that needs one
        still being read waits for it, never uses it half-read. Returns the thread (join() to wait)."""
        indexes, _ = self._current()
        names = list(indexes) if names is None else [n for n in names if n in indexes]

        def run() -> None:
            for name in names:
                if isinstance(indexes, LazyIndexes):
                    indexes.load(name)

        thread = threading.Thread(target=run, name="mmtui-preload", daemon=True)
        thread.start()
        return thread

    @property
    def encoder(self):
        with self._encoder_lock:
            if self._encoder is None:
                from mmtui.encoders.for_index import open_encoder

                set_query_threads()
                encoder = open_encoder(self.settings, self.store)
                self._check_encoder(self.store, encoder)
                self._encoder = encoder
            return self._encoder

    def _retune_threads(self) -> None:
        """Follow the machine's load: the thread count of set_query_threads, looked at every few seconds."""
        now = time.monotonic()
        if now - self._threads_checked < THREADS_RECHECK_S:
            return
        self._threads_checked = now
        import torch

        wanted = query_thread_count()
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    @property
    def model_name(self) -> str:
        from mmtui.encoders.projection import active_name

        base = self.store.get_meta("base_model") or "?"
        active = active_name(self.store)
        return base if active == "base" else f"{base}+{active}"

    def query_vector(self, text: str):
        """The query text encoded and projected into the search space (cached per process)."""
        vector = self._query_cache.get(text)
        if vector is None:
            encoder = self.encoder
            self._retune_threads()
            vector = self.projector.text(encoder.encode_texts([text]))[0]
            if len(self._query_cache) > 2048:
                self._query_cache.clear()
            self._query_cache[text] = vector
        return vector

    # -- searching ---------------------------------------------------------------------------
    def understand(self, query: str, drop=()):
        """What the query asks for in this catalog's facets (mmtui.query.understanding.parse), without the parts in `drop`
        (facet names, or "price"); None when the catalog has no facets to understand."""
        from mmtui.query.understanding.state import understanding_of

        return understanding_of(self, query, drop)

    def search(self, query: str, *, k: int = 20, mode: str = "hybrid", filters=None, understand: bool = True,
               drop=()) -> SearchResult:
        """`understand`: read the kind, person, colour and price the words ask for and rank by them (hybrid mode;
        price phrases filter in every mode); `drop`: parts of that understanding to leave out."""
        started = time.perf_counter()
        query = (query or "").strip()
        if not query:
            raise QueryError("the query is empty", 'type some words, e.g. mmtui search "black running shoes"')
        _check_k(k)
        self._check_mode(mode, MODES)
        indexes = self._check_index(mode)  # this generation serves the whole query, even if a new one lands
        asked = query
        # lexical mode answers before the model is loaded (the TUI's words-first results): it uses the understanding
        # once load_model() has made it, and does not wait for the sentence model itself
        ready = mode != "lexical" or self._understanding is not None
        understood = self.understand(query, drop) if understand and ready else None
        if understood is not None and understood.price is not None:
            from mmtui.query.understanding.rank import price_filters

            filters, query = list(filters or []) + price_filters(understood.price), understood.text or query
        allowed, where, params = self._filtered(filters)
        weights = self._hybrid_weights(indexes) if mode == "hybrid" else None
        signals = list(weights) if weights is not None else [mode]
        vector = self.query_vector(query) if any(name in signals for name in VECTOR_INDEXES) else None

        def fetch(n: int) -> dict[str, list[tuple[int, float]]]:
            return self._signal_lists(signals, query, vector, n, where, params, allowed, indexes)

        ranked = self._live(fetch, max(k, CANDIDATES) if mode == "hybrid" else k)
        if mode == "hybrid" and understood is not None and understood.parts.get("kind"):
            if isinstance(indexes, LazyIndexes):  # the understood kind is searched in the fused index (text if
                indexes.load("fused")  # it is damaged): read it first, so damage is known before it is used
            from mmtui.query.hybrid import RRF_K
            from mmtui.query.understanding.state import understood_hits

            hits = self._hit_rows(understood_hits(self, query, understood, ranked, weights, k, allowed, RRF_K))
        else:
            hits = self._hits(ranked, mode, k, weights)
        return SearchResult(mode=mode, hits=hits, query=asked, kind="text",
                            took_ms=(time.perf_counter() - started) * 1000, understood=understood)

    def search_image(self, image, *, k: int = 20, mode: str = "image", filters=None) -> SearchResult:
        from mmtui.catalog.images import load_image

        started = time.perf_counter()
        _check_k(k)
        self._check_mode(mode, ("image", "text", "fused", "hybrid"))
        indexes = self._check_index(mode)
        label = str(image) if not hasattr(image, "size") else "<image>"
        if hasattr(image, "size"):
            picture = image.convert("RGB")
        else:
            try:
                picture = load_image(Path(str(image)).expanduser(), getattr(self.encoder, "image_size", None))
            except MmtuiError as exc:
                raise QueryError(f"cannot use {image} as a query image: {exc.message}",
                                 exc.hint or "give the path of a JPEG, PNG or WEBP file") from None
            except OSError as exc:
                raise QueryError(f"cannot read the query image {image}: {exc}",
                                 "give the path of a readable JPEG, PNG or WEBP file") from None
        vector = self.projector.image(self.encoder.encode_images([picture]))[0]
        allowed, _, _ = self._filtered(filters)
        n = max(k, CANDIDATES) if mode == "hybrid" else k
        names = [name for name in ("image", "text", "fused") if mode == name or (mode == "hybrid" and name != "fused")]
        ranked = self._live(lambda m: {name: self._vector_hits(name, vector, m, allowed, indexes) for name in names}, n)
        hits = self._hits(ranked, mode, k)
        return SearchResult(mode=mode, hits=hits, query=label, kind="image",
                            took_ms=(time.perf_counter() - started) * 1000)

    def more_like_this(self, product_id: str, *, k: int = 20, filters=None) -> SearchResult:
        started = time.perf_counter()
        _check_k(k)
        rowid = self.store.rowid_of([product_id]).get(str(product_id))
        if rowid is None:
            raise QueryError(f"no product with id {product_id!r}", "pick a product from the results")
        indexes = self._check_index("image")
        name = "image"
        vector = indexes["image"].vector_of(rowid)
        if vector is None:  # a text-only product: use its text vector
            indexes = self._check_index("text")
            name, vector = "text", indexes["text"].vector_of(rowid)
        if vector is None:
            raise QueryError(f"product {product_id} has no vector yet", "run `mmtui build-index CATALOG`")
        allowed, _, _ = self._filtered(filters)
        ranked = self._live(lambda m: {name: [(r, s) for r, s in self._vector_hits(name, vector, m + 1, allowed, indexes)
                                              if r != rowid][:m]}, k)
        result = self._hits(ranked, name, k)
        return SearchResult(mode=name, hits=result, query=f"like:{product_id}", kind="image" if name == "image"
                            else "text", took_ms=(time.perf_counter() - started) * 1000)

    def _check_mode(self, mode: str, allowed: tuple[str, ...]) -> None:
        if mode not in allowed:
            raise QueryError(f"unknown mode {mode!r} for this query", "use one of: " + ", ".join(allowed))

    def _check_index(self, mode: str) -> dict:
        """The indexes of the current generation (a newer one is loaded first, between queries), after checking
        that those `mode` needs are usable: a damaged one is a clear error (lexical falls back to FTS5)."""
        indexes, damaged = self._current()
        needed = ("image", "text", "fused") if mode == "hybrid" else () if mode == "lexical" else (mode,)
        if isinstance(indexes, LazyIndexes):  # read what this query uses (hybrid: fused only if it weighs)
            for name in needed:
                if name != "fused" or mode != "hybrid" or self._hybrid_uses_fused():
                    indexes.load(name)
        # (a damaged lexical index is never needed: FTS5 answers the same queries)
        for name in needed:
            if name in damaged and not (mode == "hybrid" and name == "fused" and not self._hybrid_uses_fused()):
                error = damaged[name]
                raise type(error)(error.message, error.hint)  # a fresh one each time: no growing traceback
        if mode == "fused" and "fused" not in indexes:
            raise IndexMismatchError("this index has no fused product vectors yet",
                                     "run `mmtui build-index CATALOG` again (nothing is re-encoded) to add them")
        return indexes

    def _current(self) -> tuple[dict, dict]:
        """(indexes, damaged) of the current generation: when a writer made a new one since (one stat tells),
        it is loaded now, before the query starts; a query never mixes two."""
        from mmtui.index.generations import stamp

        if self._stamp is not None and stamp(self.settings.ann_dir) != self._stamp:
            with self._reload_lock:
                if stamp(self.settings.ann_dir) != self._stamp:
                    self.reload()
        return self._snapshot

    def _hybrid_uses_fused(self) -> bool:
        weights, _ = hybrid_weights(self.store)
        return weights.get("fused", 0) > 0

    def _live(self, fetch, n: int) -> dict[str, list[tuple[int, float]]]:
        """fetch(n)'s ranked lists without products that no longer exist (a build may have removed them since
        this generation was made), fetching more while a full list came back short: k hits stay k hits."""
        for _ in range(8):
            ranked = fetch(n)
            live = self.store.live_rowids(r for hits in ranked.values() for r, _ in hits)
            kept = {name: [(r, s) for r, s in hits if r in live] for name, hits in ranked.items()}
            if all(len(kept[name]) == len(hits) or len(hits) < n for name, hits in ranked.items()):
                return kept
            n *= 4
        return kept

    def _signal_lists(self, signals, query: str, vector, n: int, where: str, params: list, allowed, indexes: dict
                      ) -> dict[str, list[tuple[int, float]]]:
        """Each signal's top n candidates (on Qdrant: all of them in one request)."""
        if self.remote is not None:
            return self.remote.signal_lists(self, signals, query, vector, n, allowed, indexes)
        ranked = {}
        if "lexical" in signals:
            ranked["lexical"] = self.store.lexical(query, n, where, params, allowed)
        for name in VECTOR_INDEXES:
            if name in signals:
                ranked[name] = self._vector_hits(name, vector, n, allowed, indexes)
        return ranked

    def _filtered(self, filters):
        """_allowed's (rowids, where, params); on Qdrant the rowids carry the filters' payload-filter form."""
        allowed, where, params = self._allowed(filters)
        if self.remote is not None and allowed is not None:
            allowed = self.remote.allowed(allowed, filters)
        return allowed, where, params

    def _hybrid_weights(self, indexes: dict | None = None) -> dict[str, float]:
        """Learned weights (meta "hybrid", mmtui.query.hybrid) or equal ones, over the signals this index has."""
        indexes = self.indexes if indexes is None else indexes
        weights, _ = hybrid_weights(self.store)
        usable = {s: w for s, w in weights.items() if w > 0 and (s == "lexical" or s in indexes)}
        if not usable:
            usable = default_weights()
        return usable

    def _allowed(self, filters):
        if not filters:
            return None, "1", []
        filters = list(filters)
        where, params = where_sql(filters)
        # the rowids a filter allows are kept while no connection has written to the database (data_version: other
        # connections; total_changes: this one), and computed from columns held as arrays (mmtui.index.filter_columns:
        # a SQL scan of the products costs ~0.5-1 s at 1M products)
        version = (self.store.db.execute("PRAGMA data_version").fetchone()[0], self.store.db.conn.total_changes)
        if version != self._allowed_version:
            self._allowed_cache.clear()
            self._filter_columns = None
            self._allowed_version = version
        key = (where, tuple(params))
        rowids = self._allowed_cache.get(key)
        if rowids is None:
            if len(self._allowed_cache) >= 64:
                self._allowed_cache.clear()
            rowids = self._allowed_cache[key] = self._allowed_rowids(filters, where, params)
        return rowids, where, params

    def _allowed_rowids(self, filters, where: str, params: list):
        """Sorted rowids of the products `filters` allow: from the column arrays, or by SQL where they cannot say."""
        from mmtui.index.filter_columns import FilterColumns, ProductsChanged

        if self._filter_columns is None:
            self._filter_columns = FilterColumns(self.store.db.conn)
        try:
            rowids = self._filter_columns.allowed(filters)
        except ProductsChanged:
            self._filter_columns, rowids = None, None
        return rowids if rowids is not None else self.store.filtered_rowids(where, params)

    def _vector_hits(self, name: str, vector, n: int, allowed, indexes: dict | None = None) -> list[tuple[int, float]]:
        labels, scores = (self.indexes if indexes is None else indexes)[name].search(vector, n, allowed)
        return list(zip(labels.tolist(), scores.tolist()))

    def _hits(self, ranked: dict[str, list[tuple[int, float]]], mode: str, k: int,
              weights: dict[str, float] | None = None) -> list[Hit]:
        if len(ranked) == 1 and mode != "hybrid":
            (name, hits), = ranked.items()
            merged = [(r, s, {name: round(float(s), 4)}, {name: 1.0}) for r, s in hits[:k]]
        else:
            merged = fuse_ranked(ranked, k, weights)
        return self._hit_rows(merged)

    def _hit_rows(self, merged: list[tuple[int, float, dict, dict]]) -> list[Hit]:
        """Fused [(rowid, score, signals, shares)] -> Hits with the products' fields."""
        rows = {row["rowid"]: row for row in self.store.rows([r for r, *_ in merged])}
        out = []
        for rank, (rowid, score, signals, shares) in enumerate(merged, start=1):
            row = rows.get(rowid)
            if row is None:
                continue
            out.append(Hit(id=row["id"], title=row["title"], score=round(float(score), 6), rank=rank,
                           category=row["category"] or "", colour=row["colour"] or "", gender=row["gender"] or "",
                           brand=row["brand"] or "", price=row["price"], image_path=row["image_path"],
                           image_status=row["image_status"] or "ok", signals=signals,
                           attributes=row["attributes"], shares=shares, tags=_tag_list(row.get("tags"))))
        return out

    # -- catalog facts -----------------------------------------------------------------------
    def product(self, product_id: str) -> dict:
        rowid = self.store.rowid_of([product_id]).get(str(product_id))
        if rowid is None:
            raise QueryError(f"no product with id {product_id!r}", "pick a product from the results")
        row = self.store.rows([rowid])[0]
        row["split"] = row.get("split")
        row["image_tags"] = product_tags(self.store, rowid)  # vocab -> [(tag, score)]; "conflict" if flagged
        return row

    def facets(self) -> dict:
        db = self.store.db
        out: dict[str, Any] = {}
        for field_name in ("category", "colour", "gender"):
            out[field_name] = [(v, n) for v, n in db.execute(
                f"SELECT {field_name}, count(*) FROM products WHERE coalesce({field_name}, '') != '' "
                f"GROUP BY {field_name} ORDER BY count(*) DESC, {field_name}")]
        low, high = db.execute("SELECT min(price), max(price) FROM products WHERE price IS NOT NULL").fetchone()
        out["price"] = (low, high) if low is not None else None
        return out

    def stats(self) -> dict:
        from mmtui.encoders.projection import active_name

        db = self.store.db
        return {
            "products": self.store.product_count(),
            "with_image": db.execute("SELECT count(*) FROM products WHERE image_status = 'ok'").fetchone()[0],
            "rejects": self.store.rejects_by_reason(),
            "model": self.store.get_meta("base_model") or "?",
            "active": active_name(self.store),
        }

    def models(self) -> list[dict]:
        from mmtui.encoders.projection import active_name

        from mmtui.encoders.for_index import adaptation_info

        active = active_name(self.store)
        adapted = adaptation_info(self.store)
        kind = "base, adapted to this catalog" if adapted.get("model") == "adapted" and not adapted.get("disabled") \
            else "base"
        figures = ((adapted.get("after") if kind != "base" else adapted.get("before")) or {}).get("title->picture", {})
        out = [{"name": "base", "kind": kind, "active": active == "base", "model": self.store.get_meta("base_model"),
                "metrics": {"r10": figures["r10"]} if figures.get("r10") is not None else {}}]
        from mmtui.encoders.checkpoints import list_checkpoints

        for ck in list_checkpoints(self.settings):
            out.append({**ck, "active": ck.get("name") == active})
        return out

    def reload(self) -> None:
        """Re-read the active model and the indexes after they changed elsewhere: a reindex (e.g. by
        mmtui.train.weights.hybrid.train_hybrid) or a switch of model (mmtui.train.promote.use_model, which front ends
        call before this). A fine-tuned encoder that became the base is loaded on next use."""
        from mmtui.encoders.projection import search_space

        if self.remote is not None:
            return self.remote.reload(self)
        space, projector = search_space(self.store, self.settings)
        loaded = _load_indexes(self.settings, space)
        _use_lexical(self.store, loaded)
        self.space, self.projector = space, projector
        self.indexes, self.damaged = loaded.indexes, loaded.damaged
        self._snapshot = (loaded.indexes, loaded.damaged)
        self._stamp = loaded.stamp
        self._query_cache.clear()
        if self._encoder is not None and self._encoder.fingerprint != self.store.get_meta("base_fingerprint"):
            self._encoder = None
        self._understanding = None

    def close(self) -> None:
        self.store.close()


MAX_K = 10_000


def _check_k(k) -> None:
    """k is a whole number of hits from 1 to MAX_K (hybrid used to return every candidate for k=-1)."""
    import numbers

    from mmtui.errors import QueryError

    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= MAX_K:
        raise QueryError(f"k={k!r} is not a number of results", f"ask for 1 to {MAX_K:,} results, e.g. -k 10")


THREADS_RECHECK_S = 5.0  # how often a service looks at the machine's load again


def query_thread_count(load: float | None = None, cores: int | None = None) -> int:
    """Torch threads for encoding one query: MMTUI_THREADS if set; else 2 when other processes leave about two
    cores idle (1.5 or more, measured lately: see _load_of_others), else 1.

    Two threads encode a query ~25% faster on an idle 2-core machine (12.9 vs 17.0 ms a hybrid query at 10k),
    but on busy cores threads waiting on each other cost 3-10x (benchmarks/results/speed.md)."""

    from mmtui.config import env_threads

    if env_threads():
        return env_threads()
    cores = cores or os.cpu_count() or 1
    if cores < 2:
        return 1
    if load is None:
        try:
            load = _load_of_others()
        except OSError:  # neither /proc/stat nor a load average on this platform
            return 1
    return 2 if cores - load >= 1.5 else 1  # a core for each thread, give or take the odd other task


_LAST_LOOK: dict = {}  # "look": {at, cpu: own process time, busy, total: /proc/stat ticks}, "estimate": its answer
FIRST_SAMPLE_S = 0.1  # with no earlier look, the machine is watched this long (once, when the model loads)


def _look() -> dict:
    """The machine's CPU ticks (busy, total: /proc/stat's first line, where there is one) and this process's CPU."""
    now = {"at": time.monotonic(), "cpu": time.process_time()}
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq (steal and guest left out: not work seen on these cores)
        busy, idle = ticks[0] + ticks[1] + ticks[2] + sum(ticks[5:7]), ticks[3] + ticks[4]
        now["busy"], now["total"] = busy, busy + idle
    except (OSError, ValueError, IndexError):
        pass
    return now


def start_watching_load() -> None:
    """Take a first look at the machine now (opening a service), so choosing threads later needs no sample."""
    if "look" not in _LAST_LOOK:
        _LAST_LOOK["look"] = _look()


def _load_of_others() -> float:
    """How many cores other processes kept busy lately: CPU time /proc/stat counts as busy since the last look
    (over a 0.1 s sample at the first), minus this process's own (its threads must not talk a stream of queries
    down to one thread). Without /proc/stat: the 1-minute load average minus this process's own recent use.

    Not the load average alone: it trails by a minute, so a build that ended 30 s ago still read as a busy machine
    and queries ran on one thread (16.6 instead of 11.9 ms a hybrid query at 10k)."""

    then = _LAST_LOOK.get("look") or {}
    if "estimate" in _LAST_LOOK and time.monotonic() - then["at"] < FIRST_SAMPLE_S:
        return _LAST_LOOK["estimate"]  # too soon to tell anything new
    if "total" not in then and os.path.exists("/proc/stat"):
        then = _look()
        time.sleep(FIRST_SAMPLE_S)
    now = _look()
    wall = now["at"] - then.get("at", now["at"])
    own = (now["cpu"] - then["cpu"]) / wall if wall > 0 else 0.0
    if "total" in now and "total" in then and now["total"] > then["total"]:
        busy = (now["busy"] - then["busy"]) / (now["total"] - then["total"]) * (os.cpu_count() or 1)
        estimate = max(0.0, busy - own)
    else:
        estimate = max(0.0, os.getloadavg()[0] - own)
    _LAST_LOOK.update(look=now, estimate=estimate)
    return estimate


def set_query_threads() -> int:
    """Threads for queries: query_thread_count() torch threads, and one BLAS thread (MMTUI_THREADS overrides).

    numpy's OpenBLAS with 2 threads made a filtered search's exact scoring 5.7 ms instead of 1.5 ms right after
    the torch encode. Returns the torch thread count."""
    import torch
    from threadpoolctl import threadpool_limits

    n = query_thread_count()
    torch.set_num_threads(n)
    from mmtui.config import env_threads

    threadpool_limits(limits=env_threads() or 1, user_api="blas")
    return n


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
    from mmtui.errors import IndexMismatchError
    from mmtui.index.generations import IndexDamagedError, current, index_of, stamp

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
    from mmtui.index.ann import VectorIndex

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
        from mmtui.index.ann import VectorIndex
        from mmtui.errors import IndexMismatchError
        from mmtui.index.generations import IndexDamagedError

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
    from mmtui.store.datadir import is_locked, lock_holder
    from mmtui.errors import IndexMismatchError

    if is_locked(data_dir):
        raise IndexMismatchError(f"the index in {data_dir} is being rewritten for another model by another process "
                                 f"({lock_holder(data_dir) or 'unknown'})", "search again when it has finished")


def _use_lexical(store, loaded: _Loaded) -> None:
    """Answer lexical queries from the generation's lexical.npz, or through FTS5 when it is damaged."""
    if loaded.directory is None or "lexical" in loaded.damaged:
        store.fast_lexical = None
    else:
        store.use_lexical_index(loaded.directory)


def _tag_list(text: str | None) -> list[str]:
    """products.tags ("blue, striped, cotton") -> ["blue", "striped", "cotton"]."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]
