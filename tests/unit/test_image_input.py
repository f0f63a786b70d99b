"""Hostile images and URLs: every pixel mode Pillow opens becomes the right RGB picture, local files have a size
cap checked before reading, NUL bytes and malformed URLs are per-row rejects, and a slow-drip server or a
cancel cannot hold a build (total deadline per image and per stage)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmtui.catalog import download, images as images_mod
from mmtui.catalog.images import load_image, resolve_images
from mmtui.catalog.records import Product
from mmtui.progress import Cancelled


def _file(tmp_path: Path, img: Image.Image, fmt: str, name: str) -> Path:
    path = tmp_path / name
    img.save(path, fmt)
    if path.stat().st_size < images_mod.MIN_BYTES:  # a flat picture compresses below the minimum: pad its end
        with open(path, "ab") as fh:
            fh.write(b"\0" * images_mod.MIN_BYTES)
    return path


GREY_64 = (64, 64, 64)  # 16384 of 65535, 0.25 of 1.0: a dark grey, not white


@pytest.mark.parametrize("make,fmt,expected", [
    (lambda: Image.fromarray(np.full((64, 64), 16384, np.uint16)), "PNG", GREY_64),  # 16-bit PNG (I;16)
    (lambda: Image.fromarray(np.full((64, 64), 16384, np.uint16)), "TIFF", GREY_64),
    (lambda: Image.new("I;16B", (64, 64), 16384), "TIFF", GREY_64),
    (lambda: Image.fromarray(np.full((64, 64), 16384, np.int32), "I"), "TIFF", GREY_64),  # 32-bit integer
    (lambda: Image.fromarray(np.full((64, 64), 0.25, np.float32), "F"), "TIFF", GREY_64),  # float 0..1
    (lambda: Image.fromarray(np.full((64, 64), 64.0, np.float32), "F"), "TIFF", GREY_64),  # float 0..255
    (lambda: Image.new("LA", (64, 64), (0, 0)), "PNG", (255, 255, 255)),  # transparent: white
    (lambda: Image.new("LA", (64, 64), (64, 255)), "PNG", GREY_64),
    (lambda: Image.new("RGBA", (64, 64), (255, 0, 0, 255)), "PNG", (255, 0, 0)),
    (lambda: Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "JPEG", (255, 0, 0)),
    (lambda: Image.new("CMYK", (64, 64), (0, 255, 255, 0)), "TIFF", (255, 0, 0)),
    (lambda: Image.new("1", (64, 64), 0), "PNG", (0, 0, 0)),
    (lambda: Image.new("1", (64, 64), 0), "BMP", (0, 0, 0)),
    (lambda: Image.new("L", (64, 64), 64), "PNG", GREY_64),
    (lambda: Image.new("LAB", (64, 64), (128, 128, 128)), "TIFF", (119, 119, 119)),  # L*=50, a=b=0: mid grey
    (lambda: Image.new("RGB", (64, 64), (10, 200, 30)), "WEBP", (10, 200, 30)),
])
def test_every_pixel_mode_becomes_the_right_rgb_picture(tmp_path, make, fmt, expected):
    path = _file(tmp_path, make(), fmt, f"x.{fmt.lower()}")
    rgb = load_image(path)
    assert rgb.mode == "RGB"
    centre = np.array(rgb).reshape(-1, 3).mean(axis=0)
    assert np.abs(centre - np.array(expected)).max() <= 6, (centre, expected)


def test_palette_with_a_transparent_index_is_on_white(tmp_path):
    img = Image.new("P", (64, 64), 0)
    img.putpalette([0, 0, 0] + [0, 0, 255] * 255)
    img.paste(1, (32, 0, 64, 64))
    for fmt in ("PNG", "GIF"):
        path = tmp_path / f"p.{fmt.lower()}"
        img.save(path, fmt, transparency=0)
        rgb = np.array(images_mod.to_rgb(Image.open(path)))
        assert tuple(rgb[10, 10]) == (255, 255, 255) and tuple(rgb[10, 50]) == (0, 0, 255), fmt


def test_a_huge_local_file_is_rejected_from_its_size_without_being_read(tmp_path, monkeypatch):
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as fh:
        fh.truncate(4 * 1024**3)  # sparse: 4 GB that take no disk space
    opened = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    products = [Product("1", "Huge", image="huge.jpg")]
    (reject,) = resolve_images(products, tmp_path, tmp_path / "cache")
    assert (reject.reason, reject.kept) == ("image_too_large", True)
    assert "4,294,967,296 bytes" in reject.detail and opened == []


def test_nul_bytes_and_malformed_urls_are_rejects_of_their_own_rows(tmp_path, make_jpeg):
    (tmp_path / "ok.jpg").write_bytes(make_jpeg())
    products = [Product("1", "a", image="im\x00g.jpg"), Product("2", "b", image="http://[::1/x.jpg"),
                Product("3", "c", image="http://exa mple.com/x.jpg"), Product("4", "d", image="http://:99999/x.jpg"),
                Product("5", "e", image="https:///x.jpg"), Product("6", "f", image="ok.jpg")]
    rejects = resolve_images(products, tmp_path, tmp_path / "cache")
    got = {r.product_id: (r.reason, r.detail) for r in rejects}
    assert set(got) == {"1", "2", "3", "4", "5"} and products[5].image_status == "ok"
    assert got["1"][0] == "image_missing" and "NUL" in got["1"][1]
    assert all(got[i][0] == "image_download_failed" and "malformed URL" in got[i][1] for i in "2345")


@pytest.fixture
def drip():
    """A server that sends headers, then one byte every 0.2 s for two minutes (a slow-drip body)."""
    stop = threading.Event()
    started = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            started.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "600")
            self.end_headers()
            for _ in range(600):
                if stop.wait(0.2):
                    return
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", started
    stop.set()
    httpd.shutdown()
    httpd.server_close()


def test_a_slow_drip_server_cannot_outlast_the_deadline(drip, tmp_path):
    base, _ = drip
    t0 = time.monotonic()
    local, error = download.fetch(f"{base}/a.jpg", tmp_path, timeout=5, retries=2, deadline=1.0)
    assert local is None and "took over 1s in total" in error
    assert time.monotonic() - t0 < 20  # the drip alone lasts 120 s; each read stays under the 5 s timeout


def test_cancel_stops_a_download_in_the_middle_of_a_read(drip, tmp_path):
    base, started = drip
    cancel = threading.Event()
    products = [Product(str(i), "t", image=f"{base}/{i}.jpg") for i in range(3)]
    threading.Thread(target=lambda: (time.sleep(0.5), cancel.set()), daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        resolve_images(products, tmp_path, tmp_path / "cache", timeout=5, deadline=60, cancel=cancel)
    assert started and time.monotonic() - t0 < 20
    assert not list((tmp_path / "cache").glob("*.jpg"))  # nothing partial is cached


def test_the_stage_deadline_rejects_what_it_could_not_fetch(drip, tmp_path):
    base, _ = drip
    products = [Product(str(i), "t", image=f"{base}/{i}.jpg") for i in range(4)]
    rejects = resolve_images(products, tmp_path, tmp_path / "cache", workers=2, timeout=5, deadline=60,
                             stage_deadline=0.5)
    assert len(rejects) == 4 and all(r.reason == "image_download_failed" for r in rejects)
    assert all("ran out of their 0.5s in total" in r.detail for r in rejects)


def test_ctrl_c_does_not_wait_for_a_slow_server(drip, tmp_path):
    import os
    import signal

    base, started = drip
    products = [Product("1", "t", image=f"{base}/slow.jpg")]
    returned = threading.Event()

    def press_ctrl_c():  # once the server is dripping, as a user would: a real SIGINT
        while not started:
            time.sleep(0.05)
        time.sleep(0.3)
        if not returned.is_set():
            os.kill(os.getpid(), signal.SIGINT)

    # Python's own Ctrl-C handler, whatever an earlier test (Ray, Textual) left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        threading.Thread(target=press_ctrl_c, daemon=True).start()
        t0 = time.monotonic()
        try:  # a per-read timeout far above the drip's 0.2 s, so only Ctrl-C ends the download
            rejects = resolve_images(products, tmp_path, tmp_path / "cache", timeout=30, deadline=60)
        except KeyboardInterrupt:
            pass
        else:
            returned.set()
            pytest.fail(f"the download ended before Ctrl-C: {rejects}")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert started and time.monotonic() - t0 < 20  # the drip lasts 120 s and the deadline is 60 s
