"""The rowids a `--where` filter allows, from product columns held as numpy arrays instead of a SQL scan.

At 1M products `SELECT rowid FROM products WHERE ...` scans the table each time a new filter is used (~0.5-1 s).
Here a column is read once (on the first filter that needs it) into codes (text: one code per distinct value) or
floats (price); a filter then costs a few numpy operations over 1M entries.

The semantics are SQLite's own, not re-implemented: a text filter is evaluated by SQLite over the column's distinct
values (the same clause, COLLATE NOCASE, LIKE for `~`, in a table declared like products), and the rows whose
value matched are allowed. Prices compare as SQLite compares REAL values (NULL matches nothing); a column holding
values SQLite would compare otherwise (a price stored as text) is left to SQL, as is `id` (one value per row).
"""

from __future__ import annotations

import sqlite3

import numpy as np

from mmtui.store.filters import FIELDS, Filter

SQL_ONLY = {"id"}  # as many distinct values as rows: SQL is as fast
_NUMERIC_OPS = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal, "=": np.equal,
                "!=": np.not_equal}


class ProductsChanged(Exception):
    """The products table changed while a column was read: use SQL for this filter, and read the columns again."""


class FilterColumns:
    """Columns of one version of the products table (drop it when the table changes)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._rowids: np.ndarray | None = None
        self._columns: dict[str, tuple] = {}  # column -> ("text", codes, values) | ("real", floats) | ("sql",)

    def allowed(self, filters: list[Filter]) -> np.ndarray | None:
        """Sorted rowids of the products every filter allows; None when a filter needs SQL (see SQL_ONLY, and
        filters that only duck-type Filter with their own .sql(), e.g. mmtui.evaluation.evaluate.SplitPool)."""
        if not all(type(f) is Filter and f.field in FIELDS for f in filters):
            return None
        columns = [self._column(FIELDS[f.field][0]) for f in filters]
        if any(c[0] == "sql" for c in columns):
            return None
        mask = np.ones(len(self.rowids), dtype=bool)
        for f, column in zip(filters, columns):
            mask &= self._matches(f, column)
        return self.rowids[mask]

    @property
    def rowids(self) -> np.ndarray:
        if self._rowids is None:
            self._rowids = np.fromiter((r for (r,) in self.conn.execute("SELECT rowid FROM products ORDER BY rowid")),
                                       dtype=np.int64)
        return self._rowids

    def _column(self, name: str) -> tuple:
        column = self._columns.get(name)
        if column is None:
            column = self._columns[name] = self._read(name)
        return column

    def _read(self, name: str) -> tuple:
        if name in SQL_ONLY:
            return ("sql",)
        declared = {row[1]: (row[2] or "").upper() for row in self.conn.execute("PRAGMA table_info(products)")}
        # rowids read with the column: the same rows as self.rowids, or the table changed in between
        rows = self.conn.execute(f"SELECT rowid, {name} FROM products ORDER BY rowid").fetchall()  # noqa: S608
        rowids = np.fromiter((r for r, _ in rows), dtype=np.int64, count=len(rows))
        if not np.array_equal(rowids, self.rowids):
            raise ProductsChanged("the products changed while their columns were read")
        if declared.get(name) in ("FLOAT", "REAL", "DOUBLE"):
            values = [v for _, v in rows]
            if any(v is not None and not isinstance(v, (int, float)) for v in values):
                return ("sql",)  # a value stored as text compares as text in SQLite: let SQL do it
            return ("real", np.array([np.nan if v is None else v for v in values], dtype=np.float64))
        index: dict = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for _, v in rows), dtype=np.int32, count=len(rows))
        return ("text", codes, list(index), declared.get(name) or "")

    @staticmethod
    def _matches(f: Filter, column: tuple) -> np.ndarray:
        if column[0] == "real":
            values = column[1]
            if not isinstance(f.value, (int, float)):
                raise ValueError(f"a number filter with a text value: {f}")
            with np.errstate(invalid="ignore"):
                mask = _NUMERIC_OPS[f.op](values, float(f.value))
            return mask & ~np.isnan(values)  # NULL matches no comparison (!= included), as in SQL
        _, codes, values, declared = column
        clause, params = f.sql()
        # SQLite decides which distinct values match, in a table declared like products (same affinity)
        db = sqlite3.connect(":memory:")
        try:
            db.execute(f"CREATE TABLE products (code INTEGER, {f.field} {declared})")
            db.executemany("INSERT INTO products VALUES (?, ?)", enumerate(values))
            matching = [c for (c,) in db.execute(f"SELECT code FROM products WHERE {clause}", params)]  # noqa: S608
        finally:
            db.close()
        lookup = np.zeros(len(values), dtype=bool)
        lookup[matching] = True
        return lookup[codes]
