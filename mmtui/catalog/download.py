"""Download catalog images given as http(s) URLs into a cache folder (standard library only).

A URL's file is `sha1(url) + extension` in the cache, written atomically and only after its bytes
passed a content check, so a cached file is never partial and is never fetched twice.

Nothing hangs: besides the per-operation socket timeout, every image has a total deadline over all its
attempts (`deadline`, 30 s by default). A watcher thread shuts the connection's socket down when the deadline
passes or the `stop` event is set (Ctrl-C, cancel), so a server that sends one byte every few seconds cannot
stall a build, and a cancel takes effect within a tenth of a second even in the middle of a read.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from mmtui import __version__

BACKOFF_S = 0.5  # first retry waits this long, then doubles
DEADLINE_S = 30.0  # total time for one image, all attempts included
WATCH_S = 0.1  # how often the watcher looks at the deadline and the stop event
USER_AGENT = f"mmtui/{__version__}"
_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CHUNK = 64 * 1024


class _Failure(Exception):
    """A download failed; `retry` says whether trying again could help."""

    def __init__(self, reason: str, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


def is_url(ref: str) -> bool:
    return ref[:8].lower().startswith(("http://", "https://"))


def url_problem(url: str) -> str:
    """"" when `url` can be requested, else why not (a malformed URL is a per-row reject, never an abort)."""
    if any(ord(c) < 33 or c == "\x7f" for c in url):
        return "malformed URL: it contains spaces or control characters (encode them, e.g. %20)"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as e:
        return f"malformed URL: {e}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"unsupported URL scheme: {parts.scheme} (use http or https)"
    if not host:
        return "malformed URL: no host name"
    return ""


def cache_path(url: str, cache_dir: Path) -> Path:
    """Where a URL's image is cached: sha1 of the URL plus the URL's image extension (or .img)."""
    try:
        ext = os.path.splitext(urlsplit(url).path)[1].lower()
    except ValueError:
        ext = ""
    if ext not in _EXTENSIONS:
        ext = ".img"
    return Path(cache_dir) / (hashlib.sha1(url.encode("utf-8")).hexdigest() + ext)


def fetch(
    url: str,
    cache_dir: Path,
    *,
    timeout: float = 10.0,
    retries: int = 2,
    max_bytes: int = 20_000_000,
    accept: Callable[[bytes], str] | None = None,
    deadline: float = DEADLINE_S,
    stop: threading.Event | None = None,
) -> tuple[str | None, str]:
    """Return (absolute local path, "") or (None, why it failed).

    `timeout` is per network operation; `deadline` bounds the whole fetch, retries and waits included;
    `stop` (set on cancel) ends it at once. `retries` extra attempts with exponential backoff on timeouts,
    connection errors and HTTP 408/429/5xx; `max_bytes` caps the body (reading stops past it);
    `accept(bytes)` returns "" for acceptable content or a reason (e.g. not an image).
    """
    problem = url_problem(url)
    if problem:
        return None, problem
    target = cache_path(url, cache_dir)
    if target.is_file() and target.stat().st_size > 0:
        return str(target.resolve()), ""
    until = time.monotonic() + deadline
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            pause = min(BACKOFF_S * 2 ** (attempt - 1), max(0.0, until - time.monotonic()))
            if stop is not None and stop.wait(pause):
                return None, "cancelled"
            if stop is None:
                time.sleep(pause)
        if stop is not None and stop.is_set():
            return None, "cancelled"
        if time.monotonic() >= until:
            return None, f"gave up after {deadline:g}s in total ({last})" if last else f"took over {deadline:g}s"
        try:
            data = _get(url, timeout, max_bytes, until, deadline, stop)
        except _Failure as e:
            last = e.reason
            if e.retry:
                continue
            return None, last
        problem = accept(data) if accept else ""
        if problem:
            return None, problem
        _write_atomic(target, data)
        return str(target.resolve()), ""
    return None, f"{last} (after {retries + 1} attempts)"


class _Watch:
    """Shuts a connection's socket down when the deadline passes or `stop` is set, from a thread of its own:
    the socket timeout alone bounds each read, not the download, and a blocked read ignores everything else."""

    def __init__(self, until: float, stop: threading.Event | None) -> None:
        self.until, self.stop = until, stop
        self.fired = ""  # "deadline" | "cancelled"
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mmtui-download-watch", daemon=True)
        self._thread.start()

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.fired:
                _shutdown(sock)

    def _run(self) -> None:
        while not self._done.wait(WATCH_S):
            if self.stop is not None and self.stop.is_set():
                self._fire("cancelled")
            elif time.monotonic() >= self.until:
                self._fire("deadline")
            if self.fired:
                return

    def _fire(self, why: str) -> None:
        with self._lock:
            self.fired = why
            for sock in self._socks:
                _shutdown(sock)

    def close(self) -> None:
        self._done.set()


def _shutdown(sock: socket.socket) -> None:
    """Shut a socket down through a duplicate of its descriptor: a read blocked in another thread returns at once
    (also for TLS sockets, whose own shutdown() would change their state under that read)."""
    try:
        dup = socket.socket(fileno=os.dup(sock.fileno()))
    except OSError:
        return
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


def _opener(watch: _Watch) -> urllib.request.OpenerDirector:
    class HTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            super().connect()
            watch.attach(self.sock)

    class HTTPSConnection(http.client.HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            watch.attach(self.sock)

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(HTTPConnection, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(HTTPSConnection, req, context=self._context)

    return urllib.request.build_opener(HTTPHandler(), HTTPSHandler())


def _get(url: str, timeout: float, max_bytes: int, until: float, deadline: float,
         stop: threading.Event | None) -> bytes:
    watch = _Watch(until, stop)
    try:
        data = _request(url, min(timeout, max(0.01, until - time.monotonic())), max_bytes, _opener(watch))
    except _Failure as e:
        failure: _Failure | None = e
        data = b""
    else:
        failure = None
    finally:
        watch.close()
    if watch.fired == "cancelled":
        raise _Failure("cancelled", retry=False)
    if watch.fired == "deadline":
        raise _Failure(f"took over {deadline:g}s in total (a slow server; the per-image deadline)", retry=False)
    if failure is not None:
        raise failure
    return data


def _request(url: str, timeout: float, max_bytes: int, opener: urllib.request.OpenerDirector) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
    try:
        with opener.open(request, timeout=timeout) as response:  # http(s) only, checked by url_problem
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise _Failure(f"too large: {int(length):,} bytes (limit {max_bytes:,})", retry=False)
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = response.read(min(_CHUNK, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise _Failure(f"too large: over {max_bytes:,} bytes", retry=False)
            return b"".join(chunks)
    except _Failure:
        raise
    except urllib.error.HTTPError as e:
        raise _Failure(f"HTTP {e.code} {e.reason}", retry=e.code in _RETRY_STATUS) from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, (socket.timeout, TimeoutError)):
            raise _Failure(f"timeout after {timeout:g}s", retry=True) from None
        raise _Failure(f"connection failed: {e.reason}", retry=True) from None
    except (socket.timeout, TimeoutError):
        raise _Failure(f"timeout after {timeout:g}s", retry=True) from None
    except (ConnectionError, OSError, http.client.HTTPException) as e:
        raise _Failure(f"connection failed: {e}", retry=True) from None
    except ValueError as e:  # malformed URL
        raise _Failure(f"bad URL: {e}", retry=False) from None


def _write_atomic(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-", suffix=target.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
