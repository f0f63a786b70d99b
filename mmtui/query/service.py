"""SearchService: a query (text or image) -> vectors -> candidates -> fusion and filters -> Hits.

One service per process: the store, the ANN indexes and the model are opened once and reused.
The model is loaded on first use (or explicitly with `load_model()`, which the TUI calls in a worker).

The store, ann, projection, catalog and encoder modules (numpy, sqlite-utils, PIL) are imported inside the
methods that use them: the TUI imports this module for Hit and MODES before Textual starts, and opens the
service on another thread meanwhile.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from mmtui.errors import IndexMismatchError, QueryError
from mmtui.index.backends.base import VECTOR_INDEXES, SearchBackend, vector_hits
from mmtui.query.combine import CompoundSearch
from mmtui.query.hybrid import default_weights, fuse_ranked, hybrid_weights
from mmtui.query.results import MAX_K, MODES, Hit, SearchResult, _check_k  # noqa: F401 (imported from here too)
from mmtui.query.threads import THREADS_RECHECK_S, query_thread_count, set_query_threads, start_watching_load
from mmtui.query.understanding.state import QueryUnderstanding
from mmtui.store.filters import where_sql
from mmtui.store.tags import product_tags

IMAGE_MODES = ("image", "text", "fused", "hybrid")  # the modes a picture can be searched in


CANDIDATES = 100  # per-signal candidates fused in hybrid mode
SIDE_BY_SIDE_FROM = 200_000  # products in a graph from which a query's signals are searched side by side
NEAR = 20  # products per vector index whose kinds are evidence for a query's kind


class SearchService(CompoundSearch):
    """Opened once per process; every search reuses the store, the backend's indexes and the model. Compound queries
    ("summer dress + like:12345 - floral") are CompoundSearch's (mmtui.query.combine)."""

    def __init__(self, settings, store, backend: SearchBackend, projector, space: str, encoder=None) -> None:
        self.settings = settings
        self.store = store
        self.backend = backend  # where candidates come from: mmtui.index.backends.local or .qdrant
        self.projector = projector
        self.space = space
        self._encoder = encoder
        self._encoder_note = ""  # why the query model is torch's, when the exported one could not be used
        self._exported = None  # (the torch-free query encoder or None,), once chosen
        self._choose_lock = threading.Lock()
        self._encoder_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._query_cache: dict[str, Any] = {}
        self._allowed_cache: dict[tuple, Any] = {}  # filter -> allowed rowids, while the products are unchanged
        self._allowed_version: tuple = ()
        self._filter_columns = None  # mmtui.index.filter_columns.FilterColumns of the current products
        self._threads_checked = 0.0  # time.monotonic() of the last look at the machine's load
        self._pool_lock = threading.Lock()
        self._pool = None  # threads searching a query's signals side by side (_side_by_side), made when needed
        cache = settings.data_dir / "understand" if getattr(settings, "data_dir", None) else None
        self.understanding = QueryUnderstanding(store, cache, self._no_word_model, self._near, self._near)

    @classmethod
    def open(cls, settings, encoder=None) -> "SearchService":
        from mmtui.encoders.projection import search_space
        from mmtui.index.backends.spec import stored_backend
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
        spec = stored_backend(store)
        if spec.is_qdrant:
            from mmtui.index.backends.qdrant.search import QdrantBackend

            backend: SearchBackend = QdrantBackend.open(spec, store, space, projector)
        else:
            from mmtui.index.backends.local import LocalBackend

            backend = LocalBackend(settings, store, space)
        if encoder is not None:
            cls._check_encoder(store, encoder)
        return cls(settings, store, backend, projector, space, encoder)

    @staticmethod
    def _check_encoder(store, encoder) -> None:
        if encoder.fingerprint != store.get_meta("base_fingerprint"):
            raise IndexMismatchError(
                f"model {encoder.name!r} (fingerprint {encoder.fingerprint}) is not the model this index was built "
                f"with (fingerprint {store.get_meta('base_fingerprint')})",
                "run `mmtui build-index CATALOG` again so the index matches the model")

    @property
    def indexes(self) -> Mapping:
        """The vector indexes loaded now, by name ("image", "text"[, "fused"]); a query reloads them first
        when a writer made a new generation since."""
        return self.backend.current()[0]

    @property
    def damaged(self) -> dict:
        """Index name -> the error a query that needs it raises (mmtui.index.generations)."""
        return self.backend.current()[1]

    # -- model -------------------------------------------------------------------------------
    @property
    def model_ready(self) -> bool:
        return self._encoder is not None

    def _no_word_model(self) -> bool:
        """A model with no sentence model behind it (the torch-free "fake" one): words are matched by spelling."""
        encoder = self._encoder
        return encoder is not None and hasattr(encoder, "word_vectors") and encoder.word_vectors is None

    def _near(self, text: str, among=None):
        """Rowids of the products nearest to `text` by their text and picture vectors (interleaved, NEAR each),
        only among the rowids `among` when given, or None while the model is not loaded (a words-first lexical
        search does not wait for it)."""
        if self._encoder is None:
            return None
        indexes = self.indexes
        vector = self.query_vector(text)
        lists = [[r for r, _ in vector_hits(indexes, name, vector, NEAR, among)] for name in ("text", "image")
                 if name in indexes and name not in self.damaged]
        seen: dict[int, None] = {}
        for rank in range(NEAR):
            for hits in lists:
                if rank < len(hits):
                    seen.setdefault(hits[rank], None)
        return list(seen)

    def load_model(self) -> None:
        """Load the model ahead of the first query (the TUI does this in the background), and run it once:
        first calls set up kernels and prepacked weights (~0.2 s) that a user's first query would otherwise wait for."""
        self.encoder.encode_texts(["warm up"])
        self.understand("warm up")
        if self.understanding.made:  # the understanding's own word model loads on the first word it has never
            from mmtui.encoders.words import phrase_vectors  # seen (~0.1 s): now, not in a shopper's query

            phrase_vectors(["warm"])

    def preload(self, names=None):
        """Read the indexes (`names`, default all) in the background, in that order: a query that needs one still
        being read waits for it. Returns the thread (join() to wait), or None when there is nothing to read."""
        self._current()
        return self.backend.preload(names)

    @property
    def encoder(self):
        with self._encoder_lock:
            if self._encoder is None:
                from mmtui.encoders import words
                from mmtui.encoders.for_index import open_encoder

                # torch-free (ONNX Runtime) when build-index exported the model, else torch: see the note
                encoder = self._exported_encoder() or open_encoder(self.settings, self.store)
                set_query_threads()
                self._check_encoder(self.store, encoder)
                if hasattr(encoder, "phrase_vectors"):  # query understanding's word vectors, without torch too
                    words.use(encoder.phrase_vectors)
                self._encoder = encoder
            return self._encoder

    def _exported_encoder(self):
        """The torch-free query encoder when the index's model was exported (chosen once), else None."""
        with self._choose_lock:  # not the encoder's lock: that one is held while torch loads
            if self._exported is None:
                from mmtui.encoders.query_encoder import exported_query_encoder

                # a large catalog encodes on one thread, beside the lexical search (_side_by_side): a second ONNX
                # thread would spin on the core the other signals use (hybrid p50 at 1M: ~15-18 ms against 16-24)
                threads = 1 if self._large() else query_thread_count()
                encoder, self._encoder_note = exported_query_encoder(self.settings, self.store, threads)
                self._exported = (encoder,)
            return self._exported[0]

    @property
    def light_model(self) -> bool:
        """True when the query model needs no torch: loading it takes a fraction of a second, not seconds."""
        return self._exported_encoder() is not None

    @property
    def notes(self) -> list[str]:
        """One-line notes about the query model (e.g. why it loads torch), for the front ends to show."""
        return ([self._encoder_note] if self._encoder_note else []) + list(getattr(self._encoder, "notes", []))

    def _retune_threads(self) -> None:
        """Follow the machine's load: the thread count of set_query_threads, looked at every few seconds (torch's
        only: an ONNX Runtime session keeps the threads it was opened with)."""
        now = time.monotonic()
        if now - self._threads_checked < THREADS_RECHECK_S:
            return
        self._threads_checked = now
        torch = sys.modules.get("torch")
        if torch is None:
            return

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
        """What the query asks for in this catalog's facets (mmtui.query.understanding), without the parts in
        `drop` (facet names, or "price"); None when the catalog has no facets to understand."""
        return self.understanding.understand(query, drop)

    def search(self, query: str, *, k: int = 20, mode: str = "hybrid", filters=None, understand: bool = True,
               drop=(), weights: Mapping[str, float] | None = None, compound: bool = False,
               within=None) -> SearchResult:
        """`understand`: read the kind, person, colour and price the words ask for and rank by them (hybrid mode;
        price phrases filter in every mode); `drop`: parts of that understanding to leave out; `weights`: hybrid
        signal weights to use instead of the learned ones (comparing two weightings). A part of the
        understanding that leaves nothing (a price on a catalog without prices) is left out, and the result's
        notes say so; filters the caller gave are kept, and the notes say which of them matched nothing.
        `compound`: read the query in the compound syntax (parts, weights, negatives: search_compound), `within`
        (with compound): rank only these product ids."""
        if compound or within is not None:
            return self.search_compound(query, k=k, mode=mode, filters=filters, understand=understand, drop=drop,
                                        weights=weights, within=within)
        started = time.perf_counter()
        query = (query or "").strip()
        if not query:
            raise QueryError("the query is empty", 'type some words, e.g. mmtui search "black running shoes"')
        _check_k(k)
        self._check_mode(mode, MODES)
        indexes = self._check_index(mode)  # this generation serves the whole query, even if a new one lands
        # lexical mode answers before the model is loaded (the TUI's words-first results): it uses the understanding
        # once load_model() has made it, and does not wait for the sentence model itself
        ready = mode != "lexical" or self.understanding.made
        if mode != "lexical":
            self.encoder  # noqa: B018 - opened before the understanding, whose word vectors may come from it
        understood = self.understand(query, drop) if understand and ready else None
        notes: list[str] = []
        if understood is not None and understood.price is not None and not self._has_prices():
            notes.append(f"this catalog has no prices: {understood.price_words!r} was left out")
            understood = understood.without(["price"])
        if mode == "hybrid" and weights is not None:
            weights = {s: float(w) for s, w in weights.items() if w > 0 and (s == "lexical" or s in indexes)} or None
        hits = self._search_understood(query, understood, k, mode, filters, indexes, weights)
        empty = None if understood is None or understood.price is None else \
            "product" if not hits else self._kind_outside_price(understood)
        if empty is not None:  # "ladies watches under 100" in rupees: no watch that cheap, so not cheap lemons
            notes.append(f"no {empty} matches {understood.price_words!r}: results without the price")
            understood = understood.without(["price"])
            hits = self._search_understood(query, understood, k, mode, filters, indexes, weights)
        if not hits and filters:
            notes.extend(self._empty_filters(filters))
        return SearchResult(mode=mode, hits=hits, query=query, kind="text",
                            took_ms=(time.perf_counter() - started) * 1000, understood=understood, notes=notes)

    def _kind_outside_price(self, understood) -> str | None:
        """The understood kind when no product of it has a price in the understood range (else None)."""
        import numpy as np

        kind = understood.best("kind")
        facets = self.understanding.state().facets
        codes, prices = facets.codes.get("kind"), facets.prices
        at = facets.value_index("kind").get((kind or "").lower())
        if at is None or codes is None or prices is None:
            return None
        low, high = understood.price
        n = min(len(codes), len(prices))
        mine = prices[:n][codes[:n] == at]
        fits = ~np.isnan(mine) & (mine >= (low if low is not None else -np.inf)) \
            & (mine <= (high if high is not None else np.inf))
        return None if fits.any() or not len(mine) else kind

    def _has_prices(self) -> bool:
        import numpy as np

        prices = self.understanding.state().facets.prices
        return prices is not None and bool((~np.isnan(prices)).any())

    def _empty_filters(self, filters) -> list[str]:
        """What to tell about filters that left nothing: each one that matches no product on its own."""
        out = [why for _, why in self.empty_filters(filters)]
        return out or ["the filters together match no product"]

    def empty_filters(self, filters) -> list[tuple[Any, str]]:
        """[(filter, why)] for each of `filters` that matches no product on its own."""
        out = []
        for f in filters or []:
            allowed, _, _ = self._allowed([f])
            if allowed is not None and not len(allowed):
                why = " (this catalog has no prices)" if f.field == "price" and not self._has_prices() else ""
                value = f"{f.value:g}" if isinstance(f.value, float) else f.value
                out.append((f, f"the filter {f.field}{f.op}{value} matches no product{why}"))
        return out

    def _search_understood(self, query: str, understood, k: int, mode: str, filters, indexes,
                           weights: Mapping[str, float] | None = None) -> list[Hit]:
        """One search of the query as understood (its spelling, its price filter, its ranking); `weights`:
        hybrid signal weights instead of the learned ones."""
        if understood is not None:
            query = understood.text or query  # the catalog's spelling, without the price phrase
            if understood.price is not None:
                from mmtui.query.understanding.rank import price_filters

                filters = list(filters or []) + price_filters(understood.price)
        allowed, where, params = self._filtered(filters)
        if mode == "hybrid" and weights is not None:
            weights = {s: float(w) for s, w in weights.items() if w > 0 and (s == "lexical" or s in indexes)} or None
        weights = (weights or self.hybrid_weights(indexes)) if mode == "hybrid" else None
        signals = list(weights) if weights is not None else [mode]
        pool = self._side_by_side(signals, indexes)

        def fetch(n: int) -> dict[str, list[tuple[int, float]]]:
            return self.backend.signal_lists(signals, query, lambda: self.query_vector(query), n, where, params,
                                             allowed, indexes, pool)

        ranked = self._live(fetch, max(k, CANDIDATES) if mode == "hybrid" else k)
        if mode == "hybrid" and understood is not None and (understood.parts.get("kind") or
                                                            understood.parts.get("person")):
            from mmtui.query.hybrid import RRF_K
            from mmtui.query.understanding.state import understood_hits

            kind_search = self.kind_search(query, indexes)
            return self._hit_rows(understood_hits(self.understanding, query, understood, ranked, weights, k, allowed,
                                                  RRF_K, kind_search))
        return self._hits(ranked, mode, k, weights)

    def search_image(self, image, *, k: int = 20, mode: str = "image", filters=None, region=None) -> SearchResult:
        """Products like a picture (a path or a PIL image); `region`: only that part of it, a Box or "x,y,w,h" in
        the picture's pixels (or fractions, mmtui.catalog.regions.parse_box), cut out before encoding."""
        from mmtui.query.regions import REGION_DECODE, open_picture

        started = time.perf_counter()
        _check_k(k)
        self._check_mode(mode, IMAGE_MODES)
        indexes = self._check_index(mode)
        size = getattr(self.encoder, "image_size", None)
        picture = open_picture(image, size * REGION_DECODE if region is not None and size else size)
        label, query = picture.label, picture.image
        if region is not None:
            from mmtui.catalog.regions import crop

            box = picture.region(region)
            query, label = crop(picture.image, picture.to_own(box)), f"{picture.label}@{box}"
        vector = self.projector.image(self.encoder.encode_images([query]))[0]
        hits = self._vector_search(vector, mode, k, self._filtered(filters)[0], indexes)
        return SearchResult(mode=mode, hits=hits, query=label, kind="image",
                            took_ms=(time.perf_counter() - started) * 1000)

    def search_regions(self, image, *, k: int = 20, mode: str = "image", filters=None, limit: int | None = None):
        """Propose the regions of a scene picture that look like products and search each (mmtui.query.regions):
        a RegionSearchResult with each region's box, score and hits, and `hits` merging them."""
        from mmtui.catalog.regions import candidate_boxes, non_max_suppression
        from mmtui.encoders.regions import region_vectors
        from mmtui.query.regions import OVERLAP, REGION_DECODE, REGIONS, Region, RegionSearchResult, open_picture
        from mmtui.query.regions import round_robin

        started = time.perf_counter()
        _check_k(k)
        limit = REGIONS if limit is None else limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 64:
            raise QueryError(f"{limit!r} is not a number of regions", "ask for 1 to 64 regions, e.g. 8")
        self._check_mode(mode, IMAGE_MODES)
        self._check_index("image")  # proposals are scored on the product images, whatever the mode
        indexes = self._check_index(mode)
        size = getattr(self.encoder, "image_size", None) or 224
        picture = open_picture(image, size * REGION_DECODE)
        boxes = candidate_boxes(*picture.image.size)
        vectors = self.projector.image(region_vectors(self.encoder, picture.image, boxes))
        allowed = self._filtered(filters)[0]
        scores = [next(iter(vector_hits(indexes, "image", v, 1, allowed)), (0, -1.0))[1] for v in vectors]
        kept = non_max_suppression(boxes, scores, overlap=OVERLAP, limit=limit)
        regions = [Region(picture.to_user(boxes[i]), scores[i],
                          self._vector_search(vectors[i], mode, k, allowed, indexes)) for i in kept]
        return RegionSearchResult(mode=mode, hits=round_robin([r.hits for r in regions], k), query=picture.label,
                                  kind="image", took_ms=(time.perf_counter() - started) * 1000, regions=regions,
                                  size=picture.size, candidates=len(boxes))

    def _vector_search(self, vector, mode: str, k: int, allowed, indexes) -> list[Hit]:
        """An image query's vector against the indexes `mode` searches (hybrid: image and text, fused by rank)."""
        n = max(k, CANDIDATES) if mode == "hybrid" else k
        names = [name for name in ("image", "text", "fused") if mode == name or (mode == "hybrid" and name != "fused")]
        ranked = self._live(lambda m: {name: vector_hits(indexes, name, vector, m, allowed) for name in names}, n)
        return self._hits(ranked, mode, k)

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
        ranked = self._live(lambda m: {name: [(r, s) for r, s in vector_hits(indexes, name, vector, m + 1, allowed)
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
        # read what this query uses (hybrid: fused only if it weighs)
        self.backend.prepare([name for name in needed
                              if name != "fused" or mode != "hybrid" or self._hybrid_uses_fused()])
        # (a damaged lexical index is never needed: FTS5 answers the same queries)
        for name in needed:
            if name in damaged and not (mode == "hybrid" and name == "fused" and not self._hybrid_uses_fused()):
                error = damaged[name]
                raise type(error)(error.message, error.hint)  # a fresh one each time: no growing traceback
        if mode == "fused" and "fused" not in indexes:
            raise IndexMismatchError("this index has no fused product vectors yet",
                                     "run `mmtui build-index CATALOG` again (nothing is re-encoded) to add them")
        return indexes

    def _current(self) -> tuple[Mapping, dict]:
        """(indexes, damaged) of the current generation: when a writer made a new one since (one stat tells),
        it is loaded now, before the query starts; a query never mixes two."""
        if self.backend.stale():
            with self._reload_lock:
                if self.backend.stale():
                    self.reload()
        return self.backend.current()

    def _side_by_side(self, signals, indexes: Mapping):
        """Threads to search the signals side by side (SearchBackend.signal_lists), or None: only with a graph of
        SIDE_BY_SIDE_FROM products or more (at 1M the image graph's search takes 5-10 ms; below, each signal takes
        about a millisecond and handing it to a thread saves nothing) and a core to spare (query_thread_count: on
        busy cores threads wait on each other)."""
        searched = [name for name in VECTOR_INDEXES if name in signals and name in indexes]
        if len(searched) + ("lexical" in signals) < 2 or \
                max((len(indexes[name]) for name in searched), default=0) < SIDE_BY_SIDE_FROM or \
                query_thread_count() < 2:
            return None
        with self._pool_lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="mmtui-signals")
        return self._pool

    def _large(self) -> bool:
        """Whether the catalog may reach SIDE_BY_SIDE_FROM products: its highest product rowid (one b-tree step;
        count(*) would read every row)."""
        top = self.store.db.execute("SELECT max(rowid) FROM products").fetchone()[0]
        return (top or 0) >= SIDE_BY_SIDE_FROM

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

    def _filtered(self, filters):
        """_allowed's (rowids, where, params), the rowids in the form the backend searches with."""
        allowed, where, params = self._allowed(filters)
        if allowed is not None:
            allowed = self.backend.allowed(allowed, filters)
        return allowed, where, params

    def kind_search(self, query: str, indexes: Mapping | None = None):
        """The understood kind's search: the query's nearest products in a pool, by the fused (else text) vectors.
        In a large catalog (usearch's size) the text index stands in for a fused one not read yet: a hybrid query
        reads image and text, and the kind list must not read a third graph (~0.75-1.3 GB at 1M products)."""
        from mmtui.index import ann

        indexes = self.indexes if indexes is None else indexes
        loaded = getattr(indexes, "loaded", None)  # LazyIndexes: what is read so far
        if loaded is not None and "fused" not in loaded and "text" in loaded and \
                len(indexes["text"]) >= ann.USEARCH_FROM:
            name = "text"
        else:
            # read the fused index first (text if it is damaged), so damage is known before it is used
            self.backend.prepare(["fused"])
            name = "fused" if "fused" in indexes else "text"
        return lambda pool, n=100: vector_hits(indexes, name, self.query_vector(query), n, pool)

    def vector_hits(self, name: str, vector, n: int, allowed=None) -> list[tuple[int, float]]:
        """[(rowid, score)] of the n products nearest to `vector` in index `name` (among `allowed`)."""
        return vector_hits(self.indexes, name, vector, n, allowed)

    def lexical_hits(self, query: str, n: int, where: str = "1", params=(), allowed=None) -> list[tuple[int, float]]:
        """[(rowid, score)] of the n best BM25 matches of the query's words."""
        return self.backend.lexical(query, n, where, params, allowed)

    def hybrid_weights(self, indexes: Mapping | None = None) -> dict[str, float]:
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

    # -- what the results say: facet counts, variants (mmtui.query.arrange) ------------------------------------
    def _hit_facets(self, hits) -> tuple[Any, dict[str, int]]:
        """(the catalog's facets, product id -> rowid) for these hits."""
        facets = self.understanding.state().facets
        return facets, self.store.rowid_of([h.id for h in hits])

    def result_facets(self, hits, top: int | None = None):
        """How many of the top `top` hits (default mmtui.query.arrange.TOP) have each kind, colour, person, brand
        and price band, as this catalog's facets read them; price bands from the whole catalog's prices."""
        import numpy as np

        from mmtui.query.arrange import TOP, count_facets, price_bands

        counted = list(hits)[:top or TOP]
        facets, rowids = self._hit_facets(counted)

        def values(name: str) -> dict[str, str] | None:
            codes = facets.codes.get(name)
            if codes is None:
                return None
            return {pid: facets.values[name][int(codes[r])] for pid, r in rowids.items()
                    if r < len(codes) and codes[r] >= 0}

        prices = facets.prices[~np.isnan(facets.prices)] if facets.prices is not None else []
        return count_facets(counted, top=len(counted), kinds=values("kind"), persons=values("person"),
                            bands=price_bands(prices.tolist() if len(prices) else []))

    def variant_keys(self, hits) -> dict[str, str]:
        """Product id -> its variant key (mmtui.query.arrange.variant_key): its title without the catalog's colour
        words and size words, and its kind."""
        from mmtui.query.arrange import colour_words, variant_key

        facets, rowids = self._hit_facets(hits)
        colours = colour_words(facets.values.get("colour", []))
        kinds = facets.codes.get("kind")
        out = {}
        for hit in hits:
            rowid = rowids.get(hit.id)
            kind = ""
            if kinds is not None and rowid is not None and rowid < len(kinds) and kinds[rowid] >= 0:
                kind = facets.values["kind"][int(kinds[rowid])]
            out[hit.id] = variant_key(hit.title or "", colours, kind)
        return out

    def collapse(self, hits):
        """The hits with the variants of one product as one row (mmtui.query.arrange.collapse_variants)."""
        from mmtui.query.arrange import collapse_variants

        return collapse_variants(hits, self.variant_keys(hits))

    def stats(self) -> dict:
        from mmtui.encoders.projection import active_name

        db = self.store.db
        return {
            "products": self.store.product_count(),
            "with_image": db.execute("SELECT count(*) FROM products WHERE image_status = 'ok'").fetchone()[0],
            "rejects": self.store.rejects_by_reason(),
            "model": self.store.get_meta("base_model") or "?",
            "active": active_name(self.store),
            "example_id": self.store.example_product_id(),  # what the TUI's tips show after like:
        }

    def models(self) -> list[dict]:
        from mmtui.encoders.for_index import base_model_figures
        from mmtui.encoders.projection import active_name

        active = active_name(self.store)
        adapted, r10 = base_model_figures(self.store)
        kind = "base, adapted to this catalog" if adapted else "base"
        out = [{"name": "base", "kind": kind, "active": active == "base", "model": self.store.get_meta("base_model"),
                "metrics": {"r10": r10} if r10 is not None else {}}]
        from mmtui.encoders.checkpoints import list_checkpoints

        for ck in list_checkpoints(self.settings):
            out.append({**ck, "active": ck.get("name") == active})
        return out

    def reload(self) -> None:
        """Re-read the active model and the indexes after they changed elsewhere: a reindex (e.g. by
        mmtui.train.weights.hybrid.train_hybrid) or a switch of model (mmtui.train.promote.use_model, which front ends
        call before this). A fine-tuned encoder that became the base is loaded on next use."""
        from mmtui.encoders.projection import search_space

        space, projector = search_space(self.store, self.settings)
        self.backend.reload(space, projector)
        self.space, self.projector = space, projector
        self._query_cache.clear()
        if self._encoder is not None and self._encoder.fingerprint != self.store.get_meta("base_fingerprint"):
            self._encoder = None
        with self._choose_lock:
            self._exported = None  # chosen again: the model or its export may have changed
        self.understanding.reset()

    def close(self) -> None:
        if hasattr(self._encoder, "phrase_vectors"):
            from mmtui.encoders import words

            words.use(None, instead_of=self._encoder.phrase_vectors)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.backend.close()
        self.store.close()


def _tag_list(text: str | None) -> list[str]:
    """products.tags ("blue, striped, cotton") -> ["blue", "striped", "cotton"]."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]
