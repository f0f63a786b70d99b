"""The torch-free query path: the lite towers exported to ONNX at build time (once per session: conftest's
lite_query_export), the heads in numpy, checked against torch; searching in a fresh process never imports torch;
a damaged export is listed by `mmtui check`, searched around with torch, and made again by the next build."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from mmtui.build.pipeline import build_index  # noqa: E402
from mmtui.cli.main import cli  # noqa: E402
from mmtui.config import Settings  # noqa: E402
from mmtui.encoders import onnx_files  # noqa: E402
from mmtui.encoders.lite_config import default_weights  # noqa: E402
from mmtui.query.service import SearchService  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "tests" / "fixtures" / "images"
PHOTOS = {"11188": "Carrera Men Dial steel finish strap Silver Watches", "18237": "Manchester United Men Solid Red Tshirt",
          "21510": "Kiara Women Graphiti White Handbag", "15379": "Fila Men Lobato Black Casual Shoes"}
TITLES = list(PHOTOS.values())
QUERIES = ["navy blue shirt for men", "ladies black watches under 50", "red", "joggers"]
# Both sides compute the same fp32 function; they differ only in the order floats are summed (oneDNN vs ONNX
# Runtime kernels), ~1e-7 relative: 500 titles and 200 images gave cosines >= 0.9999995. 1e-4 leaves room for
# other CPUs' kernels while still failing on any real difference (a wrong pooling or head gives < 0.99).
MIN_COS = 0.9999


def cos_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.fixture(scope="module")
def torch_fp32():
    """The torch model with its image tower in fp32: the function the export reproduces (on CPUs with native bf16
    the build runs the image tower in bf16, an approximation of it)."""
    import torch

    from mmtui.encoders.lite import LiteEncoder

    torch.set_num_threads(1)
    return LiteEncoder.load("lite", device="cpu", image_bf16=False)


@pytest.fixture(scope="module")
def onnx_lite(lite_query_export):
    from mmtui.encoders.onnx_query import OnnxLiteEncoder

    manifest = onnx_files.read_manifest(lite_query_export)
    return OnnxLiteEncoder.open(lite_query_export, default_weights(), manifest, threads=1)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [Image.open(IMAGES / f"{pid}.jpg").convert("RGB") for pid in PHOTOS]


@pytest.fixture(scope="module")
def shop(tmp_path_factory, make_catalog) -> Path:
    """24 products ("red shirt number 0", ...), each with its own small picture, and the 4 fixture photos."""
    folder = make_catalog(tmp_path_factory.mktemp("shop"), n=24)
    lines = [f"{pid},{title},photo,,10,img/{pid}.jpg" for pid, title in PHOTOS.items()]
    for pid in PHOTOS:
        shutil.copyfile(IMAGES / f"{pid}.jpg", folder / "img" / f"{pid}.jpg")
    with open(folder / "products.csv", "a") as f:
        f.write("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory, shop, lite_query_export, query_export_seeder) -> Path:
    """`shop` built with lite (the export linked from the session's one)."""
    settings = Settings(data_dir=tmp_path_factory.mktemp("onnx") / "index", model="lite", device="cpu")
    with pytest.MonkeyPatch.context() as mp:
        query_export_seeder(mp, lambda: lite_query_export)
        report = build_index(settings, shop)
    assert report.query_model["status"] == "exported", report.query_model
    return settings.data_dir


# -- the export against torch ---------------------------------------------------------------------------------------
def test_the_export_was_checked_against_torch_and_recorded(lite_query_export):
    manifest = onnx_files.read_manifest(lite_query_export)
    assert manifest["check"]["reference"] == "torch, fp32 towers"
    for side in ("text", "image", "words", "text_single"):
        assert manifest["check"][f"{side}_cos_min"] >= MIN_COS, manifest["check"]
    assert set(manifest["files"]) == {"text.onnx", "image.onnx", "tokenizer.json"}
    assert manifest["versions"]["onnxruntime"] and manifest["versions"]["torch"]
    assert onnx_files.problems(lite_query_export, full=True) == {}


def test_onnx_texts_and_words_match_torch(onnx_lite, torch_fp32):
    from mmtui.encoders.words import phrase_vectors_torch

    texts = TITLES + QUERIES
    assert cos_rows(onnx_lite.encode_texts(texts), torch_fp32.encode_texts(texts)).min() >= MIN_COS
    for q in QUERIES:  # one at a time, as a search encodes (no padding)
        assert cos_rows(onnx_lite.encode_texts([q]), torch_fp32.encode_texts([q]))[0] >= MIN_COS
    assert cos_rows(onnx_lite.phrase_vectors(texts), phrase_vectors_torch(texts)).min() >= MIN_COS


def test_onnx_images_match_torch_fp32(onnx_lite, torch_fp32, photos):
    got, want = onnx_lite.encode_images(photos), torch_fp32.encode_images(photos)
    assert cos_rows(got, want).min() >= MIN_COS
    one = onnx_lite.encode_images(photos[:1])
    assert cos_rows(one, want[:1])[0] >= MIN_COS
    # and each title still finds its own photo first through the ONNX path
    assert list((onnx_lite.encode_texts(TITLES) @ got.T).argmax(axis=1)) == [0, 1, 2, 3]


def test_numpy_heads_are_the_torch_heads(torch_fp32):
    """The heads alone, on random features: numpy against torch's ImageHead / TextHead (bridge included)."""
    import torch

    from mmtui.encoders.lite import load_heads
    from mmtui.encoders.numpy_heads import NumpyLiteHeads

    config, heads = load_heads(default_weights())
    mine, _ = NumpyLiteHeads.load(default_weights())
    rng = np.random.default_rng(0)
    dims = {k: int(v) for k, v in config["image_dims"].items()}
    feats = {k: np.abs(rng.standard_normal((5, d))).astype(np.float32) for k, d in dims.items()}
    pooled = rng.standard_normal((5, 384)).astype(np.float32)
    with torch.inference_mode():
        want_image = heads.image({k: torch.from_numpy(v) for k, v in feats.items()}).numpy()
        want_text = heads.text.proj(torch.from_numpy(pooled)).numpy()
    assert cos_rows(mine.image(feats), want_image).min() >= 0.99999
    assert cos_rows(mine.text(pooled), want_text).min() >= 0.99999


# -- searching ------------------------------------------------------------------------------------------------------
SEARCH = """
import json, sys
from mmtui.config import Settings
from mmtui.query.service import SearchService
service = SearchService.open(Settings.load(data_dir=sys.argv[1]))
service.load_model()
out = {"encoder": type(service.encoder).__name__, "notes": service.notes}
out["text"] = [h.id for h in service.search("blue shoes", k=6).hits]
out["torch_after_text"] = "torch" in sys.modules
out["image"] = [h.id for h in service.search_image(sys.argv[2], k=6).hits]
out["torch_after_image"] = "torch" in sys.modules
print(json.dumps(out))
"""


def search_in_a_fresh_process(data_dir: Path, image: Path, **env) -> dict:
    environment = {**os.environ, "PYTHONPATH": str(REPO), **env}
    done = subprocess.run([sys.executable, "-c", SEARCH, str(data_dir), str(image)], capture_output=True, text=True,
                          env=environment, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_search_in_a_fresh_process_never_imports_torch(built, shop):
    image = shop / "img" / "18237.jpg"
    onnx = search_in_a_fresh_process(built, image)
    assert onnx["encoder"] == "OnnxLiteEncoder" and onnx["notes"] == []
    assert not onnx["torch_after_text"] and not onnx["torch_after_image"]
    stock = search_in_a_fresh_process(built, image, MMTUI_ONNX="0")
    assert stock["encoder"] == "LiteEncoder" and stock["torch_after_text"]
    assert onnx["text"] == stock["text"]  # the same vectors: the same results
    # fp32 ONNX against the build's image tower (bf16 on CPUs that have it): a photo still finds itself
    assert onnx["image"][0] == stock["image"][0] == "18237"


def test_mmtui_check_lists_the_query_model(built):
    result = CliRunner().invoke(cli, ["check", "--data-dir", str(built), "--json"])
    assert result.exit_code == 0, result.output
    exports = json.loads(result.output)["query_models"]
    assert json.loads(result.output)["query_model"] == {"onnx": True, "note": ""}
    assert len(exports) == 1 and exports[0]["files"] == 3 and json.loads(result.output)["derived_problems"] == {}


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_damaged_export_is_listed_searched_around_and_rebuilt(built, shop, lite_query_export,
                                                                tmp_path, damage):
    data_dir = tmp_path / "index"
    shutil.copytree(built, data_dir)
    folder = next(onnx_files.root(data_dir).iterdir())
    text = folder / "text.onnx"
    raw = text.read_bytes()
    text.unlink()  # a new file: the session's export stays whole
    if damage == "truncated":
        text.write_bytes(raw[: len(raw) // 2])
    else:  # same size: only a full check (sha256) sees it; the session cannot parse a broken header
        text.write_bytes(b"\0" * 64 + raw[64:])
    result = CliRunner().invoke(cli, ["check", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 1
    problems = json.loads(result.output)["derived_problems"]
    assert list(problems) == [f"query-models/{folder.name}/text.onnx"]
    assert ("truncated" if damage == "truncated" else "sha256") in problems[f"query-models/{folder.name}/text.onnx"]

    service = SearchService.open(Settings(data_dir=data_dir))
    hits = [h.id for h in service.search("blue shoes", k=6).hits]
    assert len(hits) == 6 and service.notes and "torch" in service.notes[0]
    service.close()

    report = build_index(Settings(data_dir=data_dir, model="lite", device="cpu"), shop)
    assert report.query_model["status"] == "exported"
    assert onnx_files.problems(folder, full=True) == {}
    service = SearchService.open(Settings(data_dir=data_dir))
    assert [h.id for h in service.search("blue shoes", k=6).hits] == hits
    assert service.notes == [] and type(service.encoder).__name__ == "OnnxLiteEncoder"
    service.close()


def test_without_an_export_a_search_says_why_and_uses_torch(built, tmp_path):
    data_dir = tmp_path / "index"
    shutil.copytree(built, data_dir)
    shutil.rmtree(onnx_files.root(data_dir))
    result = CliRunner().invoke(cli, ["search", "blue shoes", "--data-dir", str(data_dir), "--json", "-k", "3"])
    assert result.exit_code == 0, result.output
    assert "note: queries use torch: the ONNX query model is not exported yet" in result.stderr
    assert len(json.loads(result.stdout)["hits"]) == 3


def test_heads_the_export_was_not_checked_with_load_torch_until_a_build_checks_them(built, shop, tmp_path):
    """New heads (adapted, promoted) on the same towers: searches say so and use torch; the next build checks them
    against torch on the catalog's own titles and pictures and keeps the export."""
    from mmtui.encoders.query_encoder import exported_query_encoder
    from mmtui.store.db import Store

    data_dir = tmp_path / "index"
    shutil.copytree(built, data_dir)
    folder = next(onnx_files.root(data_dir).iterdir())
    # one record per set of heads the build used: the shipped ones, and their copy with the bridge weighed for
    # this catalog (or adapted heads) when those are in use
    records = sorted((folder / onnx_files.CHECKS).glob("*.json"))
    assert records and all(json.loads(r.read_text())["passed"] is True for r in records)
    settings = Settings(data_dir=data_dir)
    for path in records:
        record = json.loads(path.read_text())
        path.write_text(json.dumps({**record, "passed": False, "why": "cosine 0.9 < 0.9999"}))
    store = Store.open(settings.db_path)
    encoder, note = exported_query_encoder(settings, store)
    assert encoder is None and "failed its check against torch" in note and "0.9 < 0.9999" in note
    shutil.rmtree(folder / onnx_files.CHECKS)
    encoder, note = exported_query_encoder(settings, store)
    assert encoder is None and "not checked against torch with these heads" in note
    store.close()
    result = CliRunner().invoke(cli, ["check", "--data-dir", str(data_dir), "--json"])
    said = json.loads(result.output)["query_model"]
    assert result.exit_code == 0 and not said["onnx"] and "not checked against torch" in said["note"]

    before = (folder / "text.onnx").stat().st_mtime_ns
    report = build_index(Settings(data_dir=data_dir, model="lite", device="cpu"), shop)
    assert report.query_model["status"] == "present" and report.query_model["heads_check"] == "passed"
    assert report.query_model["check"]["texts"] > 8 and report.query_model["check"]["images"] > 6  # + the catalog's
    assert (folder / "text.onnx").stat().st_mtime_ns == before
    store = Store.open(settings.db_path)
    assert type(exported_query_encoder(settings, store)[0]).__name__ == "OnnxLiteEncoder"
    store.close()


def test_an_unchanged_rebuild_keeps_the_export(built, shop):
    folder = next(onnx_files.root(built).iterdir())
    before = (folder / "text.onnx").stat().st_mtime_ns
    report = build_index(Settings(data_dir=built, model="lite", device="cpu"), shop)
    assert report.query_model == {"status": "present", "key": folder.name}
    assert (folder / "text.onnx").stat().st_mtime_ns == before
