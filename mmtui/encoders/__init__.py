"""Model registry: a model spec string -> an Encoder.

Specs: "lite" (default, offline, packaged towers + trained heads), "openclip:ARCH/PRETRAINED" or
"openclip:ARCH" with a checkpoint file, and "fake" (tests only). torch is imported only when a real
model is loaded.
"""

from __future__ import annotations

from pathlib import Path

from mmtui.errors import ModelError
from mmtui.encoders.base import Encoder, FakeEncoder, l2_normalize

__all__ = ["Encoder", "FakeEncoder", "l2_normalize", "load_encoder", "pick_device"]


def pick_device(requested: str | None = None) -> str:
    """CUDA when available (or when asked for), else CPU."""
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"device {requested!r} was requested but CUDA is not available",
                             "drop --device (or MMTUI_DEVICE) to run on the CPU")
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


class LazyEncoder:
    """An Encoder whose fingerprint is known before its weights load: a build with nothing to encode never
    pays for loading the model. The real encoder loads on the first encode call and must agree."""

    def __init__(self, name: str, fingerprint: str, dim: int, load, feature_fingerprint: str | None = None) -> None:
        self.name, self.fingerprint, self.dim = name, fingerprint, dim
        self.feature_fingerprint = feature_fingerprint  # see mmtui.encoders.lite.feature_fingerprint_of
        self._load = load
        self._encoder: Encoder | None = None

    def _real(self) -> Encoder:
        if self._encoder is None:
            encoder = self._load()
            if encoder.fingerprint != self.fingerprint:
                raise ModelError(f"model {self.name} changed while loading", "run the command again")
            self._encoder = encoder
        return self._encoder

    @property
    def image_size(self) -> int | None:
        return self._real().image_size

    def encode_texts(self, texts):
        return self._real().encode_texts(texts)

    def encode_images(self, images):
        return self._real().encode_images(images)

    def encode_texts_with_features(self, texts):
        return self._real().encode_texts_with_features(texts)

    def encode_images_with_features(self, images):
        return self._real().encode_images_with_features(images)

    @property
    def loaded(self) -> Encoder | None:
        return self._encoder

    def with_heads(self, weights: Path) -> Encoder:
        """This model with other heads over the same towers (see LiteEncoder.with_heads); still lazy if not loaded."""
        if self._encoder is not None:
            other = self._encoder.with_heads(weights)
            other.name = self.name
            return other
        other = lazy_encoder(f"lite:{weights}")
        other.name = self.name
        other.weights_path = Path(weights)
        return other


def lite_weights(spec: str) -> Path | None:
    """The heads file of a lite spec ("lite": the shipped one; "lite:PATH"), None for other models."""
    spec = (spec or "lite").strip()
    if spec == "lite":
        return Path(__file__).resolve().parent / "weights" / "lite.safetensors"
    if spec.startswith("lite:"):
        return Path(spec.split(":", 1)[1]).expanduser()
    return None


def lazy_encoder(spec: str, checkpoint: Path | None = None, device: str | None = None) -> Encoder:
    """load_encoder, deferred where the fingerprint can be read without loading the model (lite)."""
    spec = (spec or "lite").strip()
    if spec == "lite" or spec.startswith("lite:"):
        from mmtui.encoders.lite import LiteEncoder

        resolved = pick_device(device)
        fingerprint, dim, features = LiteEncoder.fingerprint_for(spec, resolved)
        return LazyEncoder(spec, fingerprint, dim, lambda: load_encoder(spec, checkpoint, resolved), features)
    return load_encoder(spec, checkpoint=checkpoint, device=device)


def load_encoder(spec: str, checkpoint: Path | None = None, device: str | None = None) -> Encoder:
    spec = (spec or "lite").strip()
    if spec == "fake":
        return FakeEncoder()
    if spec == "lite" or spec.startswith("lite:"):
        from mmtui.encoders.lite import LiteEncoder

        return LiteEncoder.load(spec, device=pick_device(device))
    if spec.startswith("openclip:"):
        from mmtui.encoders.openclip import OpenClipEncoder

        return OpenClipEncoder.load(spec, checkpoint=checkpoint, device=pick_device(device))
    raise ModelError(
        f"unknown model {spec!r}",
        "use 'lite' (the offline default) or 'openclip:ARCH/PRETRAINED', e.g. openclip:ViT-B-32/laion2b_s34b_b79k",
    )
