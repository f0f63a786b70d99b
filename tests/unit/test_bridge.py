"""The ImageNet bridge of the lite image head: its softmax temperature, the shipped class texts, and the weight a
build chooses for a catalog (mmtui.train.adapt_fit.choose_bridge_weight)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmtui.encoders.lite import WEIGHTS_DIR, LiteHeads, bridge_names, default_weights, read_checkpoint  # noqa: E402
from mmtui.train import adapt_fit  # noqa: E402
from mmtui.train.lit import save_checkpoint  # noqa: E402

KINDS = ("mug", "chair", "lamp", "rug", "vase", "bowl", "shelf", "clock")


def toy_config(temperature: float | None = None, dim: int = 16) -> dict:
    """A lite config over a 48-d "head_mean" feature with an ImageNet bridge."""
    bridge = {"top": 10, "weight": 0.4, "classes": "imagenet-1k", "learn_weight": False}
    if temperature is not None:
        bridge["temperature"] = temperature
    return {"dim": dim, "image_tower": "lite0", "text_tower": "all-MiniLM-L6-v2",
            "image": {"pooled": ["head_mean"], "tail_from": None, "dropout": 0.0, "bridge": bridge},
            "text": {"tail_from": None, "pool": "mean", "dropout": 0.0}, "image_dims": {"head_mean": 48},
            "format": "mmtui-lite-v1", "preprocess": "test"}


def bridge_heads(temperature: float | None = None, seed: int = 0) -> LiteHeads:
    """Random lite heads of toy_config, the bridge's classifier and class texts random too."""
    torch.manual_seed(seed)
    heads = LiteHeads(toy_config(temperature), {"head_mean": 48})
    with torch.no_grad():
        heads.image.fc_w.normal_()
        heads.image.fc_b.normal_()
        heads.image.class_text.normal_()
    return heads.eval()


def old_flat(image_head, z: torch.Tensor) -> torch.Tensor:
    """ImageHead.flat as it was before the temperature (the vectors old checkpoints were indexed with)."""
    from torch.nn import functional as F

    out = image_head.proj(image_head.drop((z - image_head.mu) / image_head.sd))
    logits = z[:, image_head.head_slice] @ image_head.fc_w.T + image_head.fc_b
    top = logits.topk(int(image_head.bridge.get("top", 10)), dim=1)
    p = top.values.softmax(dim=1)
    names = (image_head.class_text[top.indices] * p[..., None]).sum(1)
    return F.normalize(out, dim=-1) + image_head.bridge_weight * F.normalize(image_head.text_proj(names), dim=-1)


def test_a_checkpoint_without_a_temperature_keeps_its_vectors_bit_for_bit():
    heads = bridge_heads()
    z = torch.randn(7, 48)
    with torch.no_grad():
        assert torch.equal(heads.image.flat(z), old_flat(heads.image, z))
        same = bridge_heads(temperature=1.0)
        assert torch.equal(same.image.flat(z), heads.image.flat(z))
        warmer = bridge_heads(temperature=2.0)
        assert not torch.allclose(warmer.image.flat(z), heads.image.flat(z))


def test_bridge_names_mix_the_top_classes_by_a_softmax_at_the_temperature():
    torch.manual_seed(1)
    feats, fc_w, fc_b, texts = torch.randn(3, 8), torch.randn(20, 8), torch.randn(20), torch.randn(20, 5)
    got = bridge_names(feats, fc_w, fc_b, texts, top=4, temperature=2.0).numpy()
    logits = (feats @ fc_w.T + fc_b).numpy()
    for i in range(3):
        top = np.argsort(-logits[i])[:4]
        p = np.exp(logits[i, top] / 2.0 - (logits[i, top] / 2.0).max())
        p /= p.sum()
        assert np.allclose(got[i], (texts.numpy()[top] * p[:, None]).sum(0), atol=1e-5)


def test_the_temperature_is_part_of_the_model_fingerprint(tmp_path):
    from mmtui.encoders.lite import LiteEncoder

    fingerprints = set()
    for t in (None, 2.0):
        save_checkpoint(bridge_heads(temperature=t), toy_config(t), {}, tmp_path / str(t), name="lite")
        fingerprints.add(LiteEncoder.fingerprint_for(f"lite:{tmp_path / str(t) / 'lite.safetensors'}")[0])
    assert len(fingerprints) == 2


def test_the_class_texts_ship_with_their_licence_and_match_the_shipped_bridge():
    doc = json.loads((WEIGHTS_DIR / "imagenet_classes.json").read_text(encoding="utf-8"))
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in doc["wordnet_license"]
    classes = doc["classes"]
    assert [c["index"] for c in classes] == list(range(1000))
    assert all(len(c["texts"]) == 2 and c["texts"][1].startswith(c["texts"][0] + ": ") for c in classes)
    assert classes[0]["texts"][0] == "tench" and classes[999]["texts"][0] == "toilet paper"
    config, state, _ = read_checkpoint(default_weights())
    assert config["image"]["bridge"]["temperature"] == 2.0
    from mmtui.encoders.lite import LiteEncoder

    encoder = LiteEncoder.load("lite", device="cpu")
    picked = [0, 417, 999]  # tench, balloon, toilet paper
    feats = encoder.encode_texts_with_features([t for i in picked for t in classes[i]["texts"]])[1].astype(np.float32)
    want = feats.reshape(len(picked), 2, -1).mean(1)
    assert np.allclose(state["image.class_text"].float().numpy()[picked], want, atol=2e-3)


# -- choosing the weight -----------------------------------------------------------------------------------

def toy_catalog(bridge_knows_kinds: bool, n: int = 64, seed: int = 0):
    """Heads whose own image projection is random, and pictures whose ImageNet classes name their kind (when
    `bridge_knows_kinds`: class k's text is kind k's words, the classifier picks class k for kind-k pictures) or
    are noise. Titles are "<kind> number i"; returns (heads, validation pairs, category queries, their features)."""
    rng = np.random.default_rng(seed)
    heads = bridge_heads(seed=seed)
    words = rng.normal(size=(len(KINDS), 384)).astype(np.float32)  # a "MiniLM feature" per kind word
    kinds = np.arange(n) % len(KINDS)
    img = rng.normal(scale=0.1, size=(n, 48)).astype(np.float32)
    img[np.arange(n), kinds] += 3.0
    with torch.no_grad():
        fc = torch.zeros(1000, 48)
        fc[np.arange(len(KINDS)), np.arange(len(KINDS))] = 5.0 if bridge_knows_kinds else 0.0
        heads.image.fc_w.copy_(fc if bridge_knows_kinds else torch.randn(1000, 48))
        heads.image.fc_b.zero_()
        if bridge_knows_kinds:
            heads.image.class_text[: len(KINDS)] = torch.from_numpy(words)
        torch.nn.init.eye_(heads.text.proj.weight[:, :16])
    txt = words[kinds] + rng.normal(scale=0.3, size=(n, 384)).astype(np.float32)
    part = {"rowids": np.arange(n), "img": img, "txt": txt, "keys": [str(i) for i in range(n)],
            "kinds": [KINDS[k] for k in kinds]}
    queries = adapt_fit.category_queries(part)
    return heads, part, queries, words[[KINDS.index(q) for q, _ in queries]]


def test_the_bridge_weight_and_temperature_are_the_best_of_the_grid_on_the_validation_products():
    heads, part, queries, qf = toy_catalog(bridge_knows_kinds=True)
    scores = {}
    for t in adapt_fit.BRIDGE_TEMPERATURES:
        heads.image.bridge["temperature"] = t
        for w in adapt_fit.BRIDGE_WEIGHTS:
            with torch.no_grad():
                heads.image.bridge_weight.fill_(w)
            scores[w, t] = adapt_fit.score(adapt_fit.figures(heads, part, queries, qf))
    heads.image.bridge["temperature"] = 1.0
    with torch.no_grad():
        heads.image.bridge_weight.fill_(0.4)
    chosen = adapt_fit.choose_bridge_weight(heads, part, queries, qf)
    t = heads.image.bridge["temperature"]
    assert scores[chosen, t] == max(scores.values()) and chosen >= 1.0  # the bridge names the kinds: it gets weight
    assert math.isclose(float(heads.image.bridge_weight.detach()), chosen)

    noise, part, queries, qf = toy_catalog(bridge_knows_kinds=False)
    assert adapt_fit.choose_bridge_weight(noise, part, queries, qf) < chosen  # a bridge that knows nothing: less


def test_a_tie_keeps_the_current_weight():
    heads, part, _, _ = toy_catalog(bridge_knows_kinds=True)
    part = {**part, "img": part["img"][:1], "txt": part["txt"][:1], "rowids": part["rowids"][:1]}
    with torch.no_grad():
        heads.image.bridge_weight.fill_(0.4)
    assert adapt_fit.choose_bridge_weight(heads, part, [], None) == pytest.approx(0.4)  # one pair: every w ties


@pytest.mark.parametrize("temperature", [None, 2.0, 3.0])
def test_the_numpy_heads_of_the_torch_free_query_path_use_the_temperature(tmp_path, temperature):
    from mmtui.encoders.lite import load_heads
    from mmtui.encoders.numpy_heads import NumpyLiteHeads

    save_checkpoint(bridge_heads(temperature=temperature), toy_config(temperature), {}, tmp_path, name="lite")
    _, heads = load_heads(tmp_path / "lite.safetensors")  # the same (fp16-stored) weights on both sides
    mine, _ = NumpyLiteHeads.load(tmp_path / "lite.safetensors")
    z = np.random.default_rng(0).normal(size=(6, 48)).astype(np.float32)
    with torch.no_grad():
        want = heads.image.flat(torch.from_numpy(z)).numpy()
    assert np.allclose(mine.image_flat(z), want, atol=1e-4)
