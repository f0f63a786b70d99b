"""Shared tiny fixtures. Keep each one small and documented; tests build their own data in tmp_path."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

try:  # onnxruntime before any test imports usearch: the other order crashes the process (mmtui.encoders.ort)
    from mmtui.encoders.ort import load as _load_onnxruntime

    _load_onnxruntime()
except ImportError:
    pass


def jpeg_bytes(colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (32, 32)) -> bytes:
    """A small valid JPEG (over the 200-byte minimum)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def fashion_dir(tmp_path: Path) -> Path:
    """A Fashion-layout folder: styles.csv with 3 products (images for 2), and styles-text-only.csv with 1."""
    folder = tmp_path / "fashion"
    (folder / "images").mkdir(parents=True)
    header = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n"
    (folder / "styles.csv").write_text(
        header
        + "15970,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,2011,Casual,Turtle Check Men Navy Blue Shirt\n"
        + "12967,Men,Footwear,Sandal,Sandals,Black,Fall,2011,Casual,ADIDAS Men Spry M Black Sandals\n"
        + "59263,Women,Accessories,Watches,Watches,Silver,Winter,2016,Casual,Titan Women Silver Watch\n"
    )
    (folder / "styles-text-only.csv").write_text(
        header + "39386,Men,Apparel,Bottomwear,Jeans,Blue,Summer,2012,Casual,Peter England Men Party Blue Jeans\n"
    )
    (folder / "images" / "15970.jpg").write_bytes(jpeg_bytes((20, 30, 90)))
    (folder / "images" / "12967.jpg").write_bytes(jpeg_bytes((10, 10, 10)))
    return folder


@pytest.fixture
def make_jpeg():
    """The jpeg_bytes(colour, size) helper, as a fixture."""
    return jpeg_bytes


@pytest.fixture
def paired_store(tmp_path: Path):
    """(settings, store) for training tests: 400 products with cached 'title', 'text' and 'image' vectors (dim 16)
    of a fake base model, where image = normalise(title @ R + noise), so a head can learn to do better than base."""
    import numpy as np

    from mmtui.config import Settings
    from mmtui.catalog.splits import split_of
    from mmtui.store.db import Store

    settings = Settings(data_dir=tmp_path / "idx", model="fake", device="cpu")
    store = Store.open(settings.db_path, create=True)
    rng = np.random.default_rng(0)
    n, dim = 400, 16
    ids = [f"p{i:04d}" for i in range(n)]
    store.upsert_products([{"rowid": i + 1, "id": pid, "title": f"title {pid}", "text": f"text {pid}",
                            "split": split_of(pid)} for i, pid in enumerate(ids)])
    title = rng.standard_normal((n, dim)).astype(np.float32)
    mix = np.eye(dim, dtype=np.float32) + 0.75 * rng.standard_normal((dim, dim)).astype(np.float32)
    image = title @ mix + 1.0 * rng.standard_normal((n, dim)).astype(np.float32)
    norm = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    rowids = list(range(1, n + 1))
    for kind, vecs in (("title", title), ("text", title), ("image", image)):
        store.put_vectors("fakefp", kind, rowids, ["sha"] * n, norm(vecs))
    store.set_meta("base_model", "fake")
    store.set_meta("base_fingerprint", "fakefp")
    return settings, store


COLOURS = {"Red": (200, 20, 20), "Blue": (20, 30, 200), "Green": (20, 170, 40), "Black": (12, 12, 12)}
KINDS = ("Shirt", "Shoes", "Dress")


def _striped_jpeg(colour: tuple[int, int, int], kind: int) -> bytes:
    """A flat-colour image with a white band whose place depends on the kind: every image is distinct."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (48, 48), colour)
    ImageDraw.Draw(img).rectangle([0, 16 * kind, 47, 16 * kind + 9], fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def tiny_catalog(tmp_path: Path) -> Path:
    """A generic products.csv with 12 products (4 colours x 3 kinds, one flat-colour image each) and 2 bad rows:
    one product whose image is missing (kept, text-only) and one row without an id (rejected)."""
    folder = tmp_path / "shop"
    (folder / "img").mkdir(parents=True)
    lines = ["id,title,category,colour,gender,price,image"]
    n = 0
    for colour, rgb in COLOURS.items():
        for kind in KINDS:
            n += 1
            (folder / "img" / f"{n}.jpg").write_bytes(_striped_jpeg(rgb, KINDS.index(kind)))
            lines.append(f"{n},{colour} {kind} for men,Apparel > {kind},{colour},Men,{10 * n},img/{n}.jpg")
    lines.append("99,Red Scarf without a picture,Accessories > Scarves,Red,Women,5,img/none.jpg")
    lines.append(",Row without an id,Apparel,Red,Men,5,img/1.jpg")
    (folder / "products.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def fake_settings(tmp_path: Path):
    """Settings for a data dir of its own, with the torch-free fake model."""
    from mmtui.config import Settings

    return Settings(data_dir=tmp_path / "index", model="fake")


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def generic_catalog() -> Path:
    """tests/fixtures/generic_catalog: products.csv with 5 rows (3 real images, 1 without, 1 missing file; 1 price)."""
    return FIXTURES / "generic_catalog"


def write_catalog(folder: Path, n: int = 560, *, renamed: int = 0, dropped: int = 0) -> Path:
    """products.csv with n products p0.. (default: above ann.EXACT_BELOW, so the indexes have graphs), each
    with its own 8x8 JPEG; the first `renamed` titles changed, the last `dropped` products left out."""
    from PIL import Image

    (folder / "img").mkdir(parents=True, exist_ok=True)
    words = ["red", "blue", "green", "black", "white", "shirt", "shoes", "dress", "watch", "bag", "jeans"]
    lines = ["id,title,category,colour,price,image"]
    for i in range(n - dropped):
        image = folder / "img" / f"{i}.jpg"
        if not image.exists():
            buf = io.BytesIO()
            Image.new("RGB", (8, 8), (i * 7 % 256, i * 13 % 256, i * 29 % 256)).save(buf, "JPEG")
            image.write_bytes(buf.getvalue())
        title = f"{words[i % 5]} {words[5 + i % 6]} number {i}" + (" renamed" if i < renamed else "")
        lines.append(f"p{i},{title},{words[5 + i % 6]},{words[i % 5]},{i % 90 + 1},img/{i}.jpg")
    (folder / "products.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="session")
def make_catalog():
    """The write_catalog(folder, n=560, renamed=0, dropped=0) helper, as a fixture."""
    return write_catalog


# -- the torch-free query model ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def lite_query_export(tmp_path_factory) -> Path:
    """The lite towers exported to ONNX once per session, for real (mmtui.encoders.onnx_export: ~25 s of CPU, checked
    against torch on its fixed sample); the folder of the export."""
    pytest.importorskip("onnxruntime")
    from mmtui.encoders import onnx_export, onnx_files
    from mmtui.encoders.lite_config import default_weights

    data_dir = tmp_path_factory.mktemp("query-export")
    with pytest.MonkeyPatch.context() as mp:  # the real exporter, whatever the test that asked has patched
        for name, fn in _real_exporters().items():
            mp.setattr(onnx_export, name, fn)
        manifest = onnx_export.export_lite(data_dir, default_weights())
    return onnx_files.folder(data_dir, manifest["key"])


_REAL_EXPORTERS: dict = {}


def _real_exporters() -> dict:
    from mmtui.encoders import onnx_export

    if not _REAL_EXPORTERS:
        _REAL_EXPORTERS.update(export_lite=onnx_export.export_lite, export_minilm=onnx_export.export_minilm)
    return _REAL_EXPORTERS


def seed_query_exports(mp, session_export) -> None:
    """Builds made while `mp` (a MonkeyPatch) is active link the session's export into their data dir instead of
    exporting again: every lite build in the suite would otherwise pay ~25 s of CPU. `session_export` is a
    callable returning lite_query_export (so a session that builds nothing with lite never exports)."""
    import os
    import shutil

    from mmtui.encoders import onnx_export, onnx_files

    _real_exporters()  # remembered before they are replaced

    def export_lite(data_dir, weights, progress=None, sample=((), ())):
        source = session_export()
        target = onnx_files.folder(data_dir, source.name)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, copy_function=os.link)  # links: a test that damages a file replaces it
        if onnx_files.heads_check(target, onnx_export.heads_sha256(weights)) is None:  # heads adapted by the build
            onnx_export.check_heads(target, weights, sample)
        return onnx_files.read_manifest(target)

    def export_minilm(path, tokenizer_path):
        source = session_export()
        os.link(source / "text.onnx", path)
        os.link(source / "tokenizer.json", tokenizer_path)

    mp.setattr(onnx_export, "export_lite", export_lite)
    mp.setattr(onnx_export, "export_minilm", export_minilm)


@pytest.fixture(scope="session")
def query_export_seeder():
    """seed_query_exports, for module-scoped fixtures (they run outside a test's monkeypatch)."""
    return seed_query_exports


@pytest.fixture(autouse=True)
def reuse_query_export(request, monkeypatch):
    """See seed_query_exports: on for every test (tests of the export itself use lite_query_export)."""
    seed_query_exports(monkeypatch, lambda: request.getfixturevalue("lite_query_export"))
