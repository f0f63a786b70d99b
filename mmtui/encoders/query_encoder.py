"""The encoder a search uses for its queries: the torch-free one (ONNX Runtime towers + numpy heads) when the
index's model was exported by build-index and the export is whole, else the torch model as before, with a
one-line note saying why (`mmtui search` prints it on stderr).

MMTUI_ONNX=0 (or off) always uses torch. A model on a GPU (--device cuda) and lite heads with fine-tuned tower
layers use torch too: their exports do not exist.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mmtui.encoders import onnx_files
from mmtui.encoders.for_index import adapted_weights, model_spec, open_encoder
from mmtui.errors import ModelError

if TYPE_CHECKING:
    from mmtui.config import Settings
    from mmtui.store.db import Store


def onnx_wanted() -> bool:
    return os.environ.get("MMTUI_ONNX", "").strip().lower() not in ("0", "off", "no", "false")


def open_query_encoder(settings: Settings, store: Store, threads: int = 1):
    """(encoder, note): the note ("" when none) says why queries load torch instead of the exported model."""
    encoder, note = exported_query_encoder(settings, store, threads)
    return (encoder, note) if encoder is not None else (open_encoder(settings, store), note)


def exported_query_encoder(settings: Settings, store: Store, threads: int = 1):
    """(the torch-free encoder of the index's model, "") when its export is usable, else (None, the note saying
    why queries load torch; "" when that needs no saying). Cheap: sessions open on first use."""
    if not onnx_wanted() or (settings.device or "cpu") != "cpu":
        return None, ""
    spec = model_spec(settings, store)
    fallback = lambda: open_encoder(settings, store)  # noqa: E731 - if a file turns out unusable later
    try:
        if spec == "lite" or spec.startswith("lite:"):
            encoder, why = _lite(settings, store, spec, threads, fallback)
        elif spec.startswith("openclip:"):
            from mmtui.encoders.onnx_openclip import open_openclip_query

            encoder, why = open_openclip_query(settings, store, threads, fallback)
        else:
            return None, ""
    except ModelError as exc:
        encoder, why = None, exc.message
    return encoder, "" if encoder is not None or not why else f"queries use torch: {why}"


def _lite(settings, store, spec: str, threads: int, fallback):
    from mmtui.encoders import lite_weights
    from mmtui.encoders.lite_config import features_only, read_config
    from mmtui.encoders.onnx_query import OnnxLiteEncoder

    weights = adapted_weights(settings, store, spec) or lite_weights(spec)
    config, _ = read_config(weights)
    if not features_only(config):
        return None, "this model's heads have fine-tuned tower layers (no ONNX export)"
    key = onnx_files.lite_key(config)
    manifest, why = onnx_files.usable(settings.data_dir, key)
    if manifest is None:
        return None, f"the ONNX query model is {why} (`mmtui build-index CATALOG` makes it)"
    folder = onnx_files.folder(settings.data_dir, key)
    encoder = OnnxLiteEncoder.open(folder, weights, manifest, threads, fallback)
    check = onnx_files.heads_check(folder, encoder.heads_digest)
    if check is None:
        return None, "the ONNX query model was not checked against torch with these heads (`mmtui build-index " \
                     "CATALOG` checks it)"
    if not check.get("passed"):
        return None, f"the ONNX query model failed its check against torch with these heads ({check.get('why')})"
    built = store.get_meta("base_fingerprint")
    if built not in encoder.fingerprints:
        return None, ""  # another model than the index's: the torch path raises the usual mismatch error
    encoder.fingerprint = built
    encoder.name = spec
    return encoder, ""
