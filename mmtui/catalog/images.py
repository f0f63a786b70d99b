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
    base_dir = Path(base_dir)
    known = known or {}
    groups: dict[str, list[Product]] = {}
    results: dict[str, _Result] = {}
    keys: list[str] = []  # per product, the key of its image in groups/results
    for p in products:
        ref = (p.image or "").strip()
        key = ref
        if not ref:
            results.setdefault("", _Result(IMAGE_MISSING, "no image in the catalog"))
        elif download.is_url(ref):
            problem = download.url_problem(ref)
            if problem:
                results.setdefault(key, _Result(IMAGE_DOWNLOAD_FAILED, f"{ref[:200]}: {problem}"))
        elif "://" in ref:
            scheme = ref.split("://", 1)[0][:20]
            results.setdefault(key, _Result(IMAGE_DOWNLOAD_FAILED, f"unsupported URL scheme: {scheme} (use http or https)"))
        elif "\x00" in ref:
            results.setdefault(key, _Result(IMAGE_MISSING, f"the image path contains a NUL byte: {ref[:200]!r}"))
        else:
            key = os.path.abspath(base_dir / Path(ref).expanduser())
            hit = _check_known(key, known)
            if hit is not None:
                results[key] = hit
        groups.setdefault(key, []).append(p)
        keys.append(key)

    total = len(products)
    done = 0
    step = max(1, total // 100)
    emitted = -1

    def report(force: bool = False) -> None:
        nonlocal emitted
        if progress is not None and (force or done - emitted >= step) and done != emitted:
            emitted = done
            progress(ProgressEvent("images", done, total))

    def settle(key: str) -> None:
        nonlocal done
        _apply(results[key], groups[key])
        done += len(groups[key])
        report()

    if progress is not None:
        progress(ProgressEvent("images", 0, total))
    for key in list(groups):
        if key in results:
            settle(key)
    check_cancel(cancel)

    todo = [k for k in groups if k not in results]
    stop = threading.Event()  # ends running downloads: cancel, Ctrl-C, or the stage deadline
    stage_until = time.monotonic() + stage_deadline
    out_of_time = f"not downloaded: the downloads ran out of their {stage_deadline:g}s in total for this build"

    def work(key: str) -> _Result:
        try:
            if download.is_url(key):
                if stop.is_set():
                    return _Result(IMAGE_DOWNLOAD_FAILED, f"{key}: {out_of_time}")
                local, error = download.fetch(key, Path(cache_dir), timeout=timeout, retries=retries,
                                              max_bytes=max_bytes, accept=_bytes_are_image, deadline=deadline,
                                              stop=stop)
                if local is None:
                    if error == "cancelled" and time.monotonic() >= stage_until:
                        error = out_of_time
                    return _Result(IMAGE_DOWNLOAD_FAILED, f"{key}: {error}")
                hit = _check_known(local, known)
                return hit if hit is not None else _check_file(local)
            return _check_file(key)
        except Exception as e:  # noqa: BLE001 - one odd image must not abort the build: it is a reject
            return _Result(IMAGE_UNREADABLE, f"{key[:200]}: {type(e).__name__}: {e}")

    if todo:
        pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(todo))), thread_name_prefix="mmtui-images")
        try:
            pending: dict[Future, str] = {}
            queue = iter(todo)
            limit = max(1, workers) * 4  # bounded queue so cancel takes effect quickly
            for key in queue:
                pending[pool.submit(work, key)] = key
                if len(pending) >= limit:
                    break
            while pending:
                finished, _ = wait(pending, timeout=WAIT_S, return_when=FIRST_COMPLETED)
                for fut in finished:
                    key = pending.pop(fut)
                    results[key] = fut.result()
                    settle(key)
                check_cancel(cancel)
                if not stop.is_set() and time.monotonic() >= stage_until:
                    stop.set()  # running downloads end now; the URLs not started are rejected by work()
                for key in queue:
                    pending[pool.submit(work, key)] = key
                    if len(pending) >= limit:
                        break
        except BaseException:
            stop.set()  # Cancelled or KeyboardInterrupt: do not wait for slow servers
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    report(force=True)

    return [
        Reject(p.image_status, results[key].detail or p.image_status, p.row, p.id, "", kept=True)
        for p, key in zip(products, keys)
        if p.image_status != OK
    ]


def _apply(result: _Result, members: list[Product]) -> None:
    for p in members:
        p.image_status = result.status
        p.image_path = result.path if result.status == OK else None
        p.image_sha = result.sha
        p.image_size = result.size
        p.image_mtime_ns = result.mtime_ns
