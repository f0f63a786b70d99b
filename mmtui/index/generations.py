"""Index generations: readers always see a complete, checked set of index files.

    ann/CURRENT.json     {"generation": "gen-000007", "files": {"image.hnsw": {"size": ..., "crc32": ...}, ...}}
    ann/gen-000007/      image.*, text.*, fused.* (manifest.json, labels.npy, vectors.npy, .hnsw), lexical.npz
    ann/gen-000006/      the previous generation, kept for a reader that read the pointer just before the swap

A writer (holding mmtui.store.datadir's lock) makes a new generation beside the current one: files it rebuilds are
written there, unchanged ones are hard-linked from the current generation; then it records every file's size
and CRC-32 and replaces CURRENT.json (os.replace, after fsync). Until then readers keep using the old one; a
failed write (full disk, killed process) leaves a directory that never becomes current and is removed by the
next writer. Generations older than the previous one are removed at each commit.

Checking: opening a generation checks every file's size, and the CRC-32 of the small files (manifests, labels)
and of the graphs (.hnsw, .usearch: both libraries trust the links they read). The vectors and the lexical index are checked in
full by `check(full=True)`: build-index does it before reusing a file, `mmtui check` on demand. Data dirs
written before generations (files directly in ann/) are read as the generation "legacy".
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from mmtui.errors import IndexMismatchError

POINTER = "CURRENT.json"
FORMAT = 1
LEGACY = "legacy"
_GEN = re.compile(r"^gen-(\d{6,})$")
CHUNK = 1 << 22
SMALL = 1 << 20  # files up to this size are checksummed at every open


class IndexDamagedError(IndexMismatchError):
    """An index file is missing, truncated or corrupted."""


def damaged(what: str, where: Path | str, detail: str = "") -> IndexDamagedError:
    return IndexDamagedError(f"the {what} in {where} is damaged" + (f" ({detail})" if detail else ""),
                             "run `mmtui build-index CATALOG` (the same catalog) to rebuild it: nothing is "
                             "re-encoded, only the damaged index files are written again")


def crc32_file(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                return crc
            crc = zlib.crc32(block, crc)


def index_of(filename: str) -> str:
    """Which index a file belongs to: "image.vectors.npy" -> "image", "lexical.npz" -> "lexical"."""
    return filename.split(".", 1)[0]


@dataclass
class Generation:
    """A committed set of index files: `dir` holds them, `files` their recorded size and CRC-32
    (None for a legacy data dir, which recorded none)."""

    ann_dir: Path
    name: str
    files: dict[str, dict] | None
    stamp: tuple | None = None

    @property
    def dir(self) -> Path:
        return self.ann_dir if self.name == LEGACY else self.ann_dir / self.name

    def has(self, filename: str) -> bool:
        return (filename in self.files) if self.files is not None else (self.dir / filename).is_file()

    def check(self, full: bool = False, names: set[str] | None = None) -> dict[str, str]:
        """{file: problem} for the files of `names` (every index when None): missing, wrong size, and a
        CRC-32 mismatch for the small files and the graphs (every file when `full`)."""
        problems: dict[str, str] = {}
        if self.files is None:
            return problems
        for filename, record in self.files.items():
            if names is not None and index_of(filename) not in names:
                continue
            path = self.dir / filename
            try:
                size = path.stat().st_size
            except OSError:
                problems[filename] = "missing"
                continue
            if size != record.get("size"):
                problems[filename] = f"{size} bytes instead of {record.get('size')}"
                continue
            if full or size <= SMALL or filename.endswith((".hnsw", ".usearch")):
                try:
                    crc = crc32_file(path)
                except OSError as exc:
                    problems[filename] = f"unreadable: {exc.strerror or exc}"
                    continue
                if crc != record.get("crc32"):
                    problems[filename] = "checksum mismatch"
        return problems

    def damaged_indexes(self, full: bool = False, names: set[str] | None = None) -> dict[str, IndexDamagedError]:
        """{index name: its error} for every index with a damaged file."""
        out: dict[str, IndexDamagedError] = {}
        for filename, problem in sorted(self.check(full, names).items()):
            name = index_of(filename)
            if name not in out:
                out[name] = damaged(f"{name} index", self.dir, f"{filename}: {problem}")
        return out


# -- reading ---------------------------------------------------------------------------------------
def stamp(ann_dir: Path) -> tuple | None:
    """A cheap token that changes whenever a new generation becomes current (one stat)."""
    for path in (Path(ann_dir) / POINTER, Path(ann_dir) / "image.manifest.json"):
        try:
            st = path.stat()
        except OSError:
            continue
        return path.name, st.st_ino, st.st_mtime_ns, st.st_size
    return None


def current(ann_dir: Path) -> Generation | None:
    """The current generation, None when nothing was ever built here; IndexDamagedError when the pointer
    itself is unreadable."""
    ann_dir = Path(ann_dir)
    token = stamp(ann_dir)
    pointer = ann_dir / POINTER
    try:
        text = pointer.read_text(encoding="utf-8")
    except FileNotFoundError:
        if (ann_dir / "image.manifest.json").is_file():
            return Generation(ann_dir, LEGACY, None, token)
        if ann_dir.is_dir() and any(_GEN.match(p.name) for p in ann_dir.iterdir()):
            raise damaged("index pointer", pointer, "missing") from None
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise damaged("index pointer", pointer, str(exc)) from None
    try:
        data = json.loads(text)
        name, files = data["generation"], data["files"]
        if not _GEN.match(name) or not isinstance(files, dict) or not all(
                isinstance(r, dict) and isinstance(r.get("size"), int) and isinstance(r.get("crc32"), int)
                and "/" not in f for f, r in files.items()):
            raise ValueError("unexpected contents")
    except (ValueError, KeyError, TypeError) as exc:
        raise damaged("index pointer", pointer, str(exc)) from None
    return Generation(ann_dir, name, files, token)


def current_or_none(ann_dir: Path) -> Generation | None:
    """current(), with a damaged pointer read as no generation (what a writer rebuilds from)."""
    try:
        return current(ann_dir)
    except IndexDamagedError:
        return None


# -- writing ---------------------------------------------------------------------------------------
class NewGeneration:
    """A generation being written: `dir` to save files into, `reuse()` to carry unchanged files over, then
    `commit()`. Leaving the `with` block without a commit removes it. The caller holds the write lock."""

    def __init__(self, ann_dir: Path, base: Generation | None) -> None:
        self.ann_dir = Path(ann_dir)
        self.base = base
        self.ann_dir.mkdir(parents=True, exist_ok=True)
        numbers = [int(m.group(1)) for p in self.ann_dir.iterdir() if (m := _GEN.match(p.name))]
        self.name = f"gen-{max(numbers, default=0) + 1:06d}"
        self.dir = self.ann_dir / self.name
        self.dir.mkdir()
        self._carried: dict[str, dict] = {}
        self.committed: Generation | None = None

    def __enter__(self) -> "NewGeneration":
        return self

    def __exit__(self, *exc) -> None:
        self.discard()

    def discard(self) -> None:
        """Remove this generation unless it was committed (a failed or abandoned write)."""
        if self.committed is None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def reuse(self, filenames: list[str]) -> None:
        """Hard-link (or copy) these files from the base generation, keeping their recorded checksums."""
        assert self.base is not None
        for filename in filenames:
            source, target = self.base.dir / filename, self.dir / filename
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
            if self.base.files is not None and filename in self.base.files:
                self._carried[filename] = dict(self.base.files[filename])

    def commit(self) -> Generation:
        """Record every file's size and CRC-32, then make this generation current (atomically)."""
        files: dict[str, dict] = {}
        for path in sorted(self.dir.iterdir()):
            if not path.is_file() or path.name.startswith("."):
                continue
            carried = self._carried.get(path.name)
            if carried is not None:  # its record as first written: a file damaged since stays found damaged
                files[path.name] = carried
            else:
                _fsync(path, strict=True)  # a full disk can surface only here
                files[path.name] = {"size": path.stat().st_size, "crc32": crc32_file(path)}
        _fsync(self.dir)
        pointer = self.ann_dir / POINTER
        tmp = self.ann_dir / f".{POINTER}.{os.getpid()}.tmp"
        body = {"format": FORMAT, "generation": self.name, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "files": files}
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(body, indent=1))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, pointer)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync(self.ann_dir)
        self.committed = Generation(self.ann_dir, self.name, files, stamp(self.ann_dir))
        self._remove_old()
        return self.committed

    def _remove_old(self) -> None:
        """Keep this generation and the one before it (a reader may have just read the old pointer)."""
        keep = {self.name, self.base.name if self.base is not None else None}
        for path in self.ann_dir.iterdir():
            if _GEN.match(path.name) and path.name not in keep:
                shutil.rmtree(path, ignore_errors=True)  # a reader still using it keeps its open/mapped files
            elif path.name.startswith(f".{POINTER}.") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a pointer a killed writer did not finish
        if LEGACY not in keep:
            for path in self.ann_dir.iterdir():  # files of a data dir written before generations
                if path.is_file() and path.name != POINTER and not path.name.startswith(".") and \
                        (path.suffix in (".npy", ".hnsw", ".usearch", ".npz") or
                         path.name.endswith(".manifest.json")):
                    path.unlink(missing_ok=True)


def _fsync(path: Path, strict: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if strict:
            raise
        return
    try:
        os.fsync(fd)
    except OSError:
        if strict:
            raise
    finally:
        os.close(fd)


# -- checking on demand ----------------------------------------------------------------------------
def verify(ann_dir: Path) -> dict:
    """Every file of the current generation checked in full (`mmtui check`): {"generation", "files", "bytes",
    "problems": {file: problem}, "seconds"}. Raises IndexMismatchError when nothing was built here."""
    started = time.perf_counter()
    gen = current(ann_dir)  # IndexDamagedError for a damaged pointer
    if gen is None:
        raise IndexMismatchError(f"no index in {ann_dir}", "run `mmtui build-index CATALOG`")
    problems = gen.check(full=True)
    files = gen.files or {}
    return {"generation": gen.name, "directory": str(gen.dir), "files": len(files),
            "bytes": sum(int(r.get("size") or 0) for r in files.values()), "problems": problems,
            "checksums": gen.files is not None, "seconds": round(time.perf_counter() - started, 3)}
