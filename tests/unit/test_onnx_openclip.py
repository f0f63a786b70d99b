"""open_clip models at query time without torch, on the tiny random config: exported where the parts allow it
(checked against torch at export), torch for the parts that cannot be reproduced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from mmtui.build.pipeline import build_index  # noqa: E402
from mmtui.config import Settings  # noqa: E402
from mmtui.encoders import onnx_files  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "tests" / "fixtures" / "openclip"
MIN_COS = 0.9999  # the same fp32 function in two runtimes (see test_onnx_query.py)


@pytest.fixture
def tiny_env(monkeypatch):
    monkeypatch.setenv("MMTUI_OPENCLIP_CONFIGS", str(CONFIGS))


def build(tmp_path, catalog) -> Settings:
    settings = Settings(data_dir=tmp_path / "idx", model="openclip:mmtui-tiny", device="cpu")
    report = build_index(settings, catalog)
    assert report.query_model["status"] == "exported", report.query_model
    return settings


SEARCH = """
import json, sys
from mmtui.config import Settings
from mmtui.query.service import SearchService
service = SearchService.open(Settings.load(data_dir=sys.argv[1]))
service.load_model()
out = {"encoder": type(service.encoder).__name__, "notes": service.notes}
out["text"] = [h.id for h in service.search("green shoes for men", k=5).hits]
out["image"] = [h.id for h in service.search_image(sys.argv[2], k=3).hits]
out["torch"] = "torch" in sys.modules
print(json.dumps(out))
"""


def test_the_tiny_model_is_exported_and_searched_without_torch(tiny_env, tiny_catalog, tmp_path):
    from mmtui.encoders import load_encoder
    from mmtui.encoders.onnx_openclip import OnnxOpenClipEncoder

    settings = build(tmp_path, tiny_catalog)
    folder = next(onnx_files.root(settings.data_dir).iterdir())
    manifest = onnx_files.read_manifest(folder)
    assert set(manifest["parts"]) == {"text", "image", "words"}
    assert min(v for k, v in manifest["check"].items() if k.endswith("_cos_min")) >= MIN_COS

    torch_model = load_encoder("openclip:mmtui-tiny", device="cpu")
    onnx = OnnxOpenClipEncoder(folder, manifest)
    texts = ["a red shirt", "blue jeans for men", "ADIDAS Men Spry M Black Sandals", "x"]
    assert onnx.token_ids(texts) == [ids[:ids.index(49407) + 1] for ids in torch_model.tokenizer(texts).tolist()]
    got, want = onnx.encode_texts(texts), torch_model.encode_texts(texts)
    assert (got * want).sum(axis=1).min() >= MIN_COS
    from PIL import Image

    pictures = [Image.open(tiny_catalog / "img" / f"{n}.jpg").convert("RGB") for n in (1, 5, 9)]
    pictures.append(Image.new("RGB", (61, 37), (200, 40, 10)))  # not square: resize and centre crop
    assert (onnx.encode_images(pictures) * torch_model.encode_images(pictures)).sum(axis=1).min() >= MIN_COS

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = {}
    for name, extra in (("onnx", {}), ("torch", {"MMTUI_ONNX": "off"})):
        done = subprocess.run([sys.executable, "-c", SEARCH, str(settings.data_dir), str(tiny_catalog / "img" / "5.jpg")],
                              capture_output=True, text=True, env={**env, **extra}, timeout=600)
        assert done.returncode == 0, done.stderr
        runs[name] = json.loads(done.stdout.strip().splitlines()[-1])
    assert runs["onnx"]["encoder"] == "OnnxOpenClipEncoder" and not runs["onnx"]["torch"]
    assert runs["torch"]["encoder"] == "OpenClipEncoder"
    assert runs["onnx"]["text"] == runs["torch"]["text"] and runs["onnx"]["image"] == runs["torch"]["image"]


def test_a_part_that_cannot_be_reproduced_stays_on_torch(tiny_env, tiny_catalog, tmp_path, monkeypatch):
    from mmtui.encoders import onnx_openclip
    from mmtui.query.service import SearchService

    monkeypatch.setattr(onnx_openclip, "_tokenizer_spec", lambda tokenizer: None)  # e.g. a SigLIP tokenizer
    settings = build(tmp_path, tiny_catalog)
    manifest = onnx_files.read_manifest(next(onnx_files.root(settings.data_dir).iterdir()))
    assert set(manifest["parts"]) == {"image", "words"} and "text.onnx" not in manifest["files"]
    service = SearchService.open(settings)
    ours = [h.id for h in service.search("green shoes", k=5, mode="image").hits]
    assert type(service.encoder).__name__ == "OnnxOpenClipEncoder"
    monkeypatch.setenv("MMTUI_ONNX", "0")
    stock = SearchService.open(settings)
    assert [h.id for h in stock.search("green shoes", k=5, mode="image").hits] == ours


def test_only_the_usual_transform_is_reproduced():
    from torchvision import transforms as T

    from mmtui.encoders.onnx_openclip import image_steps

    assert image_steps(T.Compose([T.RandomResizedCrop(32), T.ToTensor()])) is None
    assert image_steps(T.Compose([T.Resize((32, 40)), T.CenterCrop(32), T.ToTensor()])) is None
