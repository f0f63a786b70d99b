"""The lite model at query time without torch: its towers in ONNX Runtime (exported and checked by
mmtui.encoders.onnx_export), its heads in numpy (mmtui.encoders.numpy_heads), its preprocessing in numpy and PIL.

A one-off `mmtui search` imports onnxruntime, tokenizers and numpy instead of torch (~0.4 s of CPU instead of
~3.5 s: benchmarks/results/speed.md, cold start). Sessions open on first use: a text search never reads the image
graph. When a session cannot open (a file damaged since the build), the encoder says so in `notes` and carries on
with the torch model (`fallback`).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mmtui.encoders import onnx_files
from mmtui.encoders.lite_config import lite_fingerprint
from mmtui.encoders.numpy_heads import NumpyLiteHeads
from mmtui.encoders.preprocess import TEXT_MAX_TOKENS, WORD_MAX_TOKENS, colour_features, images_to_array
from mmtui.errors import ModelError

TEXT_BATCH = 64


def open_session(path: Path, threads: int):
    """An ONNX Runtime session on the CPU with `threads` intra-op threads (fixed for its life); ModelError when the
    file cannot be loaded."""
    from mmtui.encoders.ort import load

    ort = load()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no warnings on a user's terminal
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for missing or damaged files
        raise ModelError(f"the query model {path} cannot be loaded ({str(exc)[:200]})",
                         "run `mmtui build-index CATALOG` to export it again") from exc


def phrase_vectors_torch(phrases: Sequence[str], batch: int = 512) -> np.ndarray:
    from mmtui.encoders.words import phrase_vectors_torch as torch_fn

    return torch_fn(phrases, batch)


class MiniLM:
    """The exported MiniLM (token ids -> mean-pooled states): the lite text tower and query understanding's word
    model at once. Session and tokenizers open on first use."""

    def __init__(self, path: Path, tokenizer: Path, threads: int = 1) -> None:
        self.path, self.tokenizer_path, self.threads = Path(path), Path(tokenizer), threads
        self._session = None
        self._tokenizers: dict[int, object] = {}
        self._lock = threading.Lock()

    def _parts(self, max_tokens: int):
        with self._lock:
            if self._session is None:
                self._session = open_session(self.path, self.threads)
            tok = self._tokenizers.get(max_tokens)
            if tok is None:  # one per length: truncation is state of the tokenizer, and threads share the model
                from tokenizers import Tokenizer

                try:
                    tok = Tokenizer.from_file(str(self.tokenizer_path))
                except Exception as exc:  # missing or damaged file: tokenizers raises its own error type
                    raise ModelError(f"the tokenizer {self.tokenizer_path} cannot be read ({str(exc)[:200]})",
                                     "run `mmtui build-index CATALOG` to export it again") from exc
                tok.no_padding()
                tok.enable_truncation(max_length=max_tokens)
                self._tokenizers[max_tokens] = tok
            return self._session, tok

    def pooled(self, texts: Sequence[str], max_tokens: int = TEXT_MAX_TOKENS) -> np.ndarray:
        """Mean-pooled MiniLM states (n, 384) of `texts` truncated to `max_tokens` tokens."""
        session, tok = self._parts(max_tokens)
        out = []
        for start in range(0, len(texts), TEXT_BATCH):
            encodings = tok.encode_batch([str(t) for t in texts[start:start + TEXT_BATCH]])
            width = max(len(e.ids) for e in encodings)
            ids = np.zeros((len(encodings), width), np.int64)
            types, mask = np.zeros_like(ids), np.zeros_like(ids)
            for i, e in enumerate(encodings):
                ids[i, :len(e.ids)], types[i, :len(e.ids)], mask[i, :len(e.ids)] = e.ids, e.type_ids, 1
            out.append(session.run(["pooled"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0])
        return np.concatenate(out).astype(np.float32)

    def phrase_vectors(self, phrases: Sequence[str]) -> np.ndarray:
        """mmtui.encoders.words.phrase_vectors: L2-normalised (n, 384) of the lower-cased phrases, 12 tokens."""
        if not len(phrases):
            return np.zeros((0, 384), np.float32)
        out = self.pooled([str(p).lower() for p in phrases], WORD_MAX_TOKENS)
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


class TorchFallback:
    """An exported model that carries on with the torch model when a file cannot be used (said once in `notes`)."""

    _fallback: Callable[[], object] | None = None
    _torch = None
    _failed = False  # an exported file could not be used: torch from then on

    def _torch_model(self):
        if self._torch is None:
            if self._fallback is None:
                raise ModelError(f"the query model in {self.folder} cannot be used and there is no torch fallback",
                                 "run `mmtui build-index CATALOG` to export it again")
            self._torch = self._fallback()
        return self._torch

    def _guarded(self, onnx_fn, torch_fn):
        if not self._failed:
            try:
                return onnx_fn()
            except ModelError as exc:
                if self._fallback is None:
                    raise
                self._failed = True
                self.notes.append(f"{exc.message}: searching with torch")
        return torch_fn()


class OnnxLiteEncoder(TorchFallback):
    """Encoder (texts and images -> search vectors) + phrase_vectors (query understanding's word vectors)."""

    word_vectors = True  # a sentence model is behind it: query understanding matches words by meaning

    def __init__(self, folder: Path, heads: NumpyLiteHeads, weights_sha: str, manifest: dict, threads: int = 1,
                 fallback: Callable[[], object] | None = None) -> None:
        self.folder = Path(folder)
        self.heads = heads
        self.dim = heads.dim
        self.image_size = int(manifest["image_size"])
        self.image_outputs = list(manifest["image_outputs"])
        unknown = sorted(set(heads.pooled) - set(self.image_outputs) - {"colour"})
        if unknown:
            raise ModelError(f"these heads read image features the exported tower does not compute ({unknown})",
                             "searches load torch for this model")
        self.threads = max(1, int(threads))
        self.name = "lite"
        # the fingerprints this encoder's vectors can stand for: the model's with the image tower in fp32 or in bf16
        # (fp32 is the exact function the bf16 build approximates; benchmarks/results/cold-start.md)
        self.fingerprints = {lite_fingerprint(heads.config, weights_sha, bf16) for bf16 in (False, True)}
        self.fingerprint = lite_fingerprint(heads.config, weights_sha, False)
        self.notes: list[str] = []
        self._fallback = fallback
        self._sessions: dict[str, object] = {}
        self._lock = threading.Lock()
        self.minilm = MiniLM(self.folder / "text.onnx", self.folder / "tokenizer.json", self.threads)

    @classmethod
    def open(cls, folder: Path, weights: Path, manifest: dict, threads: int = 1,
             fallback: Callable[[], object] | None = None) -> "OnnxLiteEncoder":
        heads, raw = NumpyLiteHeads.load(weights)
        sha = hashlib.sha256(raw).hexdigest()
        encoder = cls(folder, heads, sha, manifest, threads, fallback)
        encoder.weights_path, encoder.heads_digest = Path(weights), onnx_files.heads_digest(heads.config, raw)
        return encoder

    # -- sessions ------------------------------------------------------------------------------------------------
    def _session(self, name: str):
        with self._lock:
            if name not in self._sessions:
                self._sessions[name] = open_session(self.folder / name, self.threads)
            return self._sessions[name]

    # -- texts ---------------------------------------------------------------------------------------------------
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not len(texts):
            return np.zeros((0, self.dim), np.float32)
        return self._guarded(lambda: self.heads.text(self.minilm.pooled(texts)),
                             lambda: self._torch_model().encode_texts(texts))

    def phrase_vectors(self, phrases: Sequence[str], batch: int = 512) -> np.ndarray:
        """mmtui.encoders.words.phrase_vectors without torch: L2-normalised (n, 384), lower-cased, 12 tokens."""
        return self._guarded(lambda: self.minilm.phrase_vectors(phrases), lambda: phrase_vectors_torch(phrases, batch))

    # -- images --------------------------------------------------------------------------------------------------
    def image_features(self, images: Sequence) -> dict[str, np.ndarray]:
        """The pooled tower features and colour statistics the image head reads, by name."""
        pixels = images_to_array(images, self.image_size)
        outputs = self._session("image.onnx").run(self.image_outputs, {"pixels": pixels})
        features = dict(zip(self.image_outputs, outputs))
        features["colour"] = colour_features(pixels)
        return features

    def encode_images(self, images: Sequence) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self.dim), np.float32)
        return self._guarded(lambda: self.heads.image(self.image_features(images)),
                             lambda: self._torch_model().encode_images(images))
