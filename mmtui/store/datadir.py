"""One writer at a time in a data directory, and write failures (full disk, read-only files) as clear errors.

Every write path (build-index, reindex, train *, use, enrich) runs inside `writing(settings, what)`:
- an exclusive flock on DATA_DIR/.write.lock. The kernel releases it when its process dies, so a lock left
  by a killed process never blocks. A second writer waits (saying who holds the lock, through `progress`)
  up to settings.lock_timeout seconds, or fails at once when that is 0 (`--no-wait`). The lock is
  re-entrant within a process: build_index -> reindex, use -> build_index take it once.
- OSError (ENOSPC, EROFS, EACCES, ...) and SQLite's "disk is full" / "readonly database" raised inside
  become StoreError with a hint. Readers (search) take no lock: they read a committed generation
  (mmtui.index.generations) and never see a half-written file.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from mmtui.errors import MmtuiError, StoreError
from mmtui.progress import ProgressCallback, ProgressEvent

LOCK_FILE = ".write.lock"
POLL_S = 0.2  # how often a waiting writer tries the lock again


class DataDirBusyError(StoreError):
    """Another process is writing to the data directory (and we did not, or could no longer, wait)."""


class _Held:
    """This process's hold on one data directory's lock: an RLock for its threads, the flock'd file once."""

    def __init__(self) -> None:
        self.rlock = threading.RLock()
        self.depth = 0
        self.fd: int | None = None


_HELD: dict[str, _Held] = {}
_HELD_GUARD = threading.Lock()


def lock_path(data_dir: Path, name: str = LOCK_FILE) -> Path:
    return Path(data_dir) / name


def lock_holder(data_dir: Path, name: str = LOCK_FILE) -> str:
    """'pid N: what' of the process that holds (or last held) the lock, '' when unknown."""
    try:
        return lock_path(data_dir, name).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def is_locked(data_dir: Path) -> bool:
    """True while some process holds the write lock (a cheap non-blocking probe; False if there is no lock file)."""
    import fcntl

    held = _HELD.get(str(Path(data_dir).resolve()))
    if held is not None and held.depth:
        return True
    try:
        fd = os.open(lock_path(data_dir), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases the probe's shared lock


@contextlib.contextmanager
def writing(settings, what: str, progress: ProgressCallback | None = None, *,
            lock: str = LOCK_FILE) -> Iterator[None]:
    """Hold the data directory's write lock for `what` (e.g. "build-index"), turning write failures into
    StoreError. Waits up to settings.lock_timeout seconds for another writer (0: fail at once).
    `lock`: another lock file, for data with its own writers (the judgements: a build must not block judging)."""
    data_dir = Path(settings.data_dir)
    timeout = float(getattr(settings, "lock_timeout", 600.0))
    with write_errors(data_dir), _lock(data_dir, what, timeout, progress, lock):
        yield


def writes(what: str) -> Callable:
    """Decorator for a write path `fn(settings, ...)`: runs it inside writing(settings, what, progress=...)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(settings, *args, **kwargs):
            with writing(settings, what, kwargs.get("progress")):
                return fn(settings, *args, **kwargs)

        return wrapper

    return decorate


@contextlib.contextmanager
def _lock(data_dir: Path, what: str, timeout: float, progress: ProgressCallback | None,
          name: str = LOCK_FILE) -> Iterator[None]:
    import fcntl

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error(exc, data_dir) from None
    key = str(data_dir.resolve()) if name == LOCK_FILE else f"{data_dir.resolve()}/{name}"
    with _HELD_GUARD:
        held = _HELD.setdefault(key, _Held())
    deadline = time.monotonic() + max(0.0, timeout)
    if not held.rlock.acquire(blocking=False):  # another thread of this process is writing here
        _notify(progress, data_dir, f"pid {os.getpid()} (this process)", timeout)
        if timeout <= 0 or not held.rlock.acquire(timeout=timeout):
            raise _busy(data_dir, f"pid {os.getpid()} (this process)", timeout)
    try:
        if held.depth == 0:
            held.fd = _flock(data_dir, what, deadline, timeout, progress, fcntl, name)
        held.depth += 1
        try:
            yield
        finally:
            held.depth -= 1
            if held.depth == 0 and held.fd is not None:
                fd, held.fd = held.fd, None
                os.close(fd)  # releases the flock
    finally:
        held.rlock.release()


def _flock(data_dir: Path, what: str, deadline: float, timeout: float, progress, fcntl,
           name: str = LOCK_FILE) -> int:
    path = lock_path(data_dir, name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _os_error(exc, data_dir) from None
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = lock_holder(data_dir, name) or "another process"
            if timeout <= 0 or time.monotonic() >= deadline:
                os.close(fd)
                raise _busy(data_dir, holder, timeout) from None
            if not told:
                _notify(progress, data_dir, holder, timeout)
                told = True
            time.sleep(POLL_S)
        except OSError as exc:
            os.close(fd)
            raise _os_error(exc, data_dir) from None
    try:  # who holds it, for the message a waiting writer prints
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {what}\n".encode(), 0)
    except OSError:
        pass  # the lock is held all the same; only the message would lack the pid
    return fd


def _notify(progress, data_dir: Path, holder: str, timeout: float) -> None:
    if progress is not None:
        progress(ProgressEvent("wait", 0, None, f"another process is writing to {data_dir} ({holder}); "
                                                f"waiting up to {timeout:g} s..."))


def _busy(data_dir: Path, holder: str, timeout: float) -> DataDirBusyError:
    if timeout <= 0:
        return DataDirBusyError(f"another process is writing to {data_dir} ({holder})",
                                "wait for it to finish, or run the command again without --no-wait to wait for it")
    return DataDirBusyError(f"another process is still writing to {data_dir} ({holder}) after {timeout:g} s",
                            "wait for it to finish and run the command again (MMTUI_LOCK_TIMEOUT sets the wait)")


# -- write failures ------------------------------------------------------------------------------
DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}


@contextlib.contextmanager
def write_errors(data_dir: Path) -> Iterator[None]:
    """Turn a full disk or a read-only data directory met while writing into a StoreError saying so."""
    try:
        yield
    except MmtuiError:
        raise
    except OSError as exc:
        if exc.errno in DISK_FULL or exc.errno in READ_ONLY:
            raise _os_error(exc, data_dir) from None
        raise
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "disk is full" in text:
            raise StoreError(f"the disk holding {data_dir} is full ({exc})", _FULL_HINT) from None
        if "readonly" in text or "read-only" in text:
            raise StoreError(f"{data_dir}/catalog.db is read-only, so this command cannot write to it ({exc})",
                             _READ_ONLY_HINT) from None
        raise


_FULL_HINT = ("free some space and run the same command again: nothing half-written became current, and the "
              "next run finishes the job")
_READ_ONLY_HINT = ("searching a read-only index works; to build or train, give the data directory write access "
                   "(or copy it and use --data-dir)")


def _os_error(exc: OSError, data_dir: Path) -> StoreError:
    where = exc.filename or data_dir
    if exc.errno in DISK_FULL:
        return StoreError(f"the disk is full: cannot write {where}", _FULL_HINT)
    if exc.errno in READ_ONLY:
        return StoreError(f"the data directory {data_dir} is read-only (cannot write {where})", _READ_ONLY_HINT)
    return StoreError(f"cannot write to the data directory {data_dir}: {exc}",
                      "check that the directory exists and is writable")
