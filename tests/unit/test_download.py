"""URL images: a local HTTP server on 127.0.0.1 serves good, missing, slow, oversize and non-image responses."""

from __future__ import annotations

import io
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from mmtui.catalog import download
from mmtui.catalog.images import resolve_images
from mmtui.catalog.records import Product


def _jpeg(size=(48, 48)) -> bytes:
    rng = random.Random(1)
    buf = io.BytesIO()
    Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3))).save(buf, "JPEG")
    return buf.getvalue()


GOOD = _jpeg()
BIG = _jpeg((160, 160))


@pytest.fixture
def server():
    hits: Counter[str] = Counter()
    release = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

        def do_GET(self):
            hits[self.path] += 1
            route = self.path.split("?")[0]
            if route in ("/good.jpg", "/image"):
                self._send(200, "image/jpeg", GOOD)
            elif self.path == "/big.jpg":
                self._send(200, "image/jpeg", BIG)
            elif self.path == "/big-no-length.jpg":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.end_headers()
                self.wfile.write(BIG)
                self.close_connection = True
            elif self.path == "/page.html":
                self._send(200, "text/html", b"<html><body>" + b"hello " * 100 + b"</body></html>")
            elif self.path == "/slow.jpg":
                release.wait(5)
                self._send(200, "image/jpeg", GOOD)
            elif self.path == "/flaky.jpg" and hits[self.path] == 1:
                self._send(503, "text/plain", b"busy")
            elif self.path == "/flaky.jpg":
                self._send(200, "image/jpeg", GOOD)
            else:
                self._send(404, "text/plain", b"not found")

        def _send(self, code, ctype, body):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield base, hits
    release.set()
    httpd.shutdown()
    httpd.server_close()


def test_each_outcome_and_cache_reuse(server, tmp_path, monkeypatch):
    base, hits = server
    monkeypatch.setattr(download, "BACKOFF_S", 0.01)
    urls = ["good.jpg", "missing.jpg", "slow.jpg", "big.jpg", "big-no-length.jpg", "page.html", "flaky.jpg"]
    products = [Product(str(i), u, image=f"{base}/{u}") for i, u in enumerate(urls)]
    cache = tmp_path / "cache"
    t0 = time.monotonic()
    rejects = resolve_images(products, tmp_path, cache, timeout=0.5, retries=1, max_bytes=len(GOOD) + 100)
    assert time.monotonic() - t0 < 4
    status = {p.title: p.image_status for p in products}
    assert status == {
        "good.jpg": "ok", "flaky.jpg": "ok", "missing.jpg": "image_download_failed", "slow.jpg": "image_download_failed",
        "big.jpg": "image_download_failed", "big-no-length.jpg": "image_download_failed", "page.html": "image_download_failed",
    }
    detail = {r.product_id: r.detail for r in rejects}
    assert all(r.kept for r in rejects)
    assert "HTTP 404" in detail["1"]
    assert "timeout" in detail["2"] and "2 attempts" in detail["2"]
    assert "too large" in detail["3"] and "too large" in detail["4"]
    assert "not an image" in detail["5"]
    assert hits["/missing.jpg"] == 1  # a 404 is not retried
    assert hits["/flaky.jpg"] == 2  # a 503 is
    good = products[0]
    assert Path(good.image_path).parent == cache.resolve() and Path(good.image_path).read_bytes() == GOOD
    assert Path(good.image_path).name == download.cache_path(good.image, cache).name
    assert good.image_path.endswith(".jpg")
    assert sorted(p.name for p in cache.iterdir()) == sorted(Path(p.image_path).name for p in products if p.image_path)

    # second build: cached files are not fetched again
    before = hits.copy()
    again = [Product("0", "good.jpg", image=f"{base}/good.jpg"), Product("6", "flaky.jpg", image=f"{base}/flaky.jpg")]
    assert resolve_images(again, tmp_path, cache, timeout=0.5) == []
    assert hits == before
    assert again[0].image_sha == good.image_sha


def test_fetch_without_extension_and_progress(server, tmp_path):
    base, hits = server
    events = []
    products = [Product("a", "t", image=f"{base}/image?id=1"), Product("b", "t", image=f"{base}/image?id=1")]
    assert resolve_images(products, tmp_path, tmp_path / "c", progress=events.append) == []
    assert hits["/image?id=1"] == 1  # the same URL is fetched once for both products
    assert products[0].image_path == products[1].image_path and products[0].image_path.endswith(".img")
    assert (events[-1].stage, events[-1].done, events[-1].total) == ("images", 2, 2)
