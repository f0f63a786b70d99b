"""A data dir's Qdrant collection: opening the client, the point layout, and `--where` filters as payload filters.

Per product one point, id uuid5(product id) (so upserts and deletes go by product id), with
  - named dense vectors "image", "text", "fused" (cosine; a product without a picture has no "image"),
  - a sparse vector "lexical": the BM25 term factors of mmtui.index.lexical (FTS5's tokens, hashed to 32-bit
    indices); a query's weights are the terms' IDF, so the dot product is FTS5's bm25 score,
  - the payload: product_id, rowid, digest (of everything uploaded, to skip unchanged points), and the facets
    --where filters on, lower-cased (filters compare case-insensitively, as the SQL's COLLATE NOCASE does).

qdrant_client is imported inside functions (pip install 'mmtui[qdrant]'); one client per location per process:
the embedded mode locks its folder, so a second client in the same process would lock itself out.
"""

from __future__ import annotations

import threading
import uuid
import zlib
from typing import Any

from mmtui.index.backends.spec import API_KEY_ENV, BackendSpec
from mmtui.errors import ConfigError, StoreError

DENSE = ("image", "text", "fused")
SPARSE = "lexical"
TEXT_FACETS = ("id", "category", "colour", "gender", "brand", "season", "usage", "article_type", "split")
NUMBER_FACETS = ("price",)
NAMESPACE = uuid.UUID("6f1d8a52-3c1e-5b7e-9a51-0d2c0b1e4a77")  # fixed: point ids must not change between runs
TIMEOUT_S = 10

_CLIENTS: dict[str, Any] = {}
_GUARD = threading.Lock()


def point_id(product_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, str(product_id)))


def term_index(token: str) -> int:
    """An FTS5 token's sparse-vector index (CRC-32: stable across runs and processes)."""
    return zlib.crc32(token.encode("utf-8"))


def payload_of(row: dict) -> dict:
    """The filterable payload of a products row (rowid, product id, lower-cased text facets, price)."""
    out: dict[str, Any] = {"product_id": row["id"], "rowid": int(row["rowid"])}
    for name in TEXT_FACETS:
        value = row.get(name)
        if value is not None:
            out[name] = str(value).lower()
    if row.get("price") is not None:
        out["price"] = float(row["price"])
    return out


# -- filters ----------------------------------------------------------------------------------
def payload_filter(filters) -> Any:
    """mmtui.store.filters.Filter list -> a Qdrant Filter with the meaning of filters.where_sql: = and != case-insensitive
    (a product without the field matches neither, as SQL's NULL), ~ contains (case-insensitive), price ranges.
    None when there is no filter, or one that has no Qdrant form."""
    from qdrant_client import models

    from mmtui.errors import QueryError
    from mmtui.store.filters import parse_where

    must, must_not = [], []
    for f in filters or ():
        if not all(hasattr(f, name) for name in ("field", "op", "value")):  # a filter duck-typed by its SQL
            try:
                f = parse_where(str(f))
            except QueryError:
                return None  # the caller filters by the rowids instead
        key = f.field
        if isinstance(f.value, str):
            value = f.value.lower()
            if f.op == "=":
                must.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
            elif f.op == "!=":
                must_not.append(models.FieldCondition(key=key, match=models.MatchValue(value=value)))
                must_not.append(models.IsEmptyCondition(is_empty=models.PayloadField(key=key)))
            elif f.op == "~":
                must.append(models.FieldCondition(key=key, match=models.MatchSubstring(substring=value)))
            else:
                raise ConfigError(f"the filter {f} has no Qdrant form", "use =, != or ~ on text fields")
            continue
        v = float(f.value)
        ranges = {"<": {"lt": v}, "<=": {"lte": v}, ">": {"gt": v}, ">=": {"gte": v}, "=": {"gte": v, "lte": v}}
        if f.op == "!=":
            must_not.append(models.FieldCondition(key=key, range=models.Range(gte=v, lte=v)))
            must_not.append(models.IsEmptyCondition(is_empty=models.PayloadField(key=key)))
        else:
            must.append(models.FieldCondition(key=key, range=models.Range(**ranges[f.op])))
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


def rowid_filter(rowids) -> Any:
    """A filter to these rowids (for a caller that has rowids, not filters)."""
    from qdrant_client import models

    return models.Filter(must=[models.FieldCondition(key="rowid", match=models.MatchAny(any=[int(r) for r in rowids]))])


# -- the client -------------------------------------------------------------------------------
def open_client(backend: BackendSpec):
    """This process's client for `backend` (made once). StoreError with a hint when the embedded folder is held
    by another process or the server cannot be reached; ConfigError when qdrant-client is not installed."""
    key = backend.path or backend.url or ""
    with _GUARD:
        client = _CLIENTS.get(key)
        if client is not None:
            return client
        try:
            from qdrant_client import QdrantClient
        except ImportError:
            raise ConfigError("this data directory's index is on Qdrant, but qdrant-client is not installed",
                              "pip install 'mmtui[qdrant]' (qdrant-client==1.20.0), or go back to the local indexes: "
                              "mmtui build-index CATALOG --backend local") from None
        if backend.path:
            try:
                client = QdrantClient(path=backend.path)
            except RuntimeError as exc:
                if "already accessed" not in str(exc):
                    raise
                raise StoreError(f"the Qdrant folder {backend.path} is open in another process "
                                 "(embedded Qdrant lets one process use a folder at a time)",
                                 "close the other mmtui (search, TUI or build) using this data dir and run this "
                                 "again, or use a Qdrant server: --backend qdrant+http://HOST:6333") from None
            except OSError as exc:
                raise StoreError(f"cannot open the Qdrant folder {backend.path}: {exc.strerror or exc}",
                                 "check that the folder is writable, or record another: "
                                 "mmtui build-index CATALOG --backend qdrant:DIR") from None
        else:
            import os

            client = QdrantClient(url=backend.url, api_key=os.environ.get(API_KEY_ENV) or None, timeout=TIMEOUT_S,
                                  check_compatibility=False)
            calling(backend, client.get_collections)
        if not _CLIENTS:
            import atexit

            atexit.register(close_clients)
        _CLIENTS[key] = client
        return client


def fast_local_writes(client, collection: str) -> None:
    """Embedded Qdrant stores each point in SQLite with a commit of its own, which waits for the disk each time
    (~50 ms a point here: 256 points took 11 s). Write-ahead logging without a sync per commit takes that to
    0.07 s. A crash can lose the last commits, never corrupt the file; the next sync uploads what is missing.
    (qdrant-client 1.20.0's local storage; a layout it does not have is left alone.)"""
    try:
        conn = client._client.collections[collection].storage.storage
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except (AttributeError, KeyError, TypeError):
        pass


def check_usable(backend: BackendSpec) -> None:
    """qdrant-client installed, and the folder opens or the server answers; else a ConfigError / StoreError that
    says the data dir was left as it was."""
    try:
        open_client(backend)
    except (ConfigError, StoreError) as exc:
        message = exc.message.replace("this data directory's index is on Qdrant, but qdrant-client is not installed",
                                      f"--backend {backend.spec()} needs qdrant-client, which is not installed")
        raise type(exc)(f"{message} (the data directory still uses its previous backend)", exc.hint) from None


def close_clients(backend: BackendSpec | None = None) -> None:
    """Close this process's clients, or the one of `backend` (an embedded one releases its folder): at exit,
    and for tests."""
    with _GUARD:
        if backend is None:
            clients = list(_CLIENTS.values())
            _CLIENTS.clear()
        else:
            found = _CLIENTS.pop(backend.path or backend.url or "", None)
            clients = [found] if found is not None else []
    for client in clients:
        try:
            client.close()
        except Exception:  # closing at exit: nothing left to tell anyone
            pass


def calling(backend: BackendSpec, fn, *args, **kwargs):
    """fn(*args, **kwargs) with a failure to reach or use the server as a StoreError with a hint."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # qdrant-client raises httpx/grpc errors and its own wrappers of them
        if isinstance(exc, (StoreError, ConfigError)):
            raise
        status = getattr(exc, "status_code", None)
        if status in (401, 403):
            raise StoreError(f"Qdrant at {backend.where} refused the request ({status})",
                             f"set {API_KEY_ENV} to an API key the server accepts") from None
        kind = type(exc).__name__
        if backend.url and kind in ("ResponseHandlingException", "ConnectError", "ConnectTimeout", "ReadTimeout",
                                    "ConnectionError", "TimeoutException", "RemoteProtocolError"):
            raise StoreError(f"cannot reach the Qdrant server at {backend.url} ({kind}: {_first_line(exc)})",
                             "start it (e.g. docker run -p 6333:6333 qdrant/qdrant), check the address, or go "
                             "back to the local files: mmtui build-index CATALOG --backend local") from None
        if status == 404 or "not found" in str(exc).lower():
            raise StoreError(f"the collection {backend.collection!r} is missing from Qdrant at {backend.where}",
                             "run `mmtui build-index CATALOG` to write it again (nothing is re-encoded)") from None
        raise


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def require_collection(backend: BackendSpec, client) -> None:
    """StoreError with a hint when the recorded collection is not there (deleted, or another server)."""
    if not backend.collection or not calling(backend, client.collection_exists, backend.collection):
        raise StoreError(f"the collection {backend.collection!r} is missing from Qdrant at {backend.where}",
                         "run `mmtui build-index CATALOG` to write it again (nothing is re-encoded)")
