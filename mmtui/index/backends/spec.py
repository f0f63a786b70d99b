"""Where a data dir's searchable copy lives: the local hnswlib files (ann/, the default) or a Qdrant collection.

`mmtui build-index CATALOG --backend SPEC` records it in the store's meta ("backend"), so search, eval and the
TUI find it without a flag. SPEC is one of

    local                       hnswlib files and lexical.npz in DATA_DIR/ann
    qdrant:DIR                  qdrant-client's embedded local mode in DIR (relative to the working directory,
                                recorded absolute): tests and small catalogs, one process at a time
    qdrant+http://HOST:6333     a Qdrant server or cluster (also qdrant+https://...); the API key, if any,
                                comes from MMTUI_QDRANT_API_KEY and is never recorded

The SQLite store stays the source of truth (products, vectors); the backend only holds what searches read.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from mmtui.errors import ConfigError

META_KEY = "backend"
COLLECTION_KEY = "qdrant_collection"  # kept when switching back to local, so a move back reuses the collection
API_KEY_ENV = "MMTUI_QDRANT_API_KEY"
_URL = re.compile(r"^qdrant\+(https?)://([^/\s?#]+)(/[^\s?#]*)?$", re.IGNORECASE)


@dataclass(frozen=True)
class BackendSpec:
    kind: str = "local"  # "local" | "qdrant"
    path: str | None = None  # embedded local mode: an absolute folder
    url: str | None = None  # a server: http(s)://host:port
    collection: str | None = None

    @property
    def is_qdrant(self) -> bool:
        return self.kind == "qdrant"

    @property
    def where(self) -> str:
        """Where it is, for messages."""
        return self.url or self.path or "the data directory"

    def spec(self) -> str:
        if not self.is_qdrant:
            return "local"
        return f"qdrant:{self.path}" if self.path else f"qdrant+{self.url}"


def parse_backend(spec: str, cwd: Path | None = None) -> BackendSpec:
    """`local`, `qdrant:DIR` or `qdrant+http(s)://HOST[:PORT]` -> BackendSpec (no collection yet); ConfigError else."""
    text = (spec or "").strip()
    if text.lower() == "local":
        return BackendSpec()
    if text.lower().startswith("qdrant:") and not text.lower().startswith("qdrant://"):
        folder = text[len("qdrant:"):].strip()
        if not folder or "\x00" in folder:
            raise ConfigError(f"--backend {spec!r} names no folder", "e.g. --backend qdrant:qdrant-data")
        return BackendSpec("qdrant", path=str((Path(cwd or Path.cwd()) / Path(folder).expanduser()).resolve()))
    found = _URL.match(text)
    if found:
        scheme, host, path = found.group(1).lower(), found.group(2), (found.group(3) or "").rstrip("/")
        if not re.match(r"^[A-Za-z0-9.\-\[\]:]+$", host) or host.startswith(":"):
            raise ConfigError(f"--backend {spec!r}: {host!r} is not a host[:port]",
                              "e.g. --backend qdrant+http://localhost:6333")
        return BackendSpec("qdrant", url=f"{scheme}://{host}{path}")
    raise ConfigError(f"--backend {spec!r} is not a backend",
                      "use local, qdrant:DIR (embedded) or qdrant+http://HOST:6333 (a Qdrant server or cluster)")


def stored_backend(store) -> BackendSpec:
    """The backend recorded in the store's meta (local when none is)."""
    raw = store.get_meta(META_KEY)
    if not raw:
        return BackendSpec()
    try:
        info = json.loads(raw)
        return BackendSpec(**{k: info.get(k) for k in ("kind", "path", "url", "collection")})
    except (ValueError, TypeError, AttributeError):
        raise ConfigError("the data directory's backend record is unreadable",
                          "run `mmtui build-index CATALOG --backend SPEC` to record it again") from None


def record_backend(store, backend: BackendSpec, data_dir: Path) -> BackendSpec:
    """Record `backend` in the store (a Qdrant one gets this data dir's collection name); returns what was kept."""
    if backend.is_qdrant:
        name = store.get_meta(COLLECTION_KEY) or collection_name(data_dir)
        store.set_meta(COLLECTION_KEY, name)
        backend = BackendSpec("qdrant", path=backend.path, url=backend.url, collection=name)
    store.set_meta(META_KEY, json.dumps(asdict(backend), sort_keys=True))
    return backend


def collection_name(data_dir: Path) -> str:
    """One collection per data dir: its folder name (for people reading a server's list) and a random tail."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(data_dir).resolve().name).strip("-")[:40] or "index"
    return f"mmtui-{stem}-{uuid.uuid4().hex[:8]}"


def choose_backend(settings, spec: str, check=None) -> BackendSpec:
    """`build-index --backend SPEC`: record SPEC in the data dir (created if new) before the build writes to it;
    `check(backend)` first (qdrant_store.check_usable: raises when it cannot be used, the data dir unchanged)."""
    from mmtui.store.datadir import writing
    from mmtui.store.db import Store

    backend = parse_backend(spec)
    if backend.is_qdrant and check is not None:  # usable first: never switch to a backend it cannot reach
        check(backend)
    with writing(settings, "backend"):
        store = Store.open(settings.db_path, create=True)
        try:
            return record_backend(store, backend, settings.data_dir)
        finally:
            store.close()
