"""An in-memory BM25 index that reproduces SQLite FTS5's bm25() on products_fts, a few ms at 100k products.

FTS5 scores every document matching any query word before ORDER BY ... LIMIT (~63 ms at 100k). This index
holds, per FTS5 term, its postings (dense document number, precomputed BM25 term factor), so a query is a
few numpy gathers. It is exact, not an approximation:

- the terms are FTS5's own tokens (read from an fts5vocab table over products_fts; a query is tokenised by a
  private in-memory FTS5 table with the same tokenize option), so stemming and case/diacritic folding match;
- scores follow fts5_aux.c: idf_i = log((N - n_i + 0.5) / (n_i + 0.5)), 1e-6 when <= 0; f = sum over the
  phrase's hits of the column weight; score = sum_i idf_i * (f * (k1 + 1)) / (f + k1 * (1 - b + b * D / avgdl))
  with D the row's tokens over all columns and N, avgdl from FTS5's own averages record; evaluated in float64
  in the same order as the C code, so scores are bit-identical and ties break by rowid as FTS5's do.

The index is saved as ann/lexical.npz with a fingerprint of the FTS index it was read from (its structure
and averages records, which FTS5 rewrites on every change to products_fts). A query checks the fingerprint
first (two tiny reads) and declines (None) when the FTS content changed, so the caller falls back to FTS5
and never serves stale results.

An update after a small change (LexicalIndex.updated) does not read the FTS5 vocabulary again: the file also
keeps each posting's weighted frequency f, each row's token count D and a digest of each row's content, so the
rows added, changed or removed since are found by their digests, only those rows are tokenised (by a private
FTS5 table with the same columns and tokenize option), their postings are merged into the kept ones, and every
factor is recomputed from f, D and FTS5's new averages: the result is the index a full build would make.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
import struct
import threading
import zipfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

FILE = "lexical.npz"
FORMAT = 3  # 3: freqs, lengths and row digests saved too (for updates)
READABLE = (2, 3)  # 2 has the same query arrays: it answers queries; the next change rebuilds it whole
FTS_TABLE = "products_fts"
WEIGHTS = (2.0, 1.0)  # bm25(products_fts, 2.0, 1.0) in Store.lexical: title 2, text 1, further columns 1
K1 = 1.2
B = 0.75
UPDATE_SHARE = 0.2  # an update handles at most this share of the rows changed; a full build beyond
MAP_FROM = 32 << 20  # a lexical.npz this large has its arrays memory-mapped: processes share one copy (1M: ~0.2 GB)


# -- the FTS index's identity -------------------------------------------------------------------
def fts_fingerprint(conn: sqlite3.Connection, table: str = FTS_TABLE) -> str | None:
    """A digest of the FTS table's definition, averages record (row count, tokens per column) and structure
    record (segments and a write counter FTS5 bumps on every flush), or None when there is no such table.
    Any insert, update or delete through products_fts changes it; reading it costs two small row lookups."""
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [table]).fetchone()
    if sql is None:
        return None
    return _digest(sql[0], conn, table)


def _digest(sql: str, conn: sqlite3.Connection, table: str) -> str:
    h = hashlib.sha1(sql.encode("utf-8"))
    for rid, block in conn.execute(f'SELECT id, block FROM "{table}_data" WHERE id IN (1, 10) ORDER BY id'):
        h.update(str(rid).encode())
        h.update(bytes(block))
    return h.hexdigest()


def _varints(data: bytes) -> list[int]:
    """SQLite's big-endian varints (7 bits a byte, the ninth byte carries 8), as FTS5 writes them."""
    out, i = [], 0
    while i < len(data):
        value = 0
        for j in range(9):
            byte = data[i]
            i += 1
            if j == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        out.append(value)
    return out


def _tokenize_option(sql: str) -> str:
    found = re.search(r"tokenize\s*=\s*'((?:[^']|'')*)'", sql, re.IGNORECASE)
    return found.group(1).replace("''", "'") if found else "unicode61"


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')]


def _column_weights(weights: Sequence[float], columns: Sequence[str]) -> np.ndarray:
    return np.array([weights[i] if i < len(weights) else 1.0 for i in range(len(columns))], dtype=np.float64)


def _averages(block, n_columns: int) -> tuple[int, int]:
    """(row count, tokens over all columns) from FTS5's averages record."""
    stats = (_varints(bytes(block[0])) if block and block[0] else []) or [0]  # [0]: no rows yet
    return stats[0], sum(stats[1:1 + n_columns])


def _postings(term_of: np.ndarray, doc: np.ndarray, col: np.ndarray, n_docs: int, col_weight: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One posting per (term, doc) from token instances, sorted by term then doc: (term, doc, f) with f the
    sum of the column weights of its hits, added in instance order as FTS5 does."""
    width = max(1, n_docs)
    key = term_of * width + doc
    order = np.argsort(key, kind="stable")
    key, w = key[order], col_weight[col[order]]
    if not len(key):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    return key[first] // width, key[first] % width, np.add.reduceat(w, first)


def _signature(values: Sequence) -> int:
    """A 64-bit digest of a row's indexed columns (NULL and '' index alike)."""
    text = "\x1f".join("" if v is None else str(v) for v in values)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                          "little", signed=True)


def _signatures(conn: sqlite3.Connection, table: str, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rowids ascending, content digests) of every row of the FTS table (its content table's rows)."""
    cols = ", ".join(f'"{c}"' for c in columns)
    rowids: list[int] = []
    sigs: list[int] = []
    for row in conn.execute(f'SELECT rowid, {cols} FROM "{table}" ORDER BY rowid'):
        rowids.append(row[0])
        sigs.append(_signature(row[1:]))
    return np.array(rowids, dtype=np.int64), np.array(sigs, dtype=np.int64)


def _contents(conn: sqlite3.Connection, table: str, columns: Sequence[str], rowids: np.ndarray) -> list[tuple]:
    """[(rowid, column values...)] of these rows of the FTS table."""
    cols = ", ".join(f'"{c}"' for c in columns)
    out: list[tuple] = []
    ids = [int(r) for r in rowids]
    for s in range(0, len(ids), 500):
        chunk = ids[s:s + 500]
        out += conn.execute(f'SELECT rowid, {cols} FROM "{table}" WHERE rowid IN ({",".join("?" * len(chunk))})',
                            chunk).fetchall()
    return out


def _tokenise(tokenize: str, columns: Sequence[str], rows: list[tuple]) -> tuple[list[str], list[int], list[int]]:
    """FTS5's token instances of these rows, as (terms, rowids, column numbers): a private in-memory FTS5 table
    with the same tokenize option and number of columns indexes them, and its fts5vocab lists them."""
    conn = sqlite3.connect(":memory:")
    try:
        quoted = "'" + tokenize.replace("'", "''") + "'"
        names = [f"c{i}" for i in range(len(columns))]
        conn.execute(f"CREATE VIRTUAL TABLE t USING fts5({', '.join(names)}, tokenize={quoted})")
        conn.execute("CREATE VIRTUAL TABLE tv USING fts5vocab(t, instance)")
        conn.executemany(f"INSERT INTO t (rowid, {', '.join(names)}) VALUES ({', '.join('?' * (len(names) + 1))})",
                         rows)
        number = {name: i for i, name in enumerate(names)}
        terms, docs, cols = [], [], []
        for term, doc, col in conn.execute("SELECT term, doc, col FROM tv"):
            terms.append(term)
            docs.append(doc)
            cols.append(number[col])
        return terms, docs, cols
    finally:
        conn.close()


# -- query tokenisation -------------------------------------------------------------------------
class QueryTokenizer:
    """Tokenise words exactly as an FTS5 table with `tokenize` does (a one-column in-memory FTS5 table and
    an fts5vocab over it). Results are cached per word, so a repeated word costs a dict lookup."""

    CACHE = 20_000

    def __init__(self, tokenize: str) -> None:
        self.tokenize = tokenize
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        quoted = "'" + tokenize.replace("'", "''") + "'"
        self._conn.execute(f"CREATE VIRTUAL TABLE q USING fts5(w, tokenize={quoted})")
        self._conn.execute("CREATE VIRTUAL TABLE qv USING fts5vocab(q, instance)")
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, ...]] = {}

    def tokens(self, words: Sequence[str]) -> list[tuple[str, ...]]:
        """Each word's FTS5 tokens, in order."""
        missing = list(dict.fromkeys(w for w in words if w not in self._cache))
        if missing:
            with self._lock:
                found: dict[int, list[tuple[int, str]]] = {}
                with self._conn:
                    self._conn.executemany("INSERT INTO q (rowid, w) VALUES (?, ?)", enumerate(missing, start=1))
                for doc, offset, term in self._conn.execute("SELECT doc, offset, term FROM qv"):
                    found.setdefault(doc, []).append((offset, term))
                with self._conn:
                    self._conn.execute("DELETE FROM q")
                if len(self._cache) > self.CACHE:
                    self._cache.clear()
                for i, word in enumerate(missing, start=1):
                    self._cache[word] = tuple(t for _, t in sorted(found.get(i, [])))
        return [self._cache[w] for w in words]


def _mapped_member(path: Path, archive: zipfile.ZipFile, name: str) -> np.ndarray | None:
    """The array `name` of an uncompressed .npz (np.savez) memory-mapped read-only in place, or None when the
    member is compressed (then it is read). Pages come from the page cache, shared by every process."""
    info = archive.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"{path}: no local header for {name}")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        fh.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
    if dtype.hasobject or offset + int(np.prod(shape)) * dtype.itemsize > info.header_offset + 30 + name_len + \
            extra_len + info.file_size:
        raise ValueError(f"{path}: member {name} is shorter than its header says")
    if not int(np.prod(shape)):
        return np.zeros(shape, dtype)
    return np.asarray(np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset,
                                order="F" if fortran else "C"))


def _kth_best(values: np.ndarray, k: int, bins: int = 1024) -> float:
    """The k-th largest of `values` (all > 0, k <= len), exactly. np.partition slows 10-40x when many values tie
    (numpy 2.4: 6.8 ms for 62,500 values 90% equal, 0.15 ms distinct): a histogram finds the bin holding the k-th
    largest, and only the values from that bin up are sorted."""
    scaled = (values * ((bins - 1) / values.max())).astype(np.intp)  # monotone: a higher bin holds higher values
    from_top = np.cumsum(np.bincount(scaled, minlength=bins)[::-1])
    at = bins - 1 - int(np.searchsorted(from_top, k))
    near = np.sort(values[scaled >= at])
    return float(near[len(near) - k])


# -- the index ----------------------------------------------------------------------------------
class LexicalIndex:
    """Postings of every FTS5 term: docs[offsets[t]:offsets[t + 1]] (dense document numbers, rowid order)
    with factor = (f * (k1 + 1)) / (f + k1 * (1 - b + b * D / avgdl)), the BM25 term factor for that row.

    For updates (not needed to query, so loaded only on request): freqs (f per posting), lengths (D per row)
    and sigs (a digest of each row's content)."""

    def __init__(self, *, rowids: np.ndarray, terms: list[str], offsets: np.ndarray, docs: np.ndarray,
                 factors: np.ndarray, n_rows: int, meta: dict, freqs: np.ndarray | None = None,
                 lengths: np.ndarray | None = None, sigs: np.ndarray | None = None) -> None:
        self.rowids = rowids  # int64 (N,), ascending: dense document number -> rowid
        self.terms = {t: i for i, t in enumerate(terms)}
        self.term_list = terms
        self.offsets = offsets  # int64 (T + 1,)
        self.docs = docs  # int32 (P,)
        self.factors = factors  # float64 (P,)
        self.n_rows = n_rows  # FTS5's row count (N in the IDF)
        self.meta = meta  # fingerprint, tokenize, weights, k1, b, avgdl, ...
        self.fingerprint: str = meta["fingerprint"]
        self.freqs = freqs  # float32 (P,): f, the column weights summed over the term's hits in the row
        self.lengths = lengths  # int32 (N,): D, the row's tokens over all columns
        self.sigs = sigs  # int64 (N,): digest of the row's indexed columns
        self.tokenizer = QueryTokenizer(meta["tokenize"])

    def __len__(self) -> int:
        return len(self.rowids)

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def build(cls, conn: sqlite3.Connection, weights: Sequence[float] = WEIGHTS,
              table: str = FTS_TABLE) -> "LexicalIndex":
        """Read products_fts's terms, rows and sizes (one pass over an fts5vocab 'instance' table)."""
        sql_row = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [table]).fetchone()
        if sql_row is None:
            raise ValueError(f"no FTS table {table}")
        sql = sql_row[0]
        columns = _columns(conn, table)
        vocab = f"temp.lexical_vocab_{os.getpid()}_{threading.get_ident()}"
        conn.execute(f'CREATE VIRTUAL TABLE IF NOT EXISTS {vocab} USING fts5vocab(main, "{table}", instance)')
        case = " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate(columns))
        width = max(1, len(columns) - 1).bit_length()
        conn.execute("SAVEPOINT lexical_build")  # one read snapshot: fingerprint and postings agree
        try:
            fingerprint = _digest(sql, conn, table)
            averages = conn.execute(f'SELECT block FROM "{table}_data" WHERE id = 1').fetchone()
            rowids = np.fromiter((r for (r,) in conn.execute(f'SELECT id FROM "{table}_docsize" ORDER BY id')),
                                 dtype=np.int64)
            rows = conn.execute(
                f"SELECT term, count(*), group_concat((doc << {width}) | (CASE col {case} END), ' ') "
                f"FROM {vocab} GROUP BY term ORDER BY term").fetchall()
            sig_rowids, sigs = _signatures(conn, table, columns)
        finally:
            conn.execute("RELEASE lexical_build")
            conn.execute(f"DROP TABLE IF EXISTS {vocab}")
        if not np.array_equal(sig_rowids, rowids):
            raise ValueError(f"{table}'s rows disagree with its content table (rebuild the FTS index)")
        n_rows, n_tokens = _averages(averages, len(columns))
        terms = [r[0] for r in rows]
        counts = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        codes = (np.array(" ".join(r[2] for r in rows).split(), dtype=np.int64) if rows
                 else np.zeros(0, dtype=np.int64))
        term_of = np.repeat(np.arange(len(terms), dtype=np.int64), counts)
        doc = np.searchsorted(rowids, codes >> width)
        col = codes & ((1 << width) - 1)
        p_term, p_doc, freq = _postings(term_of, doc, col, len(rowids), _column_weights(weights, columns))
        length = np.bincount(doc, minlength=len(rowids))
        offsets = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(p_term, minlength=len(terms)), out=offsets[1:])
        meta = {"format": FORMAT, "fingerprint": fingerprint, "tokenize": _tokenize_option(sql),
                "columns": columns, "weights": list(weights), "k1": K1, "b": B,
                "avgdl": float(n_tokens) / float(n_rows) if n_rows else 1.0,
                "n_tokens": int(n_tokens), "n_rows": int(n_rows), "instances": int(len(codes))}
        return cls._assemble(rowids, terms, offsets, p_doc, freq, length, sigs, meta)

    @classmethod
    def _assemble(cls, rowids, terms, offsets, p_doc, freq, length, sigs, meta) -> "LexicalIndex":
        """The index from its postings (sorted by term, then document): BM25 factors computed from f, D and
        avgdl in C's evaluation order, in float64, so scores are bit-identical to FTS5's."""
        length64 = np.asarray(length, dtype=np.float64)
        freq = np.asarray(freq, dtype=np.float64)
        norm = K1 * ((1 - B) + (B * length64) / meta["avgdl"])  # k1 * (1 - b + b * D / avgdl)
        factors = (freq * (K1 + 1.0)) / (freq + norm[p_doc])
        freqs = freq.astype(np.float32)
        if not np.array_equal(freqs, freq):  # non-integer weights: keep f exact
            freqs = freq
        return cls(rowids=rowids, terms=terms, offsets=offsets, docs=np.asarray(p_doc, dtype=np.int32),
                   factors=factors.astype(np.float64), n_rows=int(meta["n_rows"]), meta=meta, freqs=freqs,
                   lengths=np.asarray(length, dtype=np.int32), sigs=np.asarray(sigs, dtype=np.int64))

    # -- updating ------------------------------------------------------------------------------
    @classmethod
    def updated(cls, old: "LexicalIndex", conn: sqlite3.Connection, table: str = FTS_TABLE,
                max_share: float = UPDATE_SHARE) -> "LexicalIndex | None":
        """The index a full build would make now, made from `old` (loaded with `full=True`) and only the rows
        added, changed or removed since; None when an update does not apply (other columns, tokenizer or
        weights, an index without update data, or more than `max_share` of the rows changed: build then)."""
        if old.freqs is None or old.lengths is None or old.sigs is None:
            return None
        sql_row = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", [table]).fetchone()
        if sql_row is None:
            return None
        sql = sql_row[0]
        columns = _columns(conn, table)
        weights = old.meta["weights"]
        if _tokenize_option(sql) != old.meta["tokenize"] or columns != old.meta["columns"] or \
                old.meta.get("k1") != K1 or old.meta.get("b") != B:
            return None
        conn.execute("SAVEPOINT lexical_update")  # one read snapshot
        try:
            fingerprint = _digest(sql, conn, table)
            averages = conn.execute(f'SELECT block FROM "{table}_data" WHERE id = 1').fetchone()
            rowids, sigs = _signatures(conn, table, columns)
            # what changed: rows only in old (removed), only now (added), in both with another digest (changed)
            where = np.minimum(np.searchsorted(old.rowids, rowids), max(0, len(old.rowids) - 1))
            known = (old.rowids[where] == rowids) if len(old.rowids) else np.zeros(len(rowids), dtype=bool)
            same = known & (old.sigs[where] == sigs) if len(old.rowids) else known
            kept_old = np.zeros(len(old.rowids), dtype=bool)
            kept_old[where[same]] = True
            fresh = rowids[~same]  # added or changed: tokenised here
            n_removed = int(len(old.rowids) - known.sum())
            n_changed = int((known & ~same).sum())
            if len(fresh) + n_removed > max_share * max(1, len(rowids)):
                return None
            contents = _contents(conn, table, columns, fresh)
        finally:
            conn.execute("RELEASE lexical_update")
        n_rows, n_tokens = _averages(averages, len(columns))
        if n_rows != len(rowids):
            return None  # the FTS index and its content table disagree: a full build reports it
        f_terms, f_doc, f_col = _tokenise(old.meta["tokenize"], columns, contents)
        # terms: the old ones with postings left, and the new ones (sorted as fts5vocab sorts: by UTF-8 bytes)
        all_terms = sorted(set(old.term_list).union(f_terms)) if f_terms else list(old.term_list)
        term_id = {t: i for i, t in enumerate(all_terms)}
        old_map = np.fromiter((term_id[t] for t in old.term_list), dtype=np.int64, count=len(old.term_list))
        n = len(rowids)
        # kept postings: still sorted by (term, document) after the monotone renumbering of both
        o_term = np.repeat(old_map, np.diff(old.offsets))
        keep = kept_old[old.docs]
        doc_map = np.searchsorted(rowids, old.rowids)
        k_term, k_doc, k_freq = o_term[keep], doc_map[old.docs[keep]], old.freqs[keep].astype(np.float64)
        # the fresh rows' postings
        f_term_ids = np.fromiter((term_id[t] for t in f_terms), dtype=np.int64, count=len(f_terms))
        f_dense = np.searchsorted(rowids, np.asarray(f_doc, dtype=np.int64))
        n_term, n_doc, n_freq = _postings(f_term_ids, f_dense, np.asarray(f_col, dtype=np.int64), n,
                                          _column_weights(weights, columns))
        key_old = k_term * max(1, n) + k_doc
        at = np.searchsorted(key_old, n_term * max(1, n) + n_doc)
        p_term, p_doc, freq = np.insert(k_term, at, n_term), np.insert(k_doc, at, n_doc), np.insert(k_freq, at, n_freq)
        # terms left without postings go, as in a full build
        counts = np.bincount(p_term, minlength=len(all_terms))
        live = counts > 0
        if not live.all():
            all_terms = [t for t, alive in zip(all_terms, live) if alive]
            p_term = (np.cumsum(live) - 1)[p_term]
            counts = counts[live]
        offsets = np.zeros(len(all_terms) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        length = np.zeros(n, dtype=np.int64)
        length[doc_map[kept_old]] = old.lengths[kept_old]
        length[np.searchsorted(rowids, fresh)] = np.bincount(f_dense, minlength=n)[np.searchsorted(rowids, fresh)]
        if int(length.sum()) != n_tokens:
            return None  # not what FTS5 counted: never serve a differing index
        meta = {"format": FORMAT, "fingerprint": fingerprint, "tokenize": old.meta["tokenize"],
                "columns": columns, "weights": list(weights), "k1": K1, "b": B,
                "avgdl": float(n_tokens) / float(n_rows) if n_rows else 1.0,
                "n_tokens": int(n_tokens), "n_rows": int(n_rows), "instances": int(n_tokens),
                "updated_from": old.fingerprint,
                "update": {"added": int(len(fresh) - n_changed), "changed": n_changed, "removed": n_removed}}
        return cls._assemble(rowids, all_terms, offsets, p_doc, freq, length, sigs, meta)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        """Write ann/lexical.npz atomically (a reader sees the old file or the new one)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / FILE
        tmp = directory / f".{FILE}.{os.getpid()}.tmp"
        extra = {k: v for k, v in (("freqs", self.freqs), ("lengths", self.lengths), ("sigs", self.sigs))
                 if v is not None}
        with open(tmp, "wb") as fh:
            np.savez(fh, rowids=self.rowids, offsets=self.offsets, docs=self.docs, factors=self.factors,
                     terms=np.frombuffer(json.dumps(self.term_list).encode("utf-8"), dtype=np.uint8),
                     meta=np.frombuffer(json.dumps(self.meta).encode("utf-8"), dtype=np.uint8), **extra)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, directory: Path | str, full: bool = False) -> "LexicalIndex | None":
        """The saved index, or None when there is none (or it is unreadable, or of another format).
        `full`: also the arrays an update needs (a query does not read them)."""
        path = Path(directory) / FILE
        try:
            mapped = path.stat().st_size >= MAP_FROM
            with np.load(path) as data:
                meta = json.loads(data["meta"].tobytes().decode("utf-8"))
                if meta.get("format") not in READABLE:
                    return None
                terms = json.loads(data["terms"].tobytes().decode("utf-8"))
                names = ["rowids", "offsets", "docs", "factors"] + \
                    ([k for k in ("freqs", "lengths", "sigs") if k in data.files] if full else [])
                arrays = {k: (_mapped_member(path, data.zip, k) if mapped else None) for k in names}
                arrays = {k: data[k] if v is None else v for k, v in arrays.items()}
                return cls(terms=terms, n_rows=int(meta["n_rows"]), meta=meta, **arrays)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, struct.error):  # damaged: FTS5 answers
            return None

    @staticmethod
    def saved_fingerprint(directory: Path | str) -> str | None:
        """The fingerprint of the saved index (reads only its small meta member)."""
        try:
            with np.load(Path(directory) / FILE) as data:
                meta = json.loads(data["meta"].tobytes().decode("utf-8"))
            return meta.get("fingerprint") if meta.get("format") in READABLE else None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None

    # -- querying ------------------------------------------------------------------------------
    def doc_freq(self, token: str) -> int:
        t = self.terms.get(token)
        return 0 if t is None else int(self.offsets[t + 1] - self.offsets[t])

    def phrase_tokens(self, words: Sequence[str]) -> list[str] | None:
        """Each word's single FTS5 token; None when a word is not exactly one token (FTS5 would make it a
        multi-token phrase, which this index does not do: the caller uses FTS5 then)."""
        out = []
        for toks in self.tokenizer.tokens(words):
            if len(toks) != 1:
                return None
            out.append(toks[0])
        return out

    def search(self, tokens: Sequence[str], limit: int, allowed: np.ndarray | None = None
               ) -> list[tuple[int, float]]:
        """[(rowid, score)] best first for the OR of `tokens` (one phrase each, repeats count again as in
        FTS5), score = -bm25 exactly; ties by rowid. `allowed`: rowids a hit must be in (None: all)."""
        n = len(self.rowids)
        if not tokens or n == 0 or limit <= 0:
            return []
        docs, parts = [], []
        for token in tokens:
            t = self.terms.get(token)
            if t is None:
                continue
            lo, hi = int(self.offsets[t]), int(self.offsets[t + 1])
            n_hit = hi - lo
            idf = math.log((self.n_rows - n_hit + 0.5) / (n_hit + 0.5))  # libm, as SQLite
            if idf <= 0.0:
                idf = 1e-6
            docs.append(self.docs[lo:hi])
            parts.append(idf * self.factors[lo:hi])
        if not docs:
            return []
        # bincount adds each row's phrase terms in phrase order from 0.0, as fts5Bm25Function does
        acc = np.bincount(np.concatenate(docs) if len(docs) > 1 else docs[0],
                          np.concatenate(parts) if len(parts) > 1 else parts[0], minlength=n)
        if allowed is not None:
            acc *= self._allowed_mask(allowed)
        found = self._candidates(acc, limit)
        if len(found) == 0:
            return []
        scores = acc[found]
        if len(found) > limit:
            kth = np.partition(scores, len(scores) - limit)[len(scores) - limit]
            keep = scores >= kth
            found, scores = found[keep], scores[keep]
        order = np.lexsort((found, -scores))[:limit]
        return list(zip(self.rowids[found[order]].tolist(), scores[order].tolist()))

    @staticmethod
    def _candidates(acc: np.ndarray, limit: int) -> np.ndarray:
        """Rows that may be in the top `limit` (every matching row scores > 0), ascending: those above a threshold
        never above the limit-th best of all rows (the limit-th best of a strided sample), and of the rows tied at
        it only the first ones (ties rank by rowid): a word in half the products ties ~10^5 rows at 1M."""
        stride = max(1, min(16, len(acc) // (limit * 32)))
        if stride > 1:
            sample = acc[::stride]
            sample = sample[sample > 0.0]
            if len(sample) > limit:
                threshold = _kth_best(sample, limit)
                above = np.flatnonzero(acc > threshold)
                if len(above) >= limit:
                    return above
                tied = np.flatnonzero(acc == threshold)[:limit - len(above)]
                return np.union1d(above, tied)
        return np.flatnonzero(acc > 0.0)

    def _allowed_mask(self, allowed: np.ndarray) -> np.ndarray:
        """A bool per row: is its rowid in `allowed`."""
        allowed = np.asarray(allowed, dtype=np.int64)
        mask = np.zeros(len(self.rowids), dtype=bool)
        if len(allowed) == 0 or len(self.rowids) == 0:
            return mask
        first, last = int(self.rowids[0]), int(self.rowids[-1])
        if last - first + 1 == len(self.rowids):  # rowids without gaps (the usual case): position = rowid - first
            pos = allowed - first
            mask[pos[(pos >= 0) & (pos < len(self.rowids))]] = True
        else:
            pos = np.minimum(np.searchsorted(self.rowids, allowed), len(self.rowids) - 1)
            mask[pos[self.rowids[pos] == allowed]] = True
        return mask


# -- the build step -----------------------------------------------------------------------------
def ensure_lexical_index(ann_dir: Path | str, conn: sqlite3.Connection) -> str:
    """Write ann/lexical.npz unless the saved one already matches products_fts. Returns "unchanged",
    "updated" (a small change applied to the saved index), "built" or "none" (no FTS table)."""
    current = fts_fingerprint(conn)
    if current is None:
        return "none"
    if LexicalIndex.saved_fingerprint(ann_dir) == current:
        return "unchanged"
    return _update_or_build(ann_dir, conn, ann_dir)


def _update_or_build(old_dir: Path | str | None, conn: sqlite3.Connection, target: Path | str) -> str:
    """Save into `target` the index updated from the one in `old_dir` when a small change allows it, else a
    full build. Returns "updated" or "built"."""
    old = LexicalIndex.load(old_dir, full=True) if old_dir is not None else None
    if old is not None:
        index = LexicalIndex.updated(old, conn)
        if index is not None:
            index.save(target)
            return "updated"
    LexicalIndex.build(conn).save(target)
    return "built"


def write_lexical_index(gen, conn: sqlite3.Connection, announce: Callable[[], None] = lambda: None) -> str:
    """Put lexical.npz into the new generation `gen` (mmtui.index.generations): carried over from the current one
    when it matches products_fts and checks out in full, updated from it after a small change, else built
    (`announce()` first). Returns "unchanged", "updated", "built" or "none"."""
    current = fts_fingerprint(conn)
    if current is None:
        return "none"
    old = gen.base
    intact = old is not None and old.files is not None and old.has(FILE) and \
        not old.check(full=True, names={"lexical"})
    if intact and LexicalIndex.saved_fingerprint(old.dir) == current:
        gen.reuse([FILE])
        return "unchanged"
    announce()
    return _update_or_build(old.dir if intact else None, conn, gen.dir)


def refresh_lexical_index(settings, conn: sqlite3.Connection) -> str:
    """After products_fts changed outside a build (`mmtui enrich`): a new generation with the lexical index
    rebuilt and every other file carried over. Returns what write_lexical_index did ("none" without an index)."""
    from mmtui.store.datadir import writing
    from mmtui.index.generations import LEGACY, NewGeneration, current_or_none

    with writing(settings, "lexical index"):
        old = current_or_none(settings.ann_dir)
        if old is None:
            return "none"
        with NewGeneration(settings.ann_dir, old) as gen:
            names = sorted(old.files) if old.files is not None else sorted(
                p.name for p in old.dir.iterdir() if p.is_file() and p.name != FILE and old.name == LEGACY
                and (p.suffix in (".npy", ".hnsw") or p.name.endswith(".manifest.json")))
            gen.reuse([n for n in names if n != FILE])
            outcome = write_lexical_index(gen, conn)
            gen.commit()
        return outcome


class FastLexical:
    """The saved index of a data directory, used while it matches products_fts.

    When products_fts changes (a build or `mmtui enrich`, in this process or another), queries decline
    until ann/lexical.npz is rewritten for the new content; then it is reloaded (noticed by the file's
    mtime, so a stale state costs one stat per query besides the fingerprint check).
    """

    def __init__(self, ann_dir: Path | str) -> None:
        self.ann_dir = Path(ann_dir)
        self.index: LexicalIndex | None = None
        self._seen: tuple | None = None  # (mtime_ns, size) of the file last loaded or found stale
        self._lock = threading.Lock()

    def _file_state(self) -> tuple | None:
        try:
            st = (self.ann_dir / FILE).stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self, conn: sqlite3.Connection) -> LexicalIndex | None:
        """The index if it matches products_fts now (loading or reloading it when the file changed)."""
        fingerprint = fts_fingerprint(conn)
        index = self.index
        if index is not None and index.fingerprint == fingerprint:
            return index
        state = self._file_state()
        if state is None or state == self._seen:
            return None
        with self._lock:
            self._seen = state
            if LexicalIndex.saved_fingerprint(self.ann_dir) != fingerprint:
                return None
            loaded = LexicalIndex.load(self.ann_dir)
            if loaded is None or loaded.fingerprint != fingerprint:
                return None
            self.index = loaded
            return loaded

    def query(self, conn: sqlite3.Connection, words: Sequence[str], limit: int,
              allowed: np.ndarray | None = None, common_share: float = 0.5) -> list[tuple[int, float]] | None:
        """Store.lexical's answer for these distinct query words, or None when this index cannot give it
        exactly (no current index, or a word FTS5 splits into several tokens): use FTS5 then.

        Words found in more than `common_share` of the rows are left out while a rarer one remains, as
        Store.informative_words does."""
        try:
            index = self.current(conn)
        except sqlite3.Error:
            return None
        if index is None:
            return None
        tokens = index.phrase_tokens(words)
        if tokens is None:
            return None
        if len(tokens) >= 2:
            keep = [t for t in tokens if index.doc_freq(t) <= common_share * index.n_rows]
            tokens = keep or tokens
        return index.search(tokens, limit, allowed)
