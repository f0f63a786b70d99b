"""The shipped `lite` model: loads offline, encodes to normalised vectors, ranks a title's own image first."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")

from mmtui.encoders.base import Encoder  # noqa: E402
from mmtui.encoders.lite import LiteEncoder, default_weights  # noqa: E402
from mmtui.errors import ModelError  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
TITLES = {
    "11188": "Carrera Men Dial steel finish strap Silver Watches",
    "18237": "Manchester United Men Solid Red Tshirt",
    "21510": "Kiara Women Graphiti White Handbag",
    "15379": "Fila Men Lobato Black Casual Shoes",
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a busy 2-core machine two OpenMP threads spin-wait and run ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def lite(one_thread) -> LiteEncoder:
    return LiteEncoder.load("lite", device="cpu")


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [Image.open(FIXTURES / f"{pid}.jpg").convert("RGB") for pid in TITLES]


def test_shipped_model_loads_offline_and_is_small(lite: LiteEncoder, monkeypatch) -> None:
    assert isinstance(lite, Encoder)
    assert lite.name == "lite"
    assert lite.dim == 256 and lite.image_size == 224
    assert len(lite.fingerprint) == 16
    weights = default_weights()
    total = weights.stat().st_size + weights.with_suffix(".json").stat().st_size
    assert total < 15 * 1024 * 1024


def test_shapes_and_normalisation(lite: LiteEncoder, images: list[Image.Image]) -> None:
    t = lite.encode_texts(["navy blue shirt", "black running shoes", "x"])
    i = lite.encode_images(images[:2])
    assert t.shape == (3, lite.dim) and i.shape == (2, lite.dim)
    assert t.dtype == np.float32 and i.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(i, axis=1), 1.0, atol=1e-4)
    assert lite.encode_texts([]).shape == (0, lite.dim)
    assert lite.encode_images([]).shape == (0, lite.dim)


def test_batching_gives_the_same_vectors(lite: LiteEncoder, images: list[Image.Image]) -> None:
    one_by_one = np.concatenate([lite.encode_images([im]) for im in images])
    together = lite.encode_images(images)
    np.testing.assert_allclose(one_by_one, together, atol=2e-2)


def test_each_title_ranks_its_own_image_first(lite: LiteEncoder, images: list[Image.Image]) -> None:
    t = lite.encode_texts(list(TITLES.values()))
    i = lite.encode_images(images)
    assert list((t @ i.T).argmax(axis=1)) == [0, 1, 2, 3]


def test_non_square_image_is_padded_on_white_not_cropped(lite: LiteEncoder) -> None:
    from mmtui.encoders.towers import pad_to_square

    wide = Image.new("RGB", (448, 224), (200, 0, 0))
    square = np.asarray(pad_to_square(wide, 224))
    assert square.shape == (224, 224, 3)
    assert (square[0, 0] == 255).all() and (square[-1, -1] == 255).all()  # white bands above and below
    assert square[112, 0, 0] > 150 and square[112, -1, 0] > 150  # the full width is kept
    v = lite.encode_images([wide, pad_to_square(wide, 224)])
    assert float(v[0] @ v[1]) > 0.999


def test_fingerprint_changes_with_weights(lite: LiteEncoder, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(str(default_weights()))
    key = next(k for k in state if k.endswith("proj.weight"))
    state[key] = state[key] * 1.01
    save_file(state, str(tmp_path / "lite.safetensors"))
    shutil.copy(default_weights().with_suffix(".json"), tmp_path / "lite.json")
    other = LiteEncoder.load("lite", weights=tmp_path / "lite.safetensors")
    assert other.fingerprint != lite.fingerprint
    same = LiteEncoder.load(f"lite:{default_weights()}")
    assert same.fingerprint == lite.fingerprint


def test_missing_or_corrupt_weights_raise_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        LiteEncoder.load("lite", weights=tmp_path / "nope.safetensors")
    assert err.value.hint
    (tmp_path / "lite.safetensors").write_bytes(b"not a safetensors file")
    shutil.copy(default_weights().with_suffix(".json"), tmp_path / "lite.json")
    with pytest.raises(ModelError):
        LiteEncoder.load("lite", weights=tmp_path / "lite.safetensors")


def test_train_lit_writes_a_loadable_checkpoint(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from mmtui.catalog.splits import split_of
    from mmtui.train.lit import train_lit

    colours = {"red": (200, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 200), "black": (20, 20, 20)}
    products = []
    for n in range(32):
        name, rgb = list(colours.items())[n % 4]
        path = tmp_path / f"{n}.jpg"
        img = Image.new("RGB", (64, 64), (255, 255, 255))
        img.paste(Image.new("RGB", (16 + n, 30), rgb), (8, 8))
        img.save(path)
        products.append(SimpleNamespace(id=f"item{n}", title=f"{name} box number {n}", image_path=str(path)))
    assert {split_of(p.id) for p in products} >= {"train", "val"}
    events = []
    metrics = train_lit(products, tmp_path / "out", cache_dir=tmp_path / "cache", epochs=1, batch_size=8,
                        config={"dim": 32, "image": {"pooled": ["head_mean", "colour"]}}, progress=events.append)
    epochs = [e.metrics for e in events if e.stage == "train"]
    assert epochs and set(epochs[0]) >= {"epoch", "train_loss", "val_loss", "val_r10"}
    assert any(e.stage == "features-images" for e in events)
    assert 0.0 <= metrics["val"]["r10"] <= 1.0
    enc = LiteEncoder.load("lite", weights=tmp_path / "out" / "lite.safetensors")
    assert enc.dim == 32 and enc.encode_texts(["red box"]).shape == (1, 32)
    # Started from given weights and not moved (learning rates 0), the heads are those weights.
    import torch
    from safetensors.torch import load_file

    first = load_file(str(tmp_path / "out" / "lite.safetensors"))
    train_lit(products, tmp_path / "same", cache_dir=tmp_path / "cache", epochs=1, batch_size=8, lr=0.0, tail_lr=0.0,
              init=first, config={"dim": 32, "image": {"pooled": ["head_mean", "colour"]}})
    again = load_file(str(tmp_path / "same" / "lite.safetensors"))
    assert again.keys() == first.keys() and all(torch.equal(again[k], first[k]) for k in first)
    # The feature cache makes a second run skip the towers' image pass.
    events.clear()
    train_lit(products, tmp_path / "out2", cache_dir=tmp_path / "cache", epochs=1, batch_size=8,
              config={"dim": 32, "image": {"pooled": ["head_mean"]}}, progress=events.append)
    assert not any(e.stage == "features-images" for e in events)


def test_fingerprint_is_known_without_loading_the_towers(lite: LiteEncoder) -> None:
    """An unchanged rebuild compares fingerprints only: it must not pay for loading the model."""
    from mmtui.encoders import LazyEncoder, lazy_encoder

    lazy = lazy_encoder("lite", device=lite.device)
    assert isinstance(lazy, LazyEncoder) and lazy._encoder is None
    assert (lazy.fingerprint, lazy.dim) == (lite.fingerprint, lite.dim)


def test_pooled_region_vectors_point_where_each_crop_s_own_vector_does(lite: LiteEncoder) -> None:
    """Region vectors pooled from one tower pass (mmtui.encoders.regions) against encoding each crop alone."""
    from mmtui.catalog.regions import Box
    from mmtui.encoders.regions import can_pool, region_vectors

    assert can_pool(lite)
    picture = Image.new("RGB", (320, 240), (150, 140, 120))  # two product shots on a plain wall
    for x, pid in zip((20, 180), ("15379", "21510")):
        with Image.open(FIXTURES / f"{pid}.jpg") as im:
            picture.paste(im.convert("RGB").resize((110, 160)), (x, 40))
    boxes = [Box(20, 40, 110, 160), Box(180, 40, 110, 160)]
    pooled = region_vectors(lite, picture, boxes)
    crops = lite.encode_images([picture.crop((b.x, b.y, b.x + b.w, b.y + b.h)) for b in boxes])
    cos = (pooled * crops).sum(axis=1)
    assert pooled.shape == crops.shape and np.allclose(np.linalg.norm(pooled, axis=1), 1, atol=1e-4)
    assert (cos > 0.6).all()
    assert cos[0] > float(pooled[0] @ crops[1]) and cos[1] > float(pooled[1] @ crops[0])  # each its own crop
