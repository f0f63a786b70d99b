"""Download catalog images given as http(s) URLs into a cache folder (standard library only).

A URL's file is `sha1(url) + extension` in the cache, written atomically and only after its bytes
passed a content check, so a cached file is never partial and is never fetched twice.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from .. import __version__

BACKOFF_S = 0.5  # first retry waits this long, then doubles
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


def cache_path(url: str, cache_dir: Path) -> Path:
    """Where a URL's image is cached: sha1 of the URL plus the URL's image extension (or .img)."""
    ext = os.path.splitext(urlsplit(url).path)[1].lower()
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
) -> tuple[str | None, str]:
    """Return (absolute local path, "") or (None, why it failed).

    `timeout` is per network operation; `retries` extra attempts with exponential backoff on
    timeouts, connection errors and HTTP 408/429/5xx; `max_bytes` caps the body (reading stops
    past it); `accept(bytes)` returns "" for acceptable content or a reason (e.g. not an image).
    """
    target = cache_path(url, cache_dir)
    if target.is_file() and target.stat().st_size > 0:
        return str(target.resolve()), ""
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            data = _get(url, timeout, max_bytes)
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


def _get(url: str, timeout: float, max_bytes: int) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "image/*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked by is_url
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
