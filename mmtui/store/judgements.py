"""Relevance judgements: what a person said of a result for a query, kept in DATA_DIR/judgements.db.

One row per (query kind, query, product id): the grade (2 relevant, 1 partly, 0 not relevant), who judged it,
when, and in which mode and model the result was shown. The file is apart from catalog.db, and rows are keyed by
the catalog's product ids, not rowids: a rebuild, even from scratch, keeps every judgement.

Writes follow the data directory's single-writer rules (mmtui.store.datadir) on their own lock file, so a build
running at the same time never blocks judging: each write holds the lock for one SQLite transaction in WAL mode
with synchronous=FULL, so a judgement is on disk once set() returns, and neither a crash nor a second process
writing at the same time loses one.

Also kept: the ranking last shown for each query in each mode and model (`shown`, for the coverage of a query's
top 10 and for pooling), and the outcome of team-draft interleaving per query and pair of rankers.
"""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from mmtui.errors import StoreError
from mmtui.store.datadir import writing

FILE = "judgements.db"
LOCK = ".judgements.lock"
KINDS = ("text", "image", "like")
GRADES = {2: "relevant", 1: "partly", 0: "not relevant"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS judgements (
    kind TEXT NOT NULL, query TEXT NOT NULL, product_id TEXT NOT NULL, grade INTEGER NOT NULL,
    judge TEXT, judged_at TEXT, mode TEXT, model TEXT,
    PRIMARY KEY (kind, query, product_id));
CREATE TABLE IF NOT EXISTS shown (
    kind TEXT NOT NULL, query TEXT NOT NULL, mode TEXT NOT NULL, model TEXT NOT NULL, ids TEXT NOT NULL,
    shown_at TEXT, PRIMARY KEY (kind, query, mode, model));
CREATE TABLE IF NOT EXISTS interleavings (
    kind TEXT NOT NULL, query TEXT NOT NULL, ranker_a TEXT NOT NULL, ranker_b TEXT NOT NULL,
    credit_a REAL NOT NULL, credit_b REAL NOT NULL, judged INTEGER NOT NULL, judge TEXT, updated_at TEXT,
    PRIMARY KEY (kind, query, ranker_a, ranker_b));
"""


def judge_name() -> str:
    """Who judges: $MMTUI_JUDGE, else the login name."""
    name = os.environ.get("MMTUI_JUDGE", "").strip()
    if name:
        return name
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (a container): still a judgement
        return "unknown"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class JudgementStore:
    """The judgements of one data directory. Thread-safe; cheap to open (the file is made on first write)."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.path = Path(settings.data_dir) / FILE
        self._conn: sqlite3.Connection | None = None
        self._guard = threading.Lock()

    def _db(self, create: bool = False) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists() and not create:
                return None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")  # a judgement is on disk when set() returns
                conn.executescript(SCHEMA)
            except (OSError, sqlite3.DatabaseError) as exc:
                raise StoreError(f"cannot open the judgements in {self.path}: {exc}",
                                 "check the data directory is writable; the file is "
                                 f"{FILE} and can be copied elsewhere to keep it") from None
            self._conn = conn
        return self._conn

    def _write(self, what: str, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with writing(self.settings, what, lock=LOCK), self._guard:
            conn = self._db(create=True)
            with conn:  # one transaction: all of it or none
                conn.executemany(sql, rows)

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._guard:
            conn = self._db()
            return [] if conn is None else conn.execute(sql, list(params)).fetchall()

    # -- judgements ------------------------------------------------------------------------------------------
    def set(self, kind: str, query: str, product_id: str, grade: int | None, *, mode: str = "", model: str = "",
            judge: str | None = None) -> None:
        """Judge one result (grade 0, 1 or 2), or forget the judgement (grade None)."""
        _check(kind, query)
        if grade is None:
            self._write("unjudge", "DELETE FROM judgements WHERE kind = ? AND query = ? AND product_id = ?",
                        [(kind, query, str(product_id))])
            return
        if grade not in GRADES:
            raise StoreError(f"grade {grade!r} is not one of 0, 1, 2", "2 relevant, 1 partly, 0 not relevant")
        self._write("judge", "INSERT INTO judgements VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, query, "
                    "product_id) DO UPDATE SET grade = excluded.grade, judge = excluded.judge, judged_at = "
                    "excluded.judged_at, mode = excluded.mode, model = excluded.model",
                    [(kind, query, str(product_id), int(grade), judge or judge_name(), _now(), mode, model)])

    def grades(self, kind: str, query: str) -> dict[str, int]:
        return {pid: g for pid, g in self._read(
            "SELECT product_id, grade FROM judgements WHERE kind = ? AND query = ?", [kind, query])}

    def all(self) -> dict[tuple[str, str], dict[str, int]]:
        """(kind, query) -> {product id: grade}, queries in the order they were first judged."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for kind, query, pid, grade in self._read(
                "SELECT kind, query, product_id, grade FROM judgements ORDER BY judged_at, rowid"):
            out.setdefault((kind, query), {})[pid] = grade
        return out

    def rows(self) -> list[dict[str, Any]]:
        cols = ("kind", "query", "product_id", "grade", "judge", "judged_at", "mode", "model")
        return [dict(zip(cols, r)) for r in self._read(f"SELECT {', '.join(cols)} FROM judgements "
                                                        "ORDER BY kind, query, product_id")]

    def count(self) -> int:
        rows = self._read("SELECT count(*) FROM judgements")
        return int(rows[0][0]) if rows else 0

    # -- what was shown ---------------------------------------------------------------------------------------
    def record_shown(self, kind: str, query: str, mode: str, model: str, ids: Iterable[str]) -> None:
        _check(kind, query)
        self._write("judge", "INSERT OR REPLACE INTO shown VALUES (?, ?, ?, ?, ?, ?)",
                    [(kind, query, mode, model, json.dumps([str(i) for i in ids]), _now())])

    def shown(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """(kind, query) -> [{"mode", "model", "ids", "shown_at"}], latest first."""
        out: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for kind, query, mode, model, ids, at in self._read(
                "SELECT kind, query, mode, model, ids, shown_at FROM shown ORDER BY shown_at DESC, rowid DESC"):
            out.setdefault((kind, query), []).append({"mode": mode, "model": model, "ids": json.loads(ids),
                                                      "shown_at": at})
        return out

    # -- interleaving -----------------------------------------------------------------------------------------
    def record_interleaving(self, kind: str, query: str, ranker_a: str, ranker_b: str, credit_a: float,
                            credit_b: float, judged: int) -> None:
        _check(kind, query)
        self._write("interleave", "INSERT OR REPLACE INTO interleavings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(kind, query, ranker_a, ranker_b, float(credit_a), float(credit_b), int(judged),
                      judge_name(), _now())])

    def interleavings(self) -> list[dict[str, Any]]:
        cols = ("kind", "query", "ranker_a", "ranker_b", "credit_a", "credit_b", "judged", "judge", "updated_at")
        return [dict(zip(cols, r)) for r in self._read(f"SELECT {', '.join(cols)} FROM interleavings "
                                                        "ORDER BY updated_at")]

    def close(self) -> None:
        with self._guard:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _check(kind: str, query: str) -> None:
    if kind not in KINDS:
        raise StoreError(f"unknown query kind {kind!r}", f"one of {', '.join(KINDS)}")
    if not str(query).strip():
        raise StoreError("a judgement needs a query", "search for something first")
