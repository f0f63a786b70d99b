"""validate_image (one test per reason), load_image, and resolve_images on local files."""

from __future__ import annotations

import io
import os
import random
import struct
import threading
import zlib
from pathlib import Path

import pytest
from PIL import Image

from mmtui.catalog import images as images_mod
from mmtui.catalog.images import load_image, resolve_images, validate_image
from mmtui.catalog.records import Product
from mmtui.errors import QueryError
from mmtui.progress import Cancelled


def noise(size=(32, 32)) -> Image.Image:
    """A deterministic noisy RGB image: does not compress below the 200-byte minimum."""
    rng = random.Random(0)
    return Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))


def saved(fmt: str, size=(32, 32)) -> bytes:
    buf = io.BytesIO()
    noise(size).save(buf, fmt)
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG claiming width x height pixels, with almost no data: cheap to make, a bomb to decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tEXt", b"Comment\x00" + b"x" * 300) + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b"")


def put(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
def test_accepted_formats_are_ok(tmp_path, fmt):
    assert validate_image(put(tmp_path, "a.img", saved(fmt, size=(48, 48)))) == ("ok", "")


def test_missing(tmp_path):
    assert validate_image(tmp_path / "nope.jpg")[0] == "image_missing"


def test_unreadable(tmp_path, monkeypatch, make_jpeg):
    p = put(tmp_path, "a.jpg", make_jpeg())

    def deny(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", deny)  # the image is read through Path.open (a bounded read)
    status, detail = validate_image(p)
    assert status == "image_unreadable" and "permission" in detail.lower()


def test_too_small(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), 9).save(buf, "PNG")  # a valid image, but under 200 bytes
    assert validate_image(put(tmp_path, "a.png", buf.getvalue()))[0] == "image_too_small"


def test_corrupt(tmp_path):
    assert validate_image(put(tmp_path, "a.jpg", b"<html>" + b"not an image " * 40))[0] == "image_corrupt"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(tmp_path, fmt):
    data = saved(fmt, size=(64, 64))
    assert Image.open(io.BytesIO(data[: len(data) * 2 // 3])).size == (64, 64)  # the header is intact
    status, detail = validate_image(put(tmp_path, "a.img", data[: len(data) * 2 // 3]))
    assert status == "image_truncated" and detail


@pytest.mark.parametrize("side", [9_000, 10_000, 14_000])  # 81 MP (our limit), 100 MP (Pillow warns), 196 MP (Pillow errors)
def test_bomb(tmp_path, side):
    status, _ = validate_image(put(tmp_path, "a.png", png_header_only(side, side)))
    assert status == "image_bomb"


def test_unsupported(tmp_path):
    status, detail = validate_image(put(tmp_path, "a.ico", saved("ICO", size=(64, 64))))
    assert status == "image_unsupported" and "ICO" in detail
    assert validate_image(put(tmp_path, "a.ppm", saved("PPM")))[0] == "image_unsupported"


def test_load_image_rgb_and_errors(tmp_path):
    rgba = noise((40, 40)).convert("RGBA")
    rgba.putalpha(0)  # fully transparent -> white
    rgba.save(tmp_path / "t.png")
    img = load_image(tmp_path / "t.png")
    assert img.mode == "RGB" and img.getpixel((5, 5)) == (255, 255, 255)
    grey = noise((40, 40)).convert("L")
    grey.save(tmp_path / "g.png")
    v = grey.getpixel((0, 0))
    assert load_image(tmp_path / "g.png").getpixel((0, 0)) == (v, v, v)
    with pytest.raises(QueryError) as e:
        load_image(tmp_path / "missing.jpg")
    assert e.value.hint
    with pytest.raises(QueryError):
        load_image(put(tmp_path, "bomb.png", png_header_only(10_000, 10_000)))


def products_for(folder: Path) -> list[Product]:
    return [
        Product("1", "ok one", image="images/a.jpg", row=1),
        Product("2", "same file", image="images/a.jpg", row=2),
        Product("3", "missing", image="images/none.jpg", row=3),
        Product("4", "no image", row=4),
        Product("5", "corrupt", image=str(folder / "images" / "bad.jpg"), row=5),  # absolute path
        Product("6", "ftp", image="ftp://example.com/x.jpg", row=6),
    ]


def test_resolve_images_local(tmp_path, make_jpeg):
    (tmp_path / "images").mkdir()
    good = make_jpeg()
    put(tmp_path / "images", "a.jpg", good)
    put(tmp_path / "images", "bad.jpg", b"x" * 500)
    products = products_for(tmp_path)
    events = []
    rejects = resolve_images(products, tmp_path, tmp_path / "cache", progress=events.append)
    p1, p2, p3, p4, p5, p6 = products
    assert p1.image_status == p2.image_status == "ok"
    assert p1.image_path == str((tmp_path / "images" / "a.jpg").absolute()) and os.path.isabs(p1.image_path)
    import hashlib
    assert p1.image_sha == hashlib.sha1(good).hexdigest() and p1.image_size == len(good)
    assert p1.image_mtime_ns == (tmp_path / "images" / "a.jpg").stat().st_mtime_ns
    assert [p.image_status for p in (p3, p4, p5, p6)] == ["image_missing", "image_missing", "image_corrupt", "image_download_failed"]
    assert all(p.image_path is None for p in (p3, p4, p5, p6))
    assert [(r.product_id, r.reason, r.kept) for r in rejects] == [
        ("3", "image_missing", True), ("4", "image_missing", True), ("5", "image_corrupt", True), ("6", "image_download_failed", True)]
    assert "none.jpg" in rejects[0].detail
    assert events[0].stage == "images" and (events[-1].done, events[-1].total) == (6, 6)


def test_resolve_images_reuses_known_without_opening(tmp_path, make_jpeg, monkeypatch):
    (tmp_path / "images").mkdir()
    put(tmp_path / "images", "a.jpg", make_jpeg())
    first = [Product("1", "t", image="images/a.jpg")]
    resolve_images(first, tmp_path, tmp_path / "cache")
    known = {first[0].image_path: (first[0].image_size, first[0].image_mtime_ns, first[0].image_sha, first[0].image_status)}

    def boom(*a, **k):
        raise AssertionError("file was opened")

    monkeypatch.setattr(images_mod, "_decode", boom)
    monkeypatch.setattr(Path, "read_bytes", boom)
    again = [Product("1", "t", image="images/a.jpg")]
    assert resolve_images(again, tmp_path, tmp_path / "cache", known=known) == []
    assert (again[0].image_status, again[0].image_sha) == ("ok", first[0].image_sha)
    # a changed file (different size) is checked again
    monkeypatch.undo()
    put(tmp_path / "images", "a.jpg", make_jpeg(size=(64, 64)))
    changed = [Product("1", "t", image="images/a.jpg")]
    resolve_images(changed, tmp_path, tmp_path / "cache", known=known)
    assert changed[0].image_sha != first[0].image_sha and changed[0].image_status == "ok"


def test_resolve_images_honours_cancel(tmp_path, make_jpeg):
    (tmp_path / "images").mkdir()
    put(tmp_path / "images", "a.jpg", make_jpeg())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        resolve_images([Product("1", "t", image="images/a.jpg")], tmp_path, tmp_path / "cache", cancel=cancel)


def test_a_large_jpeg_decodes_at_a_reduced_scale_that_still_covers_the_model(tmp_path):
    noise((800, 600)).save(tmp_path / "big.jpg", quality=90)
    noise((800, 600)).save(tmp_path / "big.png")
    assert load_image(tmp_path / "big.jpg").size == (800, 600)
    assert load_image(tmp_path / "big.jpg", min_side=224).size == (400, 300)  # 1/4 would be 150 px high: too small
    assert load_image(tmp_path / "big.jpg", min_side=32).size == (100, 75)  # 1/8, the smallest scale
    assert load_image(tmp_path / "big.jpg", min_side=600).size == (800, 600)  # under twice the side: as it is
    assert load_image(tmp_path / "big.png", min_side=32).size == (800, 600)  # only JPEG decoders scale
