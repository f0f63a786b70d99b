"""open_clip models through the Encoder interface, on a tiny random config that the tests register."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "openclip"


@pytest.fixture
def tiny(monkeypatch):
    from mmtui.encoders import load_encoder

    monkeypatch.setenv("MMTUI_OPENCLIP_CONFIGS", str(CONFIGS))
    return load_encoder("openclip:mmtui-tiny", device="cpu")


def test_tiny_model_encodes_both_modalities(tiny):
    from PIL import Image

    texts = tiny.encode_texts(["a red shirt", "blue jeans for men", "shoes"])
    images = tiny.encode_images([Image.new("RGB", (40, 30), (200, 0, 0)), Image.new("RGB", (64, 64), (0, 0, 200))])
    assert texts.shape == (3, 16) and images.shape == (2, 16) and texts.dtype == np.float32
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    assert tiny.image_size == 32  # its input side: large JPEGs are decoded at a scale that still covers it


def test_random_init_is_reproducible_so_the_cache_stays_valid(tiny, monkeypatch):
    from mmtui.encoders import load_encoder

    again = load_encoder("openclip:mmtui-tiny", device="cpu")
    assert again.fingerprint == tiny.fingerprint
    assert np.allclose(again.encode_texts(["shirt"]), tiny.encode_texts(["shirt"]), atol=1e-6)


def test_trimming_at_end_of_text_gives_the_same_vectors(tiny):
    from mmtui.encoders.openclip import can_trim, encode_text_trimmed

    assert can_trim(tiny.model)
    tokens = tiny.tokenizer(["red", "a much longer product title with many words in it", ""])
    with torch.inference_mode():
        full = tiny.model.encode_text(tokens)
        trimmed = encode_text_trimmed(tiny.model, tokens)
    assert torch.allclose(full, trimmed, atol=1e-5)


def test_checkpoint_file_loads_offline_and_changes_the_fingerprint(tiny, tmp_path):
    from safetensors.torch import save_file

    from mmtui.encoders import load_encoder

    state = {k: v.clone() + 0.01 for k, v in tiny.model.state_dict().items()}
    path = tmp_path / "tiny.safetensors"
    save_file(state, str(path))
    loaded = load_encoder("openclip:mmtui-tiny", checkpoint=path, device="cpu")
    assert loaded.fingerprint != tiny.fingerprint
    assert not np.allclose(loaded.encode_texts(["shirt"]), tiny.encode_texts(["shirt"]), atol=1e-4)


def test_unknown_architecture_and_missing_checkpoint_are_clear(tmp_path):
    from mmtui.encoders import load_encoder
    from mmtui.errors import ModelError

    with pytest.raises(ModelError, match="no architecture"):
        load_encoder("openclip:Not-A-Model/x", device="cpu")
    with pytest.raises(ModelError, match="does not exist"):
        load_encoder("openclip:ViT-B-32", checkpoint=tmp_path / "none.pt", device="cpu")
    with pytest.raises(ModelError, match="unknown model"):
        load_encoder("bert", device="cpu")


def test_build_and_search_with_the_tiny_model(tiny_catalog, tmp_path, monkeypatch):
    from mmtui.build.pipeline import build_index
    from mmtui.config import Settings
    from mmtui.query.service import SearchService

    monkeypatch.setenv("MMTUI_OPENCLIP_CONFIGS", str(CONFIGS))
    settings = Settings(data_dir=tmp_path / "idx", model="openclip:mmtui-tiny", device="cpu")
    report = build_index(settings, tiny_catalog)
    assert report.encoded_images == 12 and report.model == "openclip:mmtui-tiny"
    service = SearchService.open(settings)
    hit = service.search_image(tiny_catalog / "img" / "5.jpg", k=1).hits[0]
    assert hit.id == "5"
    assert len(service.search("green shoes", k=5, mode="image").hits) == 5
