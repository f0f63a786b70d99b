"""The store: SQLite through sqlite-utils, the source of truth for everything a build makes.

Tables: products, rejects, embeddings (float32 BLOBs keyed by product, model fingerprint and kind),
products_fts (FTS5 over title and combined text), meta (schema version, active model, ...).
Each image and text is encoded once per model: an embedding row remembers the content hash it was made
from, so a rebuild encodes only what is new or changed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from mmtui.errors import StoreError


def _import_sqlite_utils():
    """sqlite_utils, imported without pandas: it imports pandas when installed (0.6-0.8 s, most of opening a
    search service) for DataFrame inserts mmtui never makes. pandas stays importable for anyone else."""
    import sys

    if "sqlite_utils" in sys.modules or "pandas" in sys.modules:
        import sqlite_utils
        return sqlite_utils
    sys.modules["pandas"] = None  # type: ignore[assignment]  # makes sqlite_utils' optional import fail
    try:
        import sqlite_utils
    finally:
        del sys.modules["pandas"]
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()

SCHEMA_VERSION = 2
KINDS = ("image", "text", "title")
COMMON_WORD_SHARE = 0.5  # see Store.informative_words

PRODUCT_COLUMNS = {
    "rowid": int, "id": str, "title": str, "description": str, "category": str, "brand": str,
    "colour": str, "gender": str, "price": float, "season": str, "usage": str, "article_type": str,
    "image_ref": str, "image_path": str, "image_status": str, "image_sha": str, "image_size": int,
    "image_mtime_ns": int, "text": str, "text_sha": str, "title_sha": str, "attributes": str,
    "split": str, "source": str, "row": int,
}


def _migration_1(db: sqlite_utils.Database) -> None:
    db["products"].create(PRODUCT_COLUMNS, pk="rowid", not_null={"id"})
    db["products"].create_index(["id"], unique=True)
    db["products"].create_index(["split"])
    db["rejects"].create({"id": int, "build_id": int, "product_id": str, "row": int, "source": str,
                          "reason": str, "detail": str, "kept": int}, pk="id")
    db["rejects"].create_index(["reason"])
    db["embeddings"].create({"product_rowid": int, "model": str, "kind": str, "content_sha": str,
                             "vector": bytes}, pk=("product_rowid", "model", "kind"))
    db["embeddings"].create_index(["model", "kind"])
    db["builds"].create({"id": int, "catalog": str, "model": str, "started": str, "finished": str,
                         "report": str}, pk="id")
    db["products"].enable_fts(["title", "text"], create_triggers=True, tokenize="porter unicode61")


def _migration_2(db: sqlite_utils.Database) -> None:
    """Zero-shot image tags (mmtui.build.enrich): product_tags, a derived `tags` text column, and FTS over it too."""
    if "tags" not in db["products"].columns_dict:
        db["products"].add_column("tags", str)
    db["product_tags"].create({"product_rowid": int, "vocab": str, "tag": str, "score": float, "rank": int},
                              pk=("product_rowid", "vocab", "tag"), if_not_exists=True)
    db["product_tags"].create_index(["vocab", "tag"], if_not_exists=True)
    db["products"].disable_fts()
    db["products"].enable_fts(["title", "text", "tags"], create_triggers=True, tokenize="porter unicode61")


MIGRATIONS = [_migration_1, _migration_2]  # MIGRATIONS[i] takes the schema from version i to i + 1


# vector kind -> (the products column holding its content hash, which products have one)
CONTENT = {"image": ("image_sha", "image_status = 'ok'"), "title": ("title_sha", "image_status = 'ok'"),
           "text": ("text_sha", "1")}


def sha1_text(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class Store:
    def __init__(self, db: sqlite_utils.Database, path: Path | None = None) -> None:
        self.db = db
        self.path = path
        self._doc_freq: dict = {}  # word -> number of products with it (None -> product count)

    # -- opening and migrations -------------------------------------------------------------
    @classmethod
    def open(cls, db_path: Path | str, *, create: bool = False) -> "Store":
        db_path = Path(db_path)
        if not db_path.exists() and not create:
            raise StoreError(f"no index at {db_path.parent}",
                             "run `mmtui build-index CATALOG` first (e.g. mmtui build-index sample_catalog), "
                             "or point --data-dir / MMTUI_DATA_DIR at an existing data directory")
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data directory {db_path.parent}: {exc.strerror or exc}",
                             "give a writable --data-dir (or MMTUI_DATA_DIR)") from None
        try:
            conn = _connect(db_path)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open {db_path}: {exc}",
                             "delete the data directory and run `mmtui build-index` again") from exc
        # execute_plugins=False: sqlite-utils would scan every installed package for plugins at each open; none used
        store = cls(sqlite_utils.Database(conn, execute_plugins=False), db_path)
        store.migrate()
        return store

    @classmethod
    def memory(cls) -> "Store":
        store = cls(sqlite_utils.Database(memory=True, execute_plugins=False))
        store.migrate()
        return store

    def migrate(self) -> None:
        if "meta" not in self.db.table_names():
            self.db["meta"].create({"key": str, "value": str}, pk="key")
        version = int(self.get_meta("schema_version", "0") or 0)
        if version > SCHEMA_VERSION:
            raise StoreError(f"this index was written by a newer mmtui (schema {version} > {SCHEMA_VERSION})",
                             "upgrade mmtui, or rebuild the index into another --data-dir")
        for step in range(version, SCHEMA_VERSION):
            try:
                with self.db.conn:
                    MIGRATIONS[step](self.db)
                    self.set_meta("schema_version", str(step + 1))
            except sqlite3.OperationalError as exc:
                if "readonly" not in str(exc).lower():
                    raise
                raise StoreError(f"{self.path} needs an upgrade to schema {SCHEMA_VERSION}, but it is read-only",
                                 "open it once with write access (any mmtui command upgrades it)") from None

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    # -- products ---------------------------------------------------------------------------
    def product_count(self) -> int:
        return self.db["products"].count

    def example_product_id(self) -> str | None:
        """The id of a product with a usable picture (the first one), for examples shown to the user."""
        row = self.db.execute("SELECT id FROM products WHERE image_status = 'ok' ORDER BY rowid LIMIT 1").fetchone()
        return str(row[0]) if row else None

    def existing_products(self) -> dict[str, dict]:
        """id -> the stored row (every column): what a build compares to decide what changed."""
        return {r["id"]: r for r in self.db.query("SELECT * FROM products")}

    def upsert_products(self, records: list[dict]) -> None:
        """Insert or update by id (rowids of existing products are kept, so cached vectors stay attached)."""
        if not records:
            return
        self._doc_freq.clear()
        existing = {r["id"]: r["rowid"] for r in self.db.query("SELECT rowid, id FROM products")}
        updates, inserts = [], []
        for rec in records:
            if rec["id"] in existing:
                updates.append({**rec, "rowid": existing[rec["id"]]})
            else:
                inserts.append({k: v for k, v in rec.items() if k != "rowid"})
        if updates:
            self.db["products"].upsert_all(updates, pk="rowid", alter=False)
        if inserts:
            self.db["products"].insert_all(inserts, alter=False)

    def delete_products(self, ids: Iterable[str]) -> int:
        ids = list(ids)
        self._doc_freq.clear()
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            rowids = [r[0] for r in self.db.execute(f"SELECT rowid FROM products WHERE id IN ({marks})", chunk)]
            if rowids:
                rm = ",".join("?" * len(rowids))
                self.db.execute(f"DELETE FROM embeddings WHERE product_rowid IN ({rm})", rowids)
                self.db.execute(f"DELETE FROM products WHERE rowid IN ({rm})", rowids)
        return len(ids)

    def rows(self, rowids: Sequence[int]) -> list[dict]:
        """Product rows in the given order, attributes decoded to a dict."""
        rowids = [int(r) for r in rowids]
        found: dict[int, dict] = {}
        for chunk in _chunks(rowids, 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(f"SELECT rowid, * FROM products WHERE rowid IN ({marks})", chunk):
                row["attributes"] = json.loads(row["attributes"] or "{}")
                found[row["rowid"]] = row
        return [found[r] for r in rowids if r in found]

    def rowid_of(self, product_ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        ids = [str(i) for i in product_ids]
        for chunk in _chunks(ids, 500):
            marks = ",".join("?" * len(chunk))
            for rowid, pid in self.db.execute(f"SELECT rowid, id FROM products WHERE id IN ({marks})", chunk):
                out[pid] = rowid
        return out

    def splits(self) -> dict[int, str]:
        return {r: s for r, s in self.db.execute("SELECT rowid, split FROM products")}

    def filtered_rowids(self, where: str, params: list) -> np.ndarray:
        rows = self.db.execute(f"SELECT rowid FROM products WHERE {where} ORDER BY rowid", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    # -- embeddings -------------------------------------------------------------------------
    def embedding_shas(self, model: str, kind: str) -> dict[int, str]:
        return {r: s for r, s in self.db.execute(
            "SELECT product_rowid, content_sha FROM embeddings WHERE model = ? AND kind = ?", [model, kind])}

    def put_vectors(self, model: str, kind: str, rowids: Sequence[int], shas: Sequence[str],
                    vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [(int(r), model, kind, s, vectors[i].tobytes()) for i, (r, s) in enumerate(zip(rowids, shas))]
        with self.db.conn:
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO embeddings (product_rowid, model, kind, content_sha, vector) "
                "VALUES (?, ?, ?, ?, ?)", rows)

    def vectors(self, model: str, kind: str, rowids: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rowids int64 (n,), vectors float32 (n, dim)) ordered by rowid; only rows that have a vector."""
        where = "FROM embeddings WHERE model = ? AND kind = ?"
        params: list = [model, kind]
        wanted = None if rowids is None else set(int(r) for r in rowids)
        total = self.db.execute(f"SELECT count(*) {where}", params).fetchone()[0]
        cursor = self.db.execute(f"SELECT product_rowid, vector {where} ORDER BY product_rowid", params)
        ids = np.zeros(total, dtype=np.int64)
        vecs = None
        n = 0
        # read into one array a block at a time: a list of 1M blobs, their join and a copy peaked at ~3x the array
        while rows := cursor.fetchmany(8192):
            if wanted is not None:
                rows = [(r, v) for r, v in rows if r in wanted]
            if not rows:
                continue
            if vecs is None:
                vecs = np.empty((total, len(rows[0][1]) // 4), dtype=np.float32)
            block = np.frombuffer(b"".join(v for _, v in rows), dtype=np.float32).reshape(len(rows), -1)
            ids[n:n + len(rows)], vecs[n:n + len(rows)] = [r for r, _ in rows], block
            n += len(rows)
        if vecs is None:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        if n < total:  # a subset: not the whole array kept alive
            return ids[:n].copy(), vecs[:n].copy()
        return ids, vecs

    def content_shas(self, kind: str) -> dict[int, str]:
        """rowid -> the content hash a vector of `kind` ("image", "title", "text") is made from, for the products
        that have one (titles are encoded for products with a usable image: they are its paired queries)."""
        column, where = CONTENT[kind]
        return dict(self.db.execute(f"SELECT rowid, {column} FROM products WHERE {where}"))

    # Features (what a model's heads read, float16) share the embeddings table under kinds "<kind>-features":
    # heads adapted to the catalog re-project them instead of running the towers again.
    def put_features(self, model: str, kind: str, rowids: Sequence[int], shas: Sequence[str],
                     features: np.ndarray) -> None:
        features = np.ascontiguousarray(features, dtype=np.float16)
        rows = [(int(r), model, f"{kind}-features", s, features[i].tobytes()) for i, (r, s) in enumerate(zip(rowids, shas))]
        with self.db.conn:
            self.db.conn.executemany(
                "INSERT OR REPLACE INTO embeddings (product_rowid, model, kind, content_sha, vector) "
                "VALUES (?, ?, ?, ?, ?)", rows)

    def features(self, model: str, kind: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(rowids, float32 features, content shas) of `kind`, ordered by rowid."""
        result = list(self.db.execute("SELECT product_rowid, vector, content_sha FROM embeddings WHERE model = ? "
                                      "AND kind = ? ORDER BY product_rowid", [model, f"{kind}-features"]))
        if not result:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32), []
        ids = np.fromiter((r for r, _, _ in result), dtype=np.int64, count=len(result))
        feats = np.frombuffer(b"".join(v for _, v, _ in result), dtype=np.float16).reshape(len(result), -1)
        return ids, feats.astype(np.float32), [s for _, _, s in result]

    def drop_stale_vectors(self) -> int:
        """Delete the vectors no product matches any more, of any model: of a product that is gone, made from
        an image, text or title the product no longer has (content hashes differ), or of an image the product
        no longer has (its image_status is no longer "ok"). Builds of older versions running at once could
        leave such vectors, which searches then returned; the next build encodes whatever is missing.
        Returns how many were deleted."""
        with self.db.conn:
            cursor = self.db.execute(f"DELETE FROM embeddings WHERE {_STALE}")
        return max(0, cursor.rowcount)

    def stale_vector_count(self) -> int:
        """How many vectors drop_stale_vectors would delete (reads only)."""
        return self.db.execute(f"SELECT count(*) FROM embeddings WHERE {_STALE}").fetchone()[0]

    def live_rowids(self, rowids: Iterable[int]) -> set[int]:
        """Which of these product rowids still exist."""
        out: set[int] = set()
        for chunk in _chunks(sorted({int(r) for r in rowids}), 500):
            marks = ",".join("?" * len(chunk))
            # all of them, as usual: one count, not a row each (~1 ms a hybrid query at 1M)
            if self.db.execute(f"SELECT count(*) FROM products WHERE rowid IN ({marks})", chunk).fetchone()[0] \
                    == len(chunk):
                out.update(chunk)
                continue
            out.update(r for (r,) in self.db.execute(f"SELECT rowid FROM products WHERE rowid IN ({marks})", chunk))
        return out

    # -- rejects ----------------------------------------------------------------------------
    def replace_rejects(self, build_id: int, rejects: list[dict]) -> None:
        """Rejects describe the latest build of the catalog: the previous build's list is replaced."""
        with self.db.conn:
            self.db.execute("DELETE FROM rejects")
            if rejects:
                self.db["rejects"].insert_all([{**r, "build_id": build_id} for r in rejects])

    def rejects(self, reason: str | None = None, limit: int = 50) -> list[dict]:
        """The last build's rejects, in the order they were found, only `reason`'s when given."""
        where, params = ("reason = ?", [reason]) if reason else ("1", [])
        return list(self.db.query(f"SELECT product_id, source, row, reason, detail, kept FROM rejects WHERE {where} "
                                  "ORDER BY id LIMIT ?", [*params, limit]))

    def rejects_by_reason(self) -> dict[str, int]:
        return {reason: n for reason, n in self.db.execute(
            "SELECT reason, count(*) FROM rejects GROUP BY reason ORDER BY count(*) DESC")}

    # -- lexical ----------------------------------------------------------------------------
    def lexical(self, query: str, limit: int, where: str = "1", params: list | None = None
                ) -> list[tuple[int, float]]:
        """FTS5 BM25 over title and combined text: [(rowid, score)] best first (score = -bm25, higher better).
        The search backends answer from an in-memory copy where they have one (mmtui.index.lexical)."""
        words = self.informative_words(fts_words(query))
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        if where == "1" and not params:  # no filter: no join (it costs as much as the FTS query itself)
            sql = ("SELECT rowid, -bm25(products_fts, 2.0, 1.0) AS score FROM products_fts "
                   "WHERE products_fts MATCH ? ORDER BY bm25(products_fts, 2.0, 1.0) LIMIT ?")
            return [(r, s) for r, s in self.db.execute(sql, [match, limit])]
        sql = (f"SELECT products.rowid, -bm25(products_fts, 2.0, 1.0) AS score FROM products_fts "
               f"JOIN products ON products.rowid = products_fts.rowid "
               f"WHERE products_fts MATCH ? AND ({where}) ORDER BY bm25(products_fts, 2.0, 1.0) LIMIT ?")
        return [(r, s) for r, s in self.db.execute(sql, [match, *(params or []), limit])]

    def informative_words(self, words: list[str]) -> list[str]:
        """Leave out words found in more than COMMON_WORD_SHARE of the products while a rarer one remains.

        FTS5's BM25 gives such words an IDF of ~0 (it clamps log((N - n + 0.5) / (n + 0.5)) at 1e-6), so
        they hardly move the ranking, yet scoring their long posting lists is most of a query's time
        ("casual", "men", "summer" in the Fashion combined texts). Document frequencies are cached per word.
        """
        if len(words) < 2:
            return words
        cache = self._doc_freq
        total = cache.get(None)
        if total is None:
            total = cache[None] = self.product_count()
        for w in words:
            if w not in cache:
                cache[w] = self.db.execute("SELECT count(*) FROM products_fts WHERE products_fts MATCH ?",
                                           [f'"{w}"']).fetchone()[0]
        keep = [w for w in words if cache[w] <= COMMON_WORD_SHARE * total]
        return keep or words

    def close(self) -> None:
        self.db.conn.close()


_STALE = """NOT EXISTS (
  SELECT 1 FROM products p WHERE p.rowid = embeddings.product_rowid AND CASE embeddings.kind
    WHEN 'image' THEN coalesce(p.image_sha = embeddings.content_sha, 1) AND coalesce(p.image_status = 'ok', 1)
    WHEN 'text' THEN coalesce(p.text_sha = embeddings.content_sha, 1)
    WHEN 'title' THEN coalesce(p.title_sha = embeddings.content_sha, 1)
    ELSE 1 END)"""  # embeddings no product matches (see Store.drop_stale_vectors)


def _connect(db_path: Path) -> sqlite3.Connection:
    """Read-write when the file (and its directory) allow it; else read-only, so that searching an index on
    read-only storage works (a write then fails with SQLite's "readonly database", a clear StoreError)."""
    try:
        conn = sqlite3.connect(str(db_path), check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "readonly" not in text and "unable to open" not in text or not db_path.exists():
            raise
    from urllib.parse import quote

    uri = "file:" + quote(str(db_path.resolve()))
    # mode=ro needs the -shm file of a WAL database to exist or be creatable; immutable=1 does not
    for options in ("?mode=ro", "?mode=ro&immutable=1"):
        try:
            conn = sqlite3.connect(uri + options, uri=True, check_same_thread=False, timeout=30)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            continue
    raise sqlite3.OperationalError(f"{db_path} cannot be opened, not even read-only")


def fts_words(text: str) -> list[str]:
    """The distinct words of free text, lower-cased, in order (safe to quote inside an FTS5 query)."""
    words = [w for w in "".join(c if c.isalnum() else " " for c in text.lower()).split() if w]
    return list(dict.fromkeys(words))


def _chunks(items: Sequence, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
