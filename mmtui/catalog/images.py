"""Image checks: is a product image usable, and which local file is it.

Every image is fully decoded once (to catch truncation) and hashed; a rebuild reuses the previous
result for a file whose size and mtime did not change, without opening it.

Limits: a local file over MAX_FILE_BYTES (50 MB) is rejected from its size (one stat) before anything is read,
as a URL's body is past its max_bytes (20 MB); every URL has a total deadline (download.DEADLINE_S) and the
downloading as a whole a stage deadline (STAGE_DEADLINE_S), after which the URLs not fetched yet are rejected
with that reason instead of being waited for. A NUL byte in a path or a malformed URL is a reject of that row.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from mmtui.errors import QueryError
from mmtui.progress import ProgressCallback, ProgressEvent, check_cancel
from mmtui.catalog import download
from mmtui.catalog.records import (
    IMAGE_BOMB, IMAGE_CORRUPT, IMAGE_DOWNLOAD_FAILED, IMAGE_MISSING, IMAGE_TOO_LARGE, IMAGE_TOO_SMALL,
    IMAGE_TRUNCATED, IMAGE_UNREADABLE, IMAGE_UNSUPPORTED, Product, Reject,
)

OK = "ok"
MIN_BYTES = 200
MAX_PIXELS = 64_000_000  # our own decompression-bomb limit (Pillow's default is ~89 MP)
MAX_FILE_BYTES = 50_000_000  # local image files; URLs have resolve_images(max_bytes=20 MB)
STAGE_DEADLINE_S = 3600.0  # all downloads of one build together
WAIT_S = 0.2  # how often the image stage looks at cancel and its deadline while work is running
ACCEPTED_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF"})  # MPO: camera JPEGs
_OPEN_LOCK = threading.Lock()  # warnings.catch_warnings is process-wide, so opens are serialised


def _decode(data: bytes, min_side: int | None = None) -> tuple[str, str, Image.Image | None]:
    """Check image bytes: (OK, "", decoded image) or (reason, detail, None).

    min_side: a JPEG at least twice that size on both sides is decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT
    scaling), never below min_side x min_side: 4-5x faster for a 1600 px photo a 224 px model will shrink anyway.
    """
    if len(data) < MIN_BYTES:
        return IMAGE_TOO_SMALL, f"{len(data)} bytes (under {MIN_BYTES})", None
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        return IMAGE_BOMB, str(e), None
    except UnidentifiedImageError:
        return IMAGE_CORRUPT, "not an image Pillow can identify", None
    except Exception as e:  # noqa: BLE001 - malformed headers raise many kinds of errors
        reason = IMAGE_TRUNCATED if "truncat" in str(e).lower() else IMAGE_CORRUPT  # cut inside the header
        return reason, f"{type(e).__name__}: {e}", None
    if img.format not in ACCEPTED_FORMATS:
        return IMAGE_UNSUPPORTED, f"{img.format} images are not accepted (use JPEG, PNG, WEBP, GIF, BMP or TIFF)", None
    width, height = img.size
    if width * height > MAX_PIXELS:
        return IMAGE_BOMB, f"{width}x{height} pixels is over the {MAX_PIXELS:,} limit", None
    if width < 1 or height < 1:
        return IMAGE_CORRUPT, f"empty image {width}x{height}", None
    if min_side and img.format in ("JPEG", "MPO"):
        img.draft("RGB", (min_side, min_side))
    try:
        img.load()
    except Exception as e:  # noqa: BLE001 - the header was fine, the data was not
        return IMAGE_TRUNCATED, f"{type(e).__name__}: {e}", None
    return OK, "", img


def _read(path: Path, max_bytes: int = MAX_FILE_BYTES) -> tuple[str, str, bytes | None, os.stat_result | None]:
    if "\x00" in str(path):
        return IMAGE_MISSING, f"the path contains a NUL byte: {str(path)!r}", None, None
    try:
        st = path.stat()
    except FileNotFoundError:
        return IMAGE_MISSING, f"file not found: {path}", None, None
    except PermissionError as e:
        return IMAGE_UNREADABLE, f"permission denied: {path} ({e.strerror})", None, None
    except (OSError, ValueError) as e:
        return IMAGE_UNREADABLE, f"cannot stat {path}: {getattr(e, 'strerror', None) or e}", None, None
    if not stat.S_ISREG(st.st_mode):
        return IMAGE_MISSING, f"not a file: {path}", None, st
    if st.st_size > max_bytes:
        return IMAGE_TOO_LARGE, f"{st.st_size:,} bytes (limit {max_bytes:,}): {path}", None, st
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since the stat
        if len(data) > max_bytes:
            return IMAGE_TOO_LARGE, f"over {max_bytes:,} bytes: {path}", None, st
    except PermissionError as e:
        return IMAGE_UNREADABLE, f"permission denied: {path} ({e.strerror})", None, st
    except (OSError, ValueError) as e:
        return IMAGE_UNREADABLE, f"cannot read {path}: {getattr(e, 'strerror', None) or e}", None, st
    return OK, "", data, st


def validate_image(path: Path | str) -> tuple[str, str]:
    """("ok", "") or (one of the image reject reasons, a human-readable detail)."""
    status, detail, data, _ = _read(Path(path))
    if data is None:
        return status, detail
    status, detail, _img = _decode(data)
    return status, detail


def load_image(path: Path | str, min_side: int | None = None) -> Image.Image:
    """Open an image as RGB (EXIF orientation applied, transparency on white).

    min_side: the side the model scales images to (Encoder.image_size); a large JPEG is then decoded at a
    reduced scale that still covers it (see _decode). Building and image queries pass the same value, so the
    same file gives the same vector either way.
    Raises QueryError with a hint when the file is missing, unreadable or not an acceptable image.
    """
    path = Path(path).expanduser()
    status, detail, data, _ = _read(path)
    img = None
    if data is not None:
        status, detail, img = _decode(data, min_side)
    if img is None:
        raise QueryError(f"cannot use image {path}: {status} ({detail})", _HINTS.get(status, "use a JPEG, PNG or WEBP image"))
    return to_rgb(img)


_HINTS = {
    IMAGE_MISSING: "check the path",
    IMAGE_UNREADABLE: "check the file's permissions",
    IMAGE_BOMB: f"use an image under {MAX_PIXELS // 1_000_000} megapixels",
    IMAGE_TOO_LARGE: f"use an image file under {MAX_FILE_BYTES // 1_000_000} MB",
}


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of a decoded image, whatever its mode; transparent areas become white (product shots are on white).

    Pillow's own convert("RGB") clips 16- and 32-bit and float pixels to 0-255, so a 16-bit PNG came out as a
    blank white picture; those are scaled here instead (see _wide_to_l). LAB goes through a colour transform,
    premultiplied alpha modes are un-premultiplied first."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _wide_to_l(img).convert("RGB")
    if mode in ("RGBa", "La"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info) or (
            mode in ("L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode == "LAB":
        return _lab_to_rgb(img)
    try:
        return img.convert("RGB")
    except ValueError:  # a mode Pillow cannot convert directly (e.g. HSV in older versions): its first band
        return img.getchannel(0).convert("RGB")


def _wide_to_l(img: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit integer or float single-band image as 8-bit grey, scaled rather than clipped.

    I;16*: 0-65535. I (32-bit): 0-255 when no pixel is above 255 (an 8-bit picture stored wide), else 0-65535
    (a 16-bit picture; Pillow opens some 16-bit files as I), else its own min-max. F: 0-1, 0-255 or 0-65535 when
    every pixel fits the range, else its own min-max; nan is black."""
    import numpy as np

    a = np.asarray(img).astype(np.float64)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if img.mode.startswith("I;16"):
        top = 65535.0
    elif img.mode == "F" and lo >= 0 and hi <= 1.0:
        top = 1.0
    elif lo >= 0 and hi <= 255:
        top = 255.0
    elif lo >= 0 and hi <= 65535:
        top = 65535.0
    else:
        a, top = a - lo, (hi - lo) or 1.0
    return Image.fromarray(np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), "L")


def _lab_to_rgb(img: Image.Image) -> Image.Image:
    try:
        from PIL import ImageCms

        transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"),
                                            "LAB", "RGB")
        return ImageCms.applyTransform(img, transform)
    except Exception:  # noqa: BLE001 - no colour management available: the lightness as grey
        return img.getchannel(0).convert("RGB")


# ---- resolving a catalog's images ---------------------------------------------------------------


@dataclass
class _Result:
    status: str
    detail: str
    path: str | None = None  # absolute local file
    size: int | None = None
    mtime_ns: int | None = None
    sha: str | None = None


def _check_file(path: str) -> _Result:
    status, detail, data, st = _read(Path(path))
    if data is None:
        return _Result(status, detail, path, st.st_size if st else None, st.st_mtime_ns if st else None)
    sha = hashlib.sha1(data).hexdigest()
    status, detail, _img = _decode(data)
    return _Result(status, detail, path, st.st_size, st.st_mtime_ns, sha)


def _check_known(path: str, known: dict[str, tuple[int, int, str, str]]) -> _Result | None:
    """The previous build's result when the file's size and mtime are unchanged (one stat, no read)."""
    prev = known.get(path)
    if prev is None:
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    size, mtime_ns, sha, status = prev
    if st.st_size != size or st.st_mtime_ns != mtime_ns or not stat.S_ISREG(st.st_mode):
        return None
    detail = "" if status == OK else f"{status} (unchanged since the last build)"
    return _Result(status, detail, path, size, mtime_ns, sha)


def _bytes_are_image(data: bytes) -> str:
    """For downloads: "" when the bytes look like an image, else why not."""
    status, detail, _img = _decode(data)
    if status in (IMAGE_CORRUPT, IMAGE_TOO_SMALL):
        return f"not an image ({detail})"
    return ""


def resolve_images(
    products: list[Product],
    base_dir: Path,
    cache_dir: Path,
    *,
    known: dict[str, tuple[int, int, str, str]] | None = None,
    workers: int = 8,
    timeout: float = 10.0,
    retries: int = 2,
    max_bytes: int = 20_000_000,
    deadline: float = download.DEADLINE_S,
    stage_deadline: float = STAGE_DEADLINE_S,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> list[Reject]:
    """Set image_path/status/sha/size/mtime_ns on every product; return a kept Reject for each
    product whose image is not usable (it stays searchable by text).

    Paths resolve against `base_dir`; http(s) URLs are downloaded into `cache_dir` (once), each within
    `deadline` seconds in total, all of them within `stage_deadline`. `known` maps an absolute path to
    (size, mtime_ns, sha, status) from the previous build: an unchanged file is not opened. image_path is set
    only when the status is "ok". Setting `cancel` (or Ctrl-C) stops running downloads at once.
    """
    known = known or {}
    groups, results, keys = _read_references(products, Path(base_dir), known)
    writer = _Writer(groups, results, len(products), progress)
    writer.settle_known()
    check_cancel(cancel)
    todo = [k for k in groups if k not in results]
    if todo:
        worker = _Worker(Path(cache_dir), known, timeout=timeout, retries=retries, max_bytes=max_bytes,
                         deadline=deadline, stage_deadline=stage_deadline)
        _run_pool(todo, worker, workers, writer.settle, cancel)
    writer.report(force=True)
    return [
        Reject(p.image_status, results[key].detail or p.image_status, p.row, p.id, "", kept=True)
        for p, key in zip(products, keys)
        if p.image_status != OK
    ]


def _read_references(products: list[Product], base_dir: Path, known: dict[str, tuple[int, int, str, str]]
                     ) -> tuple[dict[str, list[Product]], dict[str, _Result], list[str]]:
    """The reader: each product's image key (its absolute path, its URL, or its bad reference), the products
    sharing each key, and the results known without reading a file (no or bad reference, unchanged file)."""
    groups: dict[str, list[Product]] = {}
    results: dict[str, _Result] = {}
    keys: list[str] = []  # per product, the key of its image in groups/results
    for p in products:
        key, result = _key_of((p.image or "").strip(), base_dir, known)
        if result is not None:
            results.setdefault(key, result)
        groups.setdefault(key, []).append(p)
        keys.append(key)
    return groups, results, keys


def _key_of(ref: str, base_dir: Path, known: dict[str, tuple[int, int, str, str]]) -> tuple[str, _Result | None]:
    """(key, its result when known without reading or downloading anything, else None) of one image reference."""
    if not ref:
        return ref, _Result(IMAGE_MISSING, "no image in the catalog")
    if download.is_url(ref):
        problem = download.url_problem(ref)
        return ref, _Result(IMAGE_DOWNLOAD_FAILED, f"{ref[:200]}: {problem}") if problem else None
    if "://" in ref:
        scheme = ref.split("://", 1)[0][:20]
        return ref, _Result(IMAGE_DOWNLOAD_FAILED, f"unsupported URL scheme: {scheme} (use http or https)")
    if "\x00" in ref:
        return ref, _Result(IMAGE_MISSING, f"the image path contains a NUL byte: {ref[:200]!r}")
    key = os.path.abspath(base_dir / Path(ref).expanduser())
    return key, _check_known(key, known)


class _Writer:
    """The writer: an image's result set on every product that shares it, and progress about every 1%."""

    def __init__(self, groups: dict[str, list[Product]], results: dict[str, _Result], total: int,
                 progress: ProgressCallback | None) -> None:
        self.groups, self.results, self.total, self.progress = groups, results, total, progress
        self.done, self.emitted, self.step = 0, -1, max(1, total // 100)

    def settle_known(self) -> None:
        if self.progress is not None:
            self.progress(ProgressEvent("images", 0, self.total))
        for key in list(self.groups):
            if key in self.results:
                self.settle(key, self.results[key])

    def settle(self, key: str, result: _Result) -> None:
        self.results[key] = result
        _apply(result, self.groups[key])
        self.done += len(self.groups[key])
        self.report()

    def report(self, force: bool = False) -> None:
        if self.progress is not None and (force or self.done - self.emitted >= self.step) \
                and self.done != self.emitted:
            self.emitted = self.done
            self.progress(ProgressEvent("images", self.done, self.total))


class _Worker:
    """The work of one pool thread: check one image, a local file or a URL downloaded first. Never raises: an
    odd image must not abort the build, it is a reject. `stop` ends running downloads."""

    def __init__(self, cache_dir: Path, known: dict[str, tuple[int, int, str, str]], *, timeout: float,
                 retries: int, max_bytes: int, deadline: float, stage_deadline: float) -> None:
        self.cache_dir, self.known = cache_dir, known
        self.fetch_args = {"timeout": timeout, "retries": retries, "max_bytes": max_bytes, "deadline": deadline}
        self.stop = threading.Event()  # cancel, Ctrl-C, or the stage deadline
        self.stage_until = time.monotonic() + stage_deadline
        self.out_of_time = f"not downloaded: the downloads ran out of their {stage_deadline:g}s in total for this build"

    def __call__(self, key: str) -> _Result:
        try:
            return self._download(key) if download.is_url(key) else _check_file(key)
        except Exception as e:  # noqa: BLE001
            return _Result(IMAGE_UNREADABLE, f"{key[:200]}: {type(e).__name__}: {e}")

    def _download(self, url: str) -> _Result:
        if self.stop.is_set():
            return _Result(IMAGE_DOWNLOAD_FAILED, f"{url}: {self.out_of_time}")
        local, error = download.fetch(url, self.cache_dir, accept=_bytes_are_image, stop=self.stop,
                                      **self.fetch_args)
        if local is None:
            if error == "cancelled" and time.monotonic() >= self.stage_until:
                error = self.out_of_time
            return _Result(IMAGE_DOWNLOAD_FAILED, f"{url}: {error}")
        hit = _check_known(local, self.known)
        return hit if hit is not None else _check_file(local)

    def stop_when_out_of_time(self) -> None:
        if not self.stop.is_set() and time.monotonic() >= self.stage_until:
            self.stop.set()  # running downloads end now; the URLs not started are rejected by _download


def _run_pool(todo: list[str], worker: _Worker, workers: int, settle, cancel: threading.Event | None) -> None:
    """The worker pool: `worker` over the keys in `todo` on up to `workers` threads, each result passed to
    `settle` as it comes; a bounded queue, so that cancel and the stage deadline take effect quickly."""
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo))), thread_name_prefix="mmtui-images")
    try:
        pending: dict[Future, str] = {}
        queue = iter(todo)
        limit = max(1, workers) * 4
        _submit(pool, worker, queue, pending, limit)
        while pending:
            finished, _ = wait(pending, timeout=WAIT_S, return_when=FIRST_COMPLETED)
            for fut in finished:
                settle(pending.pop(fut), fut.result())
            check_cancel(cancel)
            worker.stop_when_out_of_time()
            _submit(pool, worker, queue, pending, limit)
    except BaseException:
        worker.stop.set()  # Cancelled or KeyboardInterrupt: do not wait for slow servers
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _submit(pool: ThreadPoolExecutor, worker: _Worker, queue, pending: dict[Future, str], limit: int) -> None:
    for key in queue:
        pending[pool.submit(worker, key)] = key
        if len(pending) >= limit:
            break


def _apply(result: _Result, members: list[Product]) -> None:
    for p in members:
        p.image_status = result.status
        p.image_path = result.path if result.status == OK else None
        p.image_sha = result.sha
        p.image_size = result.size
        p.image_mtime_ns = result.mtime_ns
