"""Adapting the model to the catalog during build-index (mmtui.train.adapt).

A stand-in for the lite model keeps the tests fast: its "towers" are a 4x4 thumbnail of the picture and a hashed
bag of words of the text, and its heads are real lite heads (a tiny lite-format checkpoint, random: the "shipped"
model knows nothing of this catalog, as the shipped lite heads know nothing of furniture).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmtui.build.pipeline import build_index  # noqa: E402
from mmtui.config import Settings  # noqa: E402
from mmtui.encoders.lite import FORMAT, LiteEncoder, LiteHeads, load_heads, project_features  # noqa: E402
from mmtui.store.db import Store  # noqa: E402
from mmtui.train import adapt  # noqa: E402
from mmtui.train.lit import save_checkpoint  # noqa: E402



@pytest.fixture(scope="module", autouse=True)
def no_query_model_export():
    """The stand-in's "towers" are not the ones an ONNX export would write (the export's check against torch fails,
    ~9 s a build): these builds leave the query model out, as MMTUI_ONNX=0 does; test_onnx_query tests it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMTUI_ONNX", "0")
        yield


KINDS = ("mug", "chair", "lamp", "rug", "vase", "bowl", "shelf", "clock")
COLOURS = {"red": (200, 20, 20), "blue": (20, 30, 200), "green": (20, 170, 40), "black": (12, 12, 12),
           "white": (240, 240, 240), "yellow": (230, 210, 30)}


def tiny_heads(folder: Path, seed: int = 0, bridge: bool = False) -> Path:
    """A lite-format checkpoint whose image head reads a 48-d "thumb" feature and text head a 384-d one; with
    `bridge`, the feature is called head_mean and an ImageNet bridge (random classifier and class texts) reads it."""
    torch.manual_seed(seed)
    feature = "head_mean" if bridge else "thumb"
    config = {"dim": 16, "image_tower": "lite0", "text_tower": "all-MiniLM-L6-v2",
              "image": {"pooled": [feature], "tail_from": None, "dropout": 0.0},
              "text": {"tail_from": None, "pool": "mean", "dropout": 0.0},
              "image_dims": {feature: 48}, "format": FORMAT, "preprocess": "test"}
    if bridge:
        config["image"]["bridge"] = {"top": 10, "weight": 0.4, "classes": "imagenet-1k", "learn_weight": False,
                                     "temperature": 2.0}
    heads = LiteHeads(config, {feature: 48})
    if bridge:
        with torch.no_grad():
            heads.image.fc_w.normal_()
            heads.image.class_text.normal_()
    save_checkpoint(heads, config, {}, folder, name="shipped")
    return folder / "shipped.safetensors"


class FeatureEncoder:
    """Lite's interface over toy towers; counts how many pictures and texts its towers saw."""

    image_size = None
    dim = 16

    def __init__(self, weights: Path, counts: dict | None = None) -> None:
        self.name = f"lite:{weights}"
        self.weights_path = Path(weights)
        self.fingerprint, _, self.feature_fingerprint = LiteEncoder.fingerprint_for(self.name, "cpu")
        self.heads = load_heads(self.weights_path)[1]
        self.counts = counts if counts is not None else {"images": 0, "texts": 0}

    def with_heads(self, weights: Path) -> "FeatureEncoder":
        return FeatureEncoder(weights, self.counts)

    @staticmethod
    def _image_features(images) -> np.ndarray:
        return np.stack([np.asarray(im.convert("RGB").resize((4, 4)), np.float32).reshape(-1) / 255 for im in images])

    @staticmethod
    def _text_features(texts) -> np.ndarray:
        out = np.zeros((len(texts), 384), np.float32)
        for i, text in enumerate(texts):
            for word in str(text).lower().split():
                out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 384] += 1.0
        return out

    def encode_images_with_features(self, images):
        self.counts["images"] += len(images)
        f = self._image_features(images).astype(np.float16)
        return project_features(self.heads, "image", f), f

    def encode_texts_with_features(self, texts):
        self.counts["texts"] += len(texts)
        f = self._text_features(texts).astype(np.float16)
        return project_features(self.heads, "text", f), f

    def encode_images(self, images):
        return self.encode_images_with_features(images)[0]

    def encode_texts(self, texts):
        return self.encode_texts_with_features(texts)[0]


def _picture(colour: tuple[int, int, int], kind: int) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (64, 64), colour)
    ImageDraw.Draw(img).rectangle([16 * (kind % 4), 32 * (kind // 4), 16 * (kind % 4) + 15, 32 * (kind // 4) + 31],
                                  fill=(128, 128, 128))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def make_catalog(folder: Path, n: int = 320, shuffle_pictures: bool = False) -> Path:
    """n products of 8 kinds x 6 colours, a picture each that shows its colour and (by a grey patch) its kind."""
    rng = np.random.default_rng(1)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows, pictures = ["id,title,category,colour,image"], []
    for i in range(n):
        kind, colour = KINDS[i % len(KINDS)], list(COLOURS)[(i // len(KINDS)) % len(COLOURS)]
        pictures.append(_picture(COLOURS[colour], KINDS.index(kind)))
        rows.append(f"a{i:04d},{colour} {kind} number {i},Home > {kind},{colour},img/{i}.jpg")
    order = rng.permutation(n) if shuffle_pictures else np.arange(n)
    for i in range(n):
        (folder / "img" / f"{i}.jpg").write_bytes(pictures[order[i]])
    (folder / "products.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture
def setup(tmp_path: Path):
    weights = tiny_heads(tmp_path / "model")
    settings = Settings(data_dir=tmp_path / "index", device="cpu")
    return settings, weights, make_catalog(tmp_path / "shop")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """setup's catalog built once for the module (adapting trains for ~40 epochs): (settings, weights, catalog,
    report, how many pictures and texts the towers saw, the shipped heads' fingerprint). Tests that build again
    work on a copy of its data dir (copy_of); the others only read it."""
    root = tmp_path_factory.mktemp("adapted")
    weights = tiny_heads(root / "model")
    settings = Settings(data_dir=root / "index", device="cpu")
    catalog = make_catalog(root / "shop")
    counts = {"images": 0, "texts": 0}
    encoder = FeatureEncoder(weights, counts)
    report = build_index(settings, catalog, encoder=encoder)
    return settings, weights, catalog, report, dict(counts), encoder.fingerprint


def copy_of(settings: Settings, tmp_path: Path) -> Settings:
    shutil.copytree(settings.data_dir, tmp_path / "index")
    return Settings(data_dir=tmp_path / "index", device="cpu")


def _meta(settings: Settings, key: str) -> str | None:
    store = Store.open(settings.db_path)
    try:
        return store.get_meta(key)
    finally:
        store.close()


def test_build_adapts_the_heads_and_keeps_them_when_validation_improves(built):
    settings, _, _, report, _, shipped_fp = built
    a = report.adaptation
    assert a["status"] == "adapted" and a["model"] == "adapted"
    assert a["after"]["title->picture"]["r10"] > a["before"]["title->picture"]["r10"] + 0.2
    assert a["before"]["title->picture"]["r10"] < 3 * a["chance_r10"]  # random heads: at chance
    assert a["after"]["category->picture"]["ndcg@10"] > a["before"]["category->picture"]["ndcg@10"]
    assert _meta(settings, "base_fingerprint") != shipped_fp  # the index now holds the adapted vectors
    files = list((settings.data_dir / "adapted").glob("*.safetensors"))
    assert len(files) == 1
    assert _meta(settings, "base_fingerprint") == LiteEncoder.fingerprint_for(f"lite:{files[0]}", "cpu")[0]


def test_the_tower_runs_once_per_picture_and_an_unchanged_rebuild_trains_nothing(built, tmp_path, monkeypatch):
    shared, weights, catalog, _, counts, _ = built
    assert counts["images"] == 320  # adapting re-projected the cached features: no second pass over the pictures
    settings = copy_of(shared, tmp_path)
    fitted = []
    monkeypatch.setattr(adapt, "_fit", lambda *a, **k: fitted.append(1) or pytest.fail("trained again"))
    again_counts = {"images": 0, "texts": 0}
    again = build_index(settings, catalog, encoder=FeatureEncoder(weights, again_counts))
    assert again.adaptation["status"] == "unchanged" and again.adaptation["model"] == "adapted"
    assert again_counts["images"] == 0 and not fitted
    assert again.encoded_images == 0 and again.encoded_texts == 0


def test_adapted_heads_are_dropped_when_they_do_not_beat_the_shipped_ones(setup, monkeypatch):
    settings, weights, catalog = setup
    worse = LiteHeads(load_heads(weights)[0], {"thumb": 48})  # other random heads: no better than the shipped
    monkeypatch.setattr(adapt, "_fit", lambda base, *a, **k: (worse.eval(), 1))
    encoder = FeatureEncoder(weights)
    report = build_index(settings, catalog, encoder=encoder)
    assert report.adaptation["status"] == "kept-shipped" and report.adaptation["model"] == "shipped"
    assert _meta(settings, "base_fingerprint") == encoder.fingerprint
    assert not list((settings.data_dir / "adapted").glob("*.safetensors"))


def test_no_adapt_uses_the_shipped_heads_and_a_later_build_reuses_the_adaptation(built, tmp_path, monkeypatch):
    shared, weights, catalog, _, _, shipped_fp = built
    settings = copy_of(shared, tmp_path)
    adapted_fp = _meta(settings, "base_fingerprint")
    off = build_index(settings, catalog, encoder=FeatureEncoder(weights), adapt=False)
    assert off.adaptation["status"] == "off" and _meta(settings, "base_fingerprint") == shipped_fp
    monkeypatch.setattr(adapt, "_fit", lambda *a, **k: pytest.fail("trained again"))
    on = build_index(settings, catalog, encoder=FeatureEncoder(weights))
    assert on.adaptation["status"] == "unchanged" and _meta(settings, "base_fingerprint") == adapted_fp


def test_damaged_adapted_heads_are_listed_by_check_and_trained_again_by_the_next_build(built, tmp_path):
    from click.testing import CliRunner

    from mmtui.cli.main import cli

    shared, weights, catalog, _, _, _ = built
    settings = copy_of(shared, tmp_path)
    [heads] = (settings.data_dir / "adapted").glob("*.safetensors")
    heads.write_bytes(heads.read_bytes()[:1000])  # truncated
    checked = CliRunner().invoke(cli, ["check", "--data-dir", str(settings.data_dir), "--json"])
    assert checked.exit_code == 1
    assert list(json.loads(checked.output)["derived_problems"]) == [f"adapted/{heads.name}"]
    again = build_index(settings, catalog, encoder=FeatureEncoder(weights))
    assert again.adaptation["status"] == "adapted"  # trained again: the damaged file was removed first
    assert CliRunner().invoke(cli, ["check", "--data-dir", str(settings.data_dir)]).exit_code == 0


def test_a_small_catalog_keeps_the_shipped_model_and_says_why(tmp_path):
    weights = tiny_heads(tmp_path / "model")
    settings = Settings(data_dir=tmp_path / "index", device="cpu")
    encoder = FeatureEncoder(weights)
    report = build_index(settings, make_catalog(tmp_path / "shop", n=60), encoder=encoder)
    assert report.adaptation["status"] == "too-few-pairs"
    assert "too few" in report.adaptation["message"]
    assert _meta(settings, "base_fingerprint") == encoder.fingerprint


def test_many_new_products_adapt_again(built, tmp_path):
    shared, weights, _, _, _, _ = built
    settings = copy_of(shared, tmp_path)
    first = list((settings.data_dir / "adapted").glob("*.safetensors"))
    bigger = build_index(settings, make_catalog(tmp_path / "second", n=420), encoder=FeatureEncoder(weights))
    assert bigger.adaptation["status"] == "adapted"  # 100 of ~336 training pairs are new: over the 10% mark
    now = list((settings.data_dir / "adapted").glob("*.safetensors"))
    assert len(now) == 1 and now != first  # the old heads' files are gone


def test_hybrid_weights_are_learned_at_build_time_and_a_picture_signal_at_chance_gets_no_vote(tmp_path):
    weights = tiny_heads(tmp_path / "model")
    good = Settings(data_dir=tmp_path / "good", device="cpu")
    report = build_index(good, make_catalog(tmp_path / "shop", n=560), encoder=FeatureEncoder(weights))
    assert report.ranking["status"] == "learned" and "image" not in report.ranking["at_chance"]
    shuffled = Settings(data_dir=tmp_path / "shuffled", device="cpu")  # every picture belongs to another product
    mixed = make_catalog(tmp_path / "mixed", n=560, shuffle_pictures=True)  # ~60 validation products
    report = build_index(shuffled, mixed, encoder=FeatureEncoder(weights))
    assert report.adaptation["model"] == "shipped"  # nothing to learn from pictures that match no title
    assert report.ranking["status"] == "learned" and "image" in report.ranking["at_chance"]
    saved = json.loads(_meta(shuffled, "hybrid"))
    assert saved["weights"].get("image", 0.0) == 0.0 and saved["weights"]["lexical"] > 0
    again = build_index(shuffled, mixed, encoder=FeatureEncoder(weights))
    assert again.ranking["status"] == "unchanged"


def test_the_build_screen_and_the_models_list_show_the_adaptation(built):
    from rich.console import Console

    from mmtui.query.service import SearchService
    from mmtui.tui.screens.build import report_table

    settings, weights, _, report, _, _ = built
    console = Console(width=120, record=True)
    console.print(report_table(report))
    shown = console.export_text()
    r10 = report.adaptation["after"]["title->picture"]["r10"]
    assert "model adapted to this catalog" in shown and f"→ {r10:.3f} adapted" in shown
    assert "hybrid weights" in shown
    adapted = FeatureEncoder(weights).with_heads(next((settings.data_dir / "adapted").glob("*.safetensors")))
    service = SearchService.open(settings, encoder=adapted)
    try:
        base = service.models()[0]
        assert base["kind"] == "base, adapted to this catalog" and base["metrics"]["r10"] == r10
    finally:
        service.close()
    # `mmtui models` shows the figure the TUI's model screen shows
    from click.testing import CliRunner

    from mmtui.cli.main import cli

    listed = CliRunner().invoke(cli, ["models", "--data-dir", str(settings.data_dir), "--json"])
    base = json.loads(listed.output)[0]
    assert base["name"] == "base" and base["val_r10"] == r10 and base["adapted"] is True
    table = CliRunner().invoke(cli, ["models", "--data-dir", str(settings.data_dir)], terminal_width=140).output
    assert f"{r10:.4f}" in table and "adapted to this catalog" in table


# -- the ImageNet bridge weighed for the catalog, the kinds' words, the summary ----------------------------------

def _choose(weight: float, temperature: float | None = None):
    """A stand-in for adapt_fit.choose_bridge_weight that always picks `weight` (and `temperature`, if given)."""
    def choose(heads, *args, **kwargs):
        with torch.no_grad():
            heads.image.bridge_weight.fill_(weight)
        if temperature is not None:
            heads.image.bridge["temperature"] = temperature
        return weight
    return choose


def test_no_adapt_weighs_the_bridge_for_the_catalog_and_searches_with_it(tmp_path, monkeypatch):
    from mmtui.encoders.for_index import adapted_weights

    weights = tiny_heads(tmp_path / "model", bridge=True)
    settings = Settings(data_dir=tmp_path / "index", device="cpu")
    catalog = make_catalog(tmp_path / "shop", n=200)
    monkeypatch.setattr(adapt, "choose_bridge_weight", _choose(3.0, temperature=3.0))
    encoder = FeatureEncoder(weights)
    report = build_index(settings, catalog, encoder=encoder, adapt=False)
    a = report.adaptation
    assert a["status"] == "off" and a["model"] == "shipped"
    assert a["bridge"] == {"shipped": 0.4, "chosen": 3.0, "shipped_temperature": 2.0, "temperature": 3.0}
    [tuned] = (settings.data_dir / "adapted").glob("shipped-*.safetensors")
    config, heads = load_heads(tuned)
    assert float(heads.image.bridge_weight.detach()) == 3.0 and heads.image.bridge["temperature"] == 3.0
    assert _meta(settings, "base_fingerprint") == LiteEncoder.fingerprint_for(f"lite:{tuned}", "cpu")[0]
    store = Store.open(settings.db_path)
    assert adapted_weights(settings, store, f"lite:{weights}") == tuned  # what a search opens
    store.close()
    # the shipped weight wins next time: the tuned copy goes, the shipped heads are in use again
    monkeypatch.setattr(adapt, "choose_bridge_weight", _choose(0.4, temperature=2.0))
    again = build_index(settings, catalog, encoder=FeatureEncoder(weights), adapt=False)
    assert again.adaptation["bridge"] == {"shipped": 0.4, "chosen": 0.4}
    assert not list((settings.data_dir / "adapted").glob("shipped-*"))
    assert _meta(settings, "base_fingerprint") == encoder.fingerprint


def test_a_catalog_too_small_to_hold_products_out_weighs_the_bridge_on_all_of_them(tmp_path, monkeypatch):
    weights = tiny_heads(tmp_path / "model", bridge=True)
    settings = Settings(data_dir=tmp_path / "index", device="cpu")
    seen = []
    monkeypatch.setattr(adapt, "choose_bridge_weight",
                        lambda heads, part, *a: seen.append(len(part["rowids"])) or _choose(1.5)(heads))
    report = build_index(settings, make_catalog(tmp_path / "shop", n=60), encoder=FeatureEncoder(weights))
    a = report.adaptation
    assert a["status"] == "too-few-pairs" and a["measured_on"] == "all" and seen == [60]
    assert a["before"]["title->picture"]["n"] == 60 and a["bridge"]["chosen"] == 1.5
    assert list((settings.data_dir / "adapted").glob("shipped-*.safetensors"))


def test_adapting_trains_on_the_kinds_words_and_weighs_the_bridge_again(tmp_path, monkeypatch):
    weights = tiny_heads(tmp_path / "model", bridge=True)
    settings = Settings(data_dir=tmp_path / "index", device="cpu")
    calls = []
    real_fit = adapt._fit

    def spy(base, pairs, **kwargs):
        calls.append(kwargs)
        return real_fit(base, pairs, **{**kwargs, "epochs": 3})

    monkeypatch.setattr(adapt, "_fit", spy)
    report = build_index(settings, make_catalog(tmp_path / "shop"), encoder=FeatureEncoder(weights))
    [kw] = calls  # one fit (the bridge is weighed after it, not trained twice)
    ids, features = kw["kinds"]
    assert features.shape == (len(KINDS), 384) and (ids >= 0).all() and len(set(ids.tolist())) == len(KINDS)
    assert [q for q, _ in kw["queries"]] == sorted(KINDS)  # validation: the kinds' words find their pictures
    assert {"shipped", "chosen", "adapted", "adapted_temperature"} <= set(report.adaptation["bridge"])
    assert report.adaptation["reason"]


def test_a_catalog_without_kinds_adapts_on_titles_alone(tmp_path, monkeypatch):
    folder = tmp_path / "shop"
    make_catalog(folder, n=240)  # 200 gives 19 validation pairs: too few to adapt
    rows = (folder / "products.csv").read_text().splitlines()
    (folder / "products.csv").write_text("\n".join(
        ["id,title,image"] + [",".join(r.split(",")[i] for i in (0, 1, 4)) for r in rows[1:]]) + "\n")
    calls = []
    real_fit = adapt._fit
    monkeypatch.setattr(adapt, "_fit", lambda base, pairs, **kw: calls.append(kw) or real_fit(base, pairs, **kw))
    settings = Settings(data_dir=tmp_path / "index", device="cpu")
    report = build_index(settings, folder, encoder=FeatureEncoder(tiny_heads(tmp_path / "model")))
    assert calls[0]["kinds"] is None and calls[0]["queries"] == []
    assert "category->picture" not in report.adaptation["before"]
    assert report.adaptation["status"] in ("adapted", "kept-shipped")


def test_the_summary_says_which_model_is_in_use_and_why(built):
    from mmtui.cli.render import out, print_adaptation

    _, _, _, report, _, _ = built
    with out.capture() as captured:
        print_adaptation(report.adaptation)
    shown = " ".join(captured.get().split())  # the console wraps lines at its width
    assert "model adapted to this catalog (it finds pictures from" in shown
    assert "category words" in shown and "nDCG@10" in shown and "in use: the adapted model" in shown
    kept = {**report.adaptation, "status": "kept-shipped", "model": "shipped",
            "message": "model not adapted: the shipped model is kept",
            "reason": "the adapted model finds pictures from titles clearly worse than the shipped one on the "
                      "held-out products", "bridge": {"shipped": 0.4, "chosen": 3.0, "adapted": 0.39990234375}}  # fp16 0.4
    with out.capture() as captured:
        print_adaptation(kept)
    shown = " ".join(captured.get().split())  # the console wraps lines at its width
    assert "shipped model is kept (the adapted model finds pictures from titles clearly worse" in shown
    assert "in use: the shipped model" in shown and "weight 3 here (shipped 0.4)" in shown
    assert "; 0.4 in the adapted model" in shown
