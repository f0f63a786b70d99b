"""Any open_clip model (CLIP, SigLIP, MobileCLIP) as an Encoder.

Spec: "openclip:ARCH/PRETRAINED" (weights fetched by open_clip where there is network) or
"openclip:ARCH" with checkpoint=FILE (a local weights file: offline). Extra architectures can be
registered from a folder of JSON configs with MMTUI_OPENCLIP_CONFIGS (the tests register a tiny one).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from mmtui.errors import ModelError
from mmtui.encoders.base import fingerprint_of, l2_normalize

PREPROCESS_VERSION = 1


def register_configs(folder: str | os.PathLike | None = None) -> None:
    import open_clip

    folder = folder or os.environ.get("MMTUI_OPENCLIP_CONFIGS")
    if folder:
        open_clip.add_model_config(str(folder))


def file_digest(path: Path) -> str:
    """A cheap, content-based digest of a (possibly large) weights file: size + first and last MiB."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return h.hexdigest()[:16]


class OpenClipEncoder:
    def __init__(self, name: str, model, preprocess, tokenizer, device: str, fingerprint: str, dim: int,
                 batch_size: int = 64) -> None:
        self.name = name
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.fingerprint = fingerprint
        self.dim = dim
        self.batch_size = batch_size
        size = getattr(getattr(model, "visual", None), "image_size", None)
        self.image_size = int(max(size)) if isinstance(size, (tuple, list)) else (int(size) if size else None)

    @classmethod
    def load(cls, spec: str, checkpoint: Path | None = None, device: str = "cpu") -> "OpenClipEncoder":
        import open_clip

        register_configs()
        arch, _, pretrained = spec.removeprefix("openclip:").partition("/")
        if not arch:
            raise ModelError(f"no architecture in {spec!r}", "write openclip:ARCH/PRETRAINED, e.g. "
                             "openclip:ViT-B-32/laion2b_s34b_b79k, or openclip:ARCH with --checkpoint FILE")
        if arch not in open_clip.list_models():
            raise ModelError(f"open_clip has no architecture {arch!r}",
                             "see open_clip.list_models() for the names, e.g. ViT-B-32, ViT-B-16-SigLIP")
        if checkpoint is not None:
            checkpoint = Path(checkpoint)
            if not checkpoint.is_file():
                raise ModelError(f"checkpoint file {checkpoint} does not exist", "give the path of a weights file")
            weights: str | None = str(checkpoint)
            source = f"file:{file_digest(checkpoint)}"
        else:
            weights = pretrained or None
            source = f"pretrained:{pretrained}" if pretrained else "random-init"
        if weights is None:
            torch.manual_seed(0)  # a random-init model must give the same vectors every time it loads
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=weights, device=device)
        except Exception as exc:  # network failure, bad file, unknown tag
            raise ModelError(f"cannot load open_clip model {arch} ({source}): {exc}",
                             "without network, download the weights elsewhere and pass --checkpoint FILE") from exc
        model.eval()
        tokenizer = open_clip.get_tokenizer(arch)
        with torch.inference_mode():
            dim = int(model.encode_text(tokenizer(["x"]).to(device)).shape[-1])
        name = spec if checkpoint is None else f"openclip:{arch}"
        fingerprint = fingerprint_of("openclip", arch, source, PREPROCESS_VERSION)
        return cls(name, model, preprocess, tokenizer, device, fingerprint, dim)

    def _autocast(self):
        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return torch.autocast("cpu", enabled=False)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer([str(t) for t in texts[i:i + self.batch_size]]).to(self.device)
                out.append(encode_text_trimmed(self.model, tokens).float().cpu().numpy())
        return l2_normalize(np.concatenate(out) if out else np.zeros((0, self.dim), np.float32))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = []
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(images), self.batch_size):
                batch = torch.stack([self.preprocess(img.convert("RGB")) for img in images[i:i + self.batch_size]])
                out.append(self.model.encode_image(batch.to(self.device)).float().cpu().numpy())
        return l2_normalize(np.concatenate(out) if out else np.zeros((0, self.dim), np.float32))


def can_trim(model) -> bool:
    """Causal CLIP text towers pooled at the end-of-text token ignore every position after it."""
    return (getattr(model, "attn_mask", None) is not None and hasattr(model, "token_embedding")
            and getattr(model, "text_pool_type", None) in ("argmax", "eos"))


def encode_text_trimmed(model, tokens: torch.Tensor) -> torch.Tensor:
    """model.encode_text(tokens), computed only up to the batch's last end-of-text token.

    With a causal mask the pooled output at the end-of-text position does not depend on the padding after
    it, so the result is the same (up to float rounding) at a fraction of the work for short queries.
    Other towers (SigLIP, MobileCLIP, HF text towers) go through the model's own encode_text.
    """
    from open_clip.transformer import text_global_pool

    if not can_trim(model):
        return model.encode_text(tokens)
    if model.text_pool_type == "argmax":
        last = int(tokens.argmax(dim=-1).max()) + 1
    else:
        eos = getattr(model, "text_eos_id", None)
        found = (tokens == eos).nonzero() if eos is not None else torch.zeros(0)
        if len(found) == 0:
            return model.encode_text(tokens)
        last = int(found[:, 1].max()) + 1
    tokens = tokens[:, :last]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:last].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:last, :last])
    x = model.ln_final(x)
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if model.text_projection is not None:
        x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
    return x
