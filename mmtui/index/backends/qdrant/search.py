"""The Qdrant backend: searching a data dir whose searchable copy is a Qdrant collection.

SearchService.open makes a QdrantBackend for such a data dir (mmtui.index.backends.spec), and Qdrant answers the
candidate lists: QdrantVectors stands where a VectorIndex stands (search(vector, k, allowed), vector_of(rowid)),
QdrantLexical where the in-memory BM25 index does. `--where` filters go to Qdrant as payload filters: the rowids
the service reads for a filter carry the filter's Qdrant form (AllowedRows). A hybrid query asks for every
signal's list in one request (query_batch_points); the service fuses them with the learned weights, as locally.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from typing import Any, Sequence

import numpy as np

from mmtui.errors import IndexMismatchError
from mmtui.index.backends.base import SearchBackend
from mmtui.index.backends.qdrant.client import (
    DENSE, SPARSE, calling, open_client, payload_filter, point_id, require_collection, rowid_filter, term_index,
)
from mmtui.index.backends.spec import BackendSpec
from mmtui.index.lexical import FTS_TABLE, QueryTokenizer, fts_fingerprint
from mmtui.store.db import COMMON_WORD_SHARE, fts_words

SYNC_META = "qdrant_sync"  # written by mmtui.index.backends.qdrant.sync
VECTOR_INDEXES = DENSE  # the order candidate lists are asked for


class AllowedRows(np.ndarray):
    """The rowids a filter allows, carrying the filter as a Qdrant payload filter (`qdrant_filter`)."""

    qdrant_filter: Any = None


def allowed_rows(rowids: np.ndarray, qdrant_filter: Any) -> AllowedRows:
    out = np.asarray(rowids, dtype=np.int64).view(AllowedRows)
    out.qdrant_filter = qdrant_filter
    return out


def filter_of(allowed) -> Any:
    """The Qdrant filter for `allowed`: its payload filter when it has one, else a filter to its rowids."""
    if allowed is None:
        return None
    found = getattr(allowed, "qdrant_filter", None)
    return found if found is not None else rowid_filter(allowed)


TIES = 16  # more points asked for than kept, so that equal scores at the cut are settled as locally


def _hits(points, limit: int | None = None) -> list[tuple[int, float]]:
    """[(rowid, score)] best first, equal scores by rowid as the local indexes order them, cut to `limit`."""
    hits = sorted(((int(p.payload["rowid"]), float(p.score)) for p in points), key=lambda h: (-round(h[1], 5), h[0]))
    return hits if limit is None else hits[:limit]


class QdrantVectors:
    """One named dense vector of the collection, searched like a VectorIndex. `labels` and `vectors` (the
    training code's exact search over a pool) are the store's copy of what the collection holds, read on use."""

    def __init__(self, backend: BackendSpec, client, name: str, owner: "QdrantBackend") -> None:
        self.backend, self.client, self.name = backend, client, name
        self._owner = owner  # its store and the active projector: the local copy of the vectors
        self._local: tuple[np.ndarray, np.ndarray] | None = None

    def request(self, vector, k: int, allowed=None):
        from qdrant_client import models

        return models.QueryRequest(query=np.asarray(vector, np.float32).reshape(-1).tolist(), using=self.name,
                                   filter=filter_of(allowed), limit=int(k) + TIES, with_payload=["rowid"])

    def search(self, query, k: int, allowed=None) -> tuple[np.ndarray, np.ndarray]:
        if k <= 0 or (allowed is not None and len(allowed) == 0):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if allowed is not None and getattr(allowed, "qdrant_filter", None) is None and self.backend.path:
            return self._exact(query, k, allowed)
        request = self.request(query, k, allowed)
        response = calling(self.backend, self.client.query_points, self.backend.collection, query=request.query,
                           using=self.name, query_filter=request.filter, limit=request.limit,
                           with_payload=["rowid"])
        hits = _hits(response.points, k)
        return (np.array([r for r, _ in hits], np.int64),
                np.clip(np.array([s for _, s in hits], np.float32), -1.0, 1.0))

    def vector_of(self, rowid: int) -> np.ndarray | None:
        rows = self._owner.store.rows([int(rowid)])
        if not rows:
            return None
        points = calling(self.backend, self.client.retrieve, self.backend.collection, ids=[point_id(rows[0]["id"])],
                         with_payload=False, with_vectors=[self.name])
        vector = (points[0].vector or {}).get(self.name) if points else None
        return None if vector is None else np.asarray(vector, np.float32)

    def _exact(self, query, k: int, allowed) -> tuple[np.ndarray, np.ndarray]:
        """Exact search over a pool of rowids (no filter to give Qdrant) in the store's copy of the vectors: what
        embedded Qdrant does too (it has no graph), without its per-point payload check in Python."""
        labels, vectors = self._copy()
        positions = np.flatnonzero(np.isin(labels, np.asarray(allowed, np.int64)))
        scores = vectors[positions] @ np.asarray(query, np.float32).reshape(-1)
        top = np.argsort(-scores, kind="stable")[:k]
        return labels[positions[top]], np.clip(scores[top], -1.0, 1.0).astype(np.float32)

    def _copy(self) -> tuple[np.ndarray, np.ndarray]:
        if self._local is None:
            from mmtui.index.fused import fused_vectors, fusion_weight

            service = self._owner
            base = service.store.get_meta("base_fingerprint")
            if self.name == "fused":
                ids, vectors = fused_vectors(service.store, service.projector, base, fusion_weight(service.store))
            else:
                ids, vectors = service.store.vectors(base, self.name)
                if len(ids):
                    project = service.projector.image if self.name == "image" else service.projector.text
                    vectors = project(vectors)
            self._local = (np.asarray(ids, np.int64), np.ascontiguousarray(vectors, np.float32))
        return self._local

    @property
    def labels(self) -> np.ndarray:
        return self._copy()[0]

    @property
    def vectors(self) -> np.ndarray:
        return self._copy()[1]

    def __len__(self) -> int:
        return len(self.labels)


class QdrantLexical:
    """BM25 over the collection's sparse "lexical" vectors, in place of mmtui.index.lexical.FastLexical: the query's
    FTS5 tokens weighted by FTS5's IDF (document frequencies read from products_fts), so the dot product with
    a product's BM25 term factors is FTS5's score."""

    def __init__(self, backend: BackendSpec, client, conn: sqlite3.Connection) -> None:
        self.backend, self.client = backend, client
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [FTS_TABLE]).fetchone()
        from mmtui.index.lexical import _tokenize_option

        self.tokenizer = QueryTokenizer(_tokenize_option(sql[0]) if sql else "unicode61")
        self._stats: tuple[str | None, int, dict[str, int]] = (None, 0, {})
        self._lock = threading.Lock()

    def _doc_freqs(self, conn: sqlite3.Connection, tokens: Sequence[str]) -> tuple[int, dict[str, int]]:
        """(rows, {token: rows holding it}) of products_fts now (cached while it is unchanged)."""
        fingerprint = fts_fingerprint(conn)
        with self._lock:
            seen, n_rows, freqs = self._stats
            if seen != fingerprint:
                n_rows, freqs = conn.execute(f'SELECT count(*) FROM "{FTS_TABLE}_docsize"').fetchone()[0], {}
                self._stats = (fingerprint, n_rows, freqs)
            missing = [t for t in dict.fromkeys(tokens) if t not in freqs]
            if missing:
                conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.mmtui_qdrant_vocab "
                             f"USING fts5vocab(main, '{FTS_TABLE}', 'row')")
                for token in missing:
                    row = conn.execute("SELECT doc FROM temp.mmtui_qdrant_vocab WHERE term = ?", [token]).fetchone()
                    freqs[token] = int(row[0]) if row else 0
            return n_rows, freqs

    def sparse_query(self, conn: sqlite3.Connection, words: Sequence[str], common_share: float = 0.5):
        """The query as a sparse vector of IDF weights (None: no word is in the catalog)."""
        from qdrant_client import models

        tokens = [t for toks in self.tokenizer.tokens(list(words)) for t in toks]
        if not tokens:
            return None
        n_rows, freqs = self._doc_freqs(conn, tokens)
        tokens = [t for t in tokens if freqs.get(t)]
        if len(tokens) >= 2:  # as Store.informative_words: words in most rows go while a rarer one remains
            tokens = [t for t in tokens if freqs[t] <= common_share * n_rows] or tokens
        weights: dict[int, float] = {}
        for token in tokens:
            n = freqs[token]
            idf = math.log((n_rows - n + 0.5) / (n + 0.5))
            index = term_index(token)
            weights[index] = weights.get(index, 0.0) + (idf if idf > 0 else 1e-6)
        if not weights:
            return None
        return models.SparseVector(indices=list(weights), values=list(weights.values()))

    def request(self, conn, words, limit: int, allowed=None, common_share: float = 0.5):
        from qdrant_client import models

        sparse = self.sparse_query(conn, words, common_share)
        if sparse is None:
            return None
        return models.QueryRequest(query=sparse, using=SPARSE, filter=filter_of(allowed), limit=int(limit) + TIES,
                                   with_payload=["rowid"])

    def query(self, conn, words, limit: int, allowed=None, common_share: float = 0.5) -> list[tuple[int, float]]:
        """Store.lexical's hook: [(rowid, score)] best first."""
        if limit <= 0 or (allowed is not None and len(allowed) == 0):
            return []
        request = self.request(conn, words, limit, allowed, common_share)
        if request is None:
            return []
        response = calling(self.backend, self.client.query_points, self.backend.collection, query=request.query,
                           using=SPARSE, query_filter=request.filter, limit=request.limit, with_payload=["rowid"])
        return _hits(response.points, limit)


class QdrantBackend(SearchBackend):
    """A data dir's collection on Qdrant as a search backend: its named vectors stand where the local graphs do,
    its sparse vectors where lexical.npz does; `--where` filters go to Qdrant as payload filters, and every signal's
    candidate list is asked for in one request."""

    def __init__(self, spec: BackendSpec, client, store, space: str, projector) -> None:
        self.spec, self.client, self.store = spec, client, store
        self._lexical = QdrantLexical(spec, client, store.db.conn)
        self.reload(space, projector)

    @classmethod
    def open(cls, spec: BackendSpec, store, space: str, projector) -> "QdrantBackend":
        client = open_client(spec)
        require_collection(spec, client)
        return cls(spec, client, store, space, projector)

    def reload(self, space: str, projector) -> None:
        """The active model again (the collection must hold its vectors)."""
        _check_space(self.store, space, self.spec)
        self.projector = projector
        self._indexes = {name: QdrantVectors(self.spec, self.client, name, self) for name in DENSE}

    def current(self):
        return self._indexes, {}

    def lexical(self, query: str, n: int, where: str = "1", params=(), allowed=None) -> list[tuple[int, float]]:
        return self._lexical.query(self.store.db.conn, fts_words(query), n, allowed, COMMON_WORD_SHARE)

    def allowed(self, rowids, filters):
        """The rowids, carrying the filters' payload-filter form (plain rowids when they have none)."""
        found = payload_filter(filters)
        return rowids if found is None else allowed_rows(rowids, found)

    def _request(self, name: str, query: str, vector, n: int, allowed):
        if name == "lexical":
            return self._lexical.request(self.store.db.conn, fts_words(query), n, allowed, COMMON_WORD_SHARE)
        return self._indexes[name].request(vector, n, allowed)

    def signal_lists(self, signals, query: str, vector, n: int, where, params, allowed, indexes, pool=None
                     ) -> dict[str, list[tuple[int, float]]]:
        """Every signal's candidates in one request (query_batch_points), lexical first as locally (`vector` may be
        a function that encodes the query; `pool` is not needed: one request already asks for every signal)."""
        if callable(vector) and any(name in signals for name in VECTOR_INDEXES):
            vector = vector()
        wanted = [name for name in ("lexical", *VECTOR_INDEXES) if name in signals]
        ranked: dict[str, list[tuple[int, float]]] = {name: [] for name in wanted}
        if allowed is not None and len(allowed) == 0:
            return ranked
        names, requests = [], []
        for name in wanted:
            request = self._request(name, query, vector, n, allowed)
            if request is not None:
                names.append(name)
                requests.append(request)
        if requests:
            responses = calling(self.spec, self.client.query_batch_points, self.spec.collection, requests=requests)
            for name, response in zip(names, responses):
                ranked[name] = _hits(response.points, n)
        return ranked

    def server_fused(self, query: str, vector, k: int, weights: dict[str, float], *, candidates: int, rrf_k: int,
                     allowed=None) -> list[tuple[int, float]]:
        """Hybrid fused by Qdrant itself: each weighted signal's top `candidates` as a prefetch, and Qdrant's
        weighted RRF over them in the same request. Not what searches use (docs/scale-out.md: its weights scale
        ranks, not scores, and it returns no per-signal scores for the understanding and the shares)."""
        from qdrant_client import models

        prefetch, used = [], []
        for name, w in weights.items():
            if w <= 0:
                continue
            request = self._request(name, query, vector, candidates, allowed)
            if request is not None:
                prefetch.append(models.Prefetch(query=request.query, using=request.using, filter=request.filter,
                                                limit=candidates))
                used.append(w)
        if not prefetch:
            return []
        response = calling(self.spec, self.client.query_points, self.spec.collection, prefetch=prefetch,
                           query=models.RrfQuery(rrf=models.Rrf(k=rrf_k, weights=used)), limit=int(k),
                           with_payload=["rowid"])
        return [(int(p.payload["rowid"]), float(p.score)) for p in response.points]


def _check_space(store, space: str, backend: BackendSpec) -> None:
    """The collection must hold vectors of the active model (the last sync records which)."""
    try:
        synced = json.loads(store.get_meta(SYNC_META) or "{}")
    except ValueError:
        synced = {}
    if synced.get("space") != space or synced.get("collection") != backend.collection:
        raise IndexMismatchError(f"the Qdrant collection {backend.collection!r} does not hold this data directory's "
                                 "vectors for the active model (it was not written, or written for another one)",
                                 "run `mmtui build-index CATALOG` to bring it up to date (nothing is re-encoded)")
