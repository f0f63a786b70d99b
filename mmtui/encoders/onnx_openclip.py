"""open_clip models without torch at query time, where their parts allow it: the text and image towers exported
to ONNX at build time (as lite's, mmtui.encoders.onnx_export), the tokenizer rebuilt with the `tokenizers` library
from open_clip's own BPE files, the image preprocessing in PIL and numpy. A part that cannot be reproduced (another
tokenizer than CLIP's, a transform other than resize / centre crop / normalise) or whose export disagrees with
torch is not exported: those queries load torch, as before.

Export functions import torch and open_clip inside; the query side needs onnxruntime, tokenizers, ftfy, numpy, PIL.
"""

from __future__ import annotations

import html
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mmtui.encoders import onnx_files
from mmtui.encoders.base import l2_normalize
from mmtui.encoders.onnx_query import MiniLM, TorchFallback, open_session, phrase_vectors_torch
from mmtui.encoders.preprocess import WORD_MAX_TOKENS
from mmtui.errors import ModelError

PART_FILES = {"text": ("text.onnx", "tokenizer.json"), "image": ("image.onnx",),
              "words": ("words.onnx", "words-tokenizer.json")}
CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


# -- export (build time) ---------------------------------------------------------------------------------------------
def export_openclip_for(data_dir: Path, encoder) -> tuple[str | None, Callable[[], dict] | str]:
    """(key, export function) for the build step (mmtui.build.query_model), or (None, why it cannot be exported)."""
    real = getattr(encoder, "loaded", None) or encoder
    if not hasattr(real, "model") or not hasattr(real, "preprocess"):
        return None, "this open_clip model is not loaded"
    parts = {"text": _tokenizer_spec(real.tokenizer) is not None, "image": image_steps(real.preprocess) is not None}
    if not any(parts.values()):
        return None, "neither its tokenizer nor its image preprocessing can run without torch"
    key = onnx_files.openclip_key(real.fingerprint)
    return key, lambda: export_openclip(data_dir, real, key)


def _tokenizer_spec(tokenizer) -> dict | None:
    """open_clip's CLIP BPE tokenizer (lower-casing clean) is reproducible; other tokenizers are not tried."""
    from open_clip.tokenizer import SimpleTokenizer

    if type(tokenizer) is not SimpleTokenizer or getattr(tokenizer.clean_fn, "__name__", "") != "_clean_lower":
        return None
    return {"context_length": int(tokenizer.context_length), "sot": int(tokenizer.sot_token_id),
            "eot": int(tokenizer.eot_token_id)}


def image_steps(preprocess) -> dict | None:
    """The parameters of open_clip's usual transform (Resize(shortest side) -> CenterCrop -> RGB -> ToTensor ->
    Normalize), None for any other."""
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", []))
    names = [type(s).__name__ for s in steps]
    if names != ["Resize", "CenterCrop", "MaybeConvertMode", "MaybeToTensor", "Normalize"]:
        return None
    resize, crop, _, _, norm = steps
    size = resize.size if isinstance(resize.size, int) else (resize.size[0] if len(resize.size) == 1 else None)
    if (size is None or resize.max_size is not None or resize.interpolation != T.InterpolationMode.BICUBIC
            or len(set(crop.size)) != 1 or crop.size[0] > size):
        return None
    return {"resize": int(size), "crop": int(crop.size[0]), "mean": [float(x) for x in norm.mean],
            "std": [float(x) for x in norm.std]}


def _build_tokenizer(path: Path) -> None:
    """CLIP's BPE as a `tokenizers` pipeline, from open_clip's vocabulary and merges (as transformers' CLIP
    converter builds it); the text is cleaned (ftfy, html) in Python first, as open_clip does."""
    import gzip

    from open_clip.tokenizer import SimpleTokenizer, default_bpe
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    simple = SimpleTokenizer()
    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]  # as open_clip
    tok = Tokenizer(models.BPE(vocab=dict(simple.encoder), merges=[tuple(m.split()) for m in merges],
                               continuing_subword_prefix="", end_of_word_suffix="</w>", fuse_unk=False,
                               unk_token="<|endoftext|>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", simple.sot_token_id), ("<|endoftext|>", simple.eot_token_id)])
    tok.save(str(path))


def export_openclip(data_dir: Path, encoder, key: str) -> dict:
    """Export what can be exported of a loaded OpenClipEncoder, check it against torch, write the manifest."""
    import torch

    from mmtui.encoders.onnx_export import (CHECK_TEXTS, _cos_min, _export, _versions, _write_manifest,
                                            check_images, export_minilm)

    target = onnx_files.folder(data_dir, key)
    work = target.with_name(target.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model, started = encoder.model, time.perf_counter()
    text_spec, steps = _tokenizer_spec(encoder.tokenizer), image_steps(encoder.preprocess)
    manifest = {"format": onnx_files.FORMAT, "key": key, "model": encoder.name, "fingerprint": encoder.fingerprint,
                "dim": int(encoder.dim), "image_size": encoder.image_size, "parts": {}, "check": {},
                "versions": _versions()}

    class Text(torch.nn.Module):
        def forward(self, tokens):
            return model.encode_text(tokens)

    class Image(torch.nn.Module):
        def forward(self, pixels):
            return model.encode_image(pixels)

    batch = torch.export.Dim("batch", max=4096)
    try:
        check_texts, files = list(CHECK_TEXTS), []
        if text_spec:
            _build_tokenizer(work / "tokenizer.json")
            tokens = encoder.tokenizer(check_texts[:2])
            _export(Text().eval(), (tokens,), work / "text.onnx", ["tokens"], ["vector"], ({0: batch},))
            files += ["text.onnx", "tokenizer.json"]
            manifest["parts"]["text"] = text_spec
        if steps:
            pixels = torch.stack([encoder.preprocess(im) for im in check_images(steps["crop"])[:2]])
            _export(Image().eval(), (pixels,), work / "image.onnx", ["pixels"], ["vector"], ({0: batch},))
            files.append("image.onnx")
            manifest["parts"]["image"] = steps
        # query understanding's word model (MiniLM): without it a search would load torch for its words
        export_minilm(work / "words.onnx", work / "words-tokenizer.json")
        files += ["words.onnx", "words-tokenizer.json"]
        manifest["parts"]["words"] = {"max_tokens": WORD_MAX_TOKENS}
        query = OnnxOpenClipEncoder(work, manifest, threads=1)
        for part in list(manifest["parts"]):
            if part == "words":
                cos = _cos_min(query.phrase_vectors(check_texts), phrase_vectors_torch(check_texts))
            elif part == "text":
                cos = _cos_min(query.encode_texts(check_texts), encoder.encode_texts(check_texts))
            else:
                cos = _cos_min(query.encode_images(check_images(256)), encoder.encode_images(check_images(256)))
            manifest["check"][f"{part}_cos_min"] = round(cos, 7)
            if part == "text" and any(query.token_ids([t]) != _torch_ids(encoder.tokenizer, t) for t in check_texts):
                cos = -1.0
                manifest["check"]["text_tokens"] = "differ from open_clip's"
            if cos < onnx_files.MIN_COSINE:  # this part stays on torch
                manifest["parts"].pop(part)
                files = [f for f in files if f not in PART_FILES[part]]
        if not manifest["parts"]:
            raise ModelError(f"the ONNX export of {encoder.name} differs from torch ({manifest['check']})",
                             "searches load torch")
        manifest["files"] = {name: onnx_files.file_entry(work / name) for name in files}
        manifest["check"].update(reference="torch, the model as loaded", texts=len(check_texts), images=6,
                                 threshold=onnx_files.MIN_COSINE)
        manifest["seconds"] = round(time.perf_counter() - started, 1)
        manifest["exported_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        _write_manifest(work, manifest)
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _torch_ids(tokenizer, text: str) -> list[int]:
    ids = tokenizer([text])[0].tolist()
    return ids[:ids.index(tokenizer.eot_token_id) + 1] if tokenizer.eot_token_id in ids else ids


# -- query time (no torch) -------------------------------------------------------------------------------------------
def open_openclip_query(settings, store, threads: int, fallback):
    """(OnnxOpenClipEncoder, "") for the index's open_clip model when its export is whole, else (None, why)."""
    built = store.get_meta("base_fingerprint")
    if not built:
        return None, ""
    key = onnx_files.openclip_key(built)
    manifest, why = onnx_files.usable(settings.data_dir, key)
    if manifest is None:
        return None, f"the ONNX query model is {why} (`mmtui build-index CATALOG` makes it)"
    encoder = OnnxOpenClipEncoder(onnx_files.folder(settings.data_dir, key), manifest, threads, fallback)
    encoder.name = store.get_meta("base_model") or manifest.get("model", "openclip")
    return encoder, ""


class OnnxOpenClipEncoder(TorchFallback):
    """The exported parts of an open_clip model; a part that was not exported runs on the torch model."""

    def __init__(self, folder: Path, manifest: dict, threads: int = 1, fallback: Callable[[], object] | None = None):
        self.folder, self.manifest, self.threads = Path(folder), manifest, max(1, int(threads))
        self.parts = manifest.get("parts", {})
        self.name = manifest.get("model", "openclip")
        self.fingerprint = manifest.get("fingerprint")
        self.dim = int(manifest["dim"])
        self.image_size = manifest.get("image_size")
        self.notes: list[str] = []
        self._fallback, self._tok = fallback, None
        self._sessions: dict = {}
        self._lock = threading.Lock()
        self.words = (MiniLM(self.folder / "words.onnx", self.folder / "words-tokenizer.json", self.threads)
                      if "words" in self.parts else None)

    def phrase_vectors(self, phrases: Sequence[str], batch: int = 512) -> np.ndarray:
        """Query understanding's word vectors (mmtui.encoders.words) from the exported MiniLM, else torch's."""
        if self.words is None:
            return phrase_vectors_torch(phrases, batch)
        return self._guarded(lambda: self.words.phrase_vectors(phrases), lambda: phrase_vectors_torch(phrases, batch))

    def _session(self, name: str):
        with self._lock:
            if name not in self._sessions:
                self._sessions[name] = open_session(self.folder / name, self.threads)
            return self._sessions[name]

    def token_ids(self, texts: Sequence[str]) -> list[int] | list[list[int]]:
        """CLIP token ids of `texts` (open_clip's cleaning: ftfy, html entities, whitespace, lower case)."""
        import ftfy

        with self._lock:
            if self._tok is None:
                from tokenizers import Tokenizer

                self._tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        cleaned = [html.unescape(html.unescape(ftfy.fix_text(str(t)))).strip() for t in texts]
        ids = [e.ids for e in self._tok.encode_batch(cleaned)]
        return ids[0] if len(ids) == 1 else ids

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), np.float32)
        spec = self.parts.get("text")
        if spec is None:  # not exported: this side runs on the torch model
            return self._torch_model().encode_texts(texts)
        return self._guarded(lambda: self._encode_texts(texts, spec), lambda: self._torch_model().encode_texts(texts))

    def _encode_texts(self, texts: Sequence[str], spec: dict) -> np.ndarray:
        n = spec["context_length"]
        tokens = np.zeros((len(texts), n), np.int64)
        for i, text in enumerate(texts):
            ids = self.token_ids([text])
            if len(ids) > n:  # as open_clip truncates: the end-of-text token kept last
                ids = ids[:n - 1] + [spec["eot"]]
            tokens[i, :len(ids)] = ids
        return l2_normalize(self._session("text.onnx").run(["vector"], {"tokens": tokens})[0])

    def preprocess(self, image) -> np.ndarray:
        """open_clip's Resize (shortest side, bicubic) -> CenterCrop -> RGB -> ToTensor -> Normalize, with PIL
        and numpy (torchvision resizes PIL images with PIL: the same pixels)."""
        from PIL import Image

        steps = self.parts["image"]
        w, h = image.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = steps["resize"], int(steps["resize"] * long / short)
        size = (new_short, new_long) if w <= h else (new_long, new_short)
        if size != (w, h):
            image = image.resize(size, Image.BICUBIC)
        c = steps["crop"]
        top, left = int(round((size[1] - c) / 2.0)), int(round((size[0] - c) / 2.0))
        image = image.crop((left, top, left + c, top + c)).convert("RGB")
        x = np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0
        return (x - np.asarray(steps["mean"], np.float32)[:, None, None]) / np.asarray(steps["std"], np.float32)[:, None, None]

    def encode_images(self, images: Sequence) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        if "image" not in self.parts:
            return self._torch_model().encode_images(images)

        def onnx() -> np.ndarray:
            pixels = np.stack([self.preprocess(im) for im in images]).astype(np.float32)
            return l2_normalize(self._session("image.onnx").run(["vector"], {"pixels": pixels})[0])

        return self._guarded(onnx, lambda: self._torch_model().encode_images(images))
