"""The lite encoder's fast text path (towers.FastTextTower) gives the vectors of the plain transformers path."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from mmtui.encoders import towers  # noqa: E402
from mmtui.encoders.lite import LiteEncoder  # noqa: E402

LONG = " ".join(f"word{i} blue cotton shirt" for i in range(120))  # ~600 tokens, far above the limit
TEXTS = ["navy blue running shoes", "", "x", "Café crème T-shirt für Männer — 100% coton 👕 ñandú",
         "日本製 デニム ジャケット", LONG, "  Puma  Men  Black  Sports  Shoes  "]


@pytest.fixture(scope="module")
def lite():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield LiteEncoder.load("lite", device="cpu")
    torch.set_num_threads(before)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_fast_path_is_used_and_gives_the_plain_vectors(lite: LiteEncoder) -> None:
    one_by_one = np.concatenate([lite.encode_texts([t]) for t in TEXTS])
    assert isinstance(lite._fast_text, towers.FastTextTower)  # the probe accepted it: not the silent fallback
    plain = np.concatenate([lite.encode_texts_plain([t]) for t in TEXTS])
    assert one_by_one.shape == (len(TEXTS), lite.dim) and one_by_one.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(one_by_one, axis=1), 1.0, atol=1e-5)
    assert _cos(one_by_one, plain).min() >= 0.9999
    batched = lite.encode_texts(TEXTS)  # padded batch: the attention mask matters
    assert _cos(batched, plain).min() >= 0.9999


def test_long_texts_are_truncated_like_the_plain_path(lite: LiteEncoder) -> None:
    assert len(lite.tokenizer(LONG)["input_ids"]) > 256
    a, b = lite.encode_texts([LONG, LONG + " red leather handbag"])
    assert float(a @ b) > 0.99999  # the extra words fall beyond the token limit
    assert float(a @ lite.encode_texts_plain([LONG])[0]) >= 0.9999


def test_many_texts_are_length_sorted_but_returned_in_order(lite: LiteEncoder) -> None:
    texts = [("long " * (i % 13)) + f"item {i} " + ("shirt" if i % 2 else "shoe") for i in range(70)]
    fast = lite.encode_texts(texts)
    plain = lite.encode_texts_plain(texts)
    assert _cos(fast, plain).min() >= 0.9999
    assert list((fast @ plain.T).argmax(axis=1)) == list(range(70))


def test_light_loader_matches_transformers(lite: LiteEncoder) -> None:
    """Query encoding reads MiniLM without transformers: the same token ids and the same hidden states."""
    import torch

    assert lite._light_text is not None  # the shipped model loads the light way on the CPU
    hf_tokenizer, bert = towers.load_text_tower("cpu")
    light_tokenizer, light_model = towers.load_text_tower_light()
    for texts in (TEXTS, [TEXTS[0]], [LONG, ""]):
        want, got = towers.tokenize(hf_tokenizer, texts), towers.tokenize(light_tokenizer, texts)
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert torch.equal(want[key], got[key]), key
    assert light_tokenizer(LONG)["input_ids"] == hf_tokenizer(LONG)["input_ids"]  # no truncation unless asked
    batch = towers.tokenize(hf_tokenizer, TEXTS)
    with torch.inference_mode():
        want = towers.FastTextTower(bert)(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        got = towers.FastTextTower(light_model)(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert torch.equal(want, got)
