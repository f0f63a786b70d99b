"""The last step of build-index: the index's query-time model exported to ONNX (mmtui.encoders.onnx_export), so a
search needs no torch. Skipped when the export is there and whole; made again when it is missing, truncated or
changed. Heads the export has not served yet (adapted to the catalog, a promoted lite checkpoint) are checked against
torch on the catalog's own titles and pictures. A failed export or check never fails the build: searches then load
torch, with a note."""

from __future__ import annotations

import time
from typing import Callable

from mmtui.config import Settings
from mmtui.encoders import onnx_files
from mmtui.encoders.base import Encoder
from mmtui.encoders.query_encoder import onnx_wanted
from mmtui.errors import MmtuiError
from mmtui.progress import ProgressCallback, ProgressEvent, null_progress


def export_query_model(settings: Settings, encoder: Encoder, progress: ProgressCallback | None = None) -> dict:
    """{"status": "present" | "exported" | "failed" | "torch" | "off", ...} for the build report."""
    progress = progress or null_progress
    if not onnx_wanted():
        return {"status": "off", "why": "MMTUI_ONNX is off"}
    key, export = plan(settings, encoder, progress)
    if key is None:  # the model cannot be exported: `export` says why
        return {"status": "torch", "why": export}
    manifest, why = onnx_files.usable(settings.data_dir, key, full=True)
    if manifest is not None:
        onnx_files.remove_others(settings.data_dir, key)
        return {"status": "present", "key": key, **_heads_checked(settings, encoder, key, progress)}
    progress(ProgressEvent("query-models", 0, 1, f"query model {why}: exporting it to ONNX (once)"))
    started = time.perf_counter()
    try:
        manifest = export()
    except MmtuiError as exc:
        return {"status": "failed", "key": key, "why": exc.message}
    except Exception as exc:  # noqa: BLE001 - the exporter raises many kinds; the build's index is done and stays
        return {"status": "failed", "key": key, "why": f"{type(exc).__name__}: {str(exc)[:300]}"}
    onnx_files.remove_others(settings.data_dir, key)
    progress(ProgressEvent("query-models", 1, 1, "query model exported"))
    return {"status": "exported", "key": key, "seconds": round(time.perf_counter() - started, 1),
            "check": manifest.get("check", {})}


def plan(settings: Settings, encoder: Encoder,
         progress: ProgressCallback | None = None) -> tuple[str | None, Callable[[], dict] | str]:
    """(the export's key, a function that makes it) for this encoder, or (None, why it has no export)."""
    name = encoder.name or ""
    if name == "lite" or name.startswith("lite:"):
        from mmtui.encoders import lite_weights
        from mmtui.encoders.lite_config import features_only, read_config
        from mmtui.encoders.onnx_export import export_lite

        weights = getattr(encoder, "weights_path", None) or lite_weights(name)
        config, _ = read_config(weights)
        if not features_only(config):
            return None, "heads with fine-tuned tower layers are not exported"
        return onnx_files.lite_key(config), lambda: export_lite(settings.data_dir, weights, progress,
                                                                catalog_sample(settings))
    if name.startswith("openclip:"):
        from mmtui.encoders.onnx_openclip import export_openclip_for

        return export_openclip_for(settings.data_dir, encoder)
    return None, f"model {name!r} has no ONNX export"


def _heads_checked(settings: Settings, encoder: Encoder, key: str, progress: ProgressCallback) -> dict:
    """{} when the export serves these heads already (or the model has no separate heads), else the new check's
    {"heads_check": "passed" | "failed", ...}."""
    if not key.startswith("lite-"):
        return {}
    from mmtui.encoders import lite_weights
    from mmtui.encoders.onnx_export import check_heads, heads_sha256

    weights = getattr(encoder, "weights_path", None) or lite_weights(encoder.name)
    folder = onnx_files.folder(settings.data_dir, key)
    record = onnx_files.heads_check(folder, heads_sha256(weights))
    if record is not None:  # checked by an earlier build: the outcome stands (the export and the heads are the same)
        return {} if record.get("passed") else {"heads_check": "failed", "why": record.get("why")}
    progress(ProgressEvent("query-models", 0, None, "checking the query model with the new heads against torch"))
    try:
        record = check_heads(folder, weights, catalog_sample(settings))
    except MmtuiError as exc:
        return {"heads_check": "failed", "why": exc.message}
    except Exception as exc:  # noqa: BLE001 - as the export: the build's index is done and stays
        return {"heads_check": "failed", "why": f"{type(exc).__name__}: {str(exc)[:300]}"}
    out = {"heads_check": "passed" if record["passed"] else "failed", "check": record["check"]}
    return out if record["passed"] else {**out, "why": record["why"]}


def catalog_sample(settings: Settings, texts: int = 48, images: int = 8) -> tuple[list[str], list]:
    """Titles and decoded pictures of the catalog (a fixed spread of it) for the check against torch."""
    from mmtui.catalog.images import load_image
    from mmtui.store.db import Store

    store = Store.open(settings.db_path)
    try:
        rows = store.db.execute("SELECT title, image_path, image_status FROM products ORDER BY title_sha "
                                "LIMIT ?", [max(texts, images * 4)]).fetchall()
    finally:
        store.close()
    pictures = []
    for _, path, status in rows:
        if status == "ok" and path and len(pictures) < images:
            try:
                pictures.append(load_image(path, 260))
            except MmtuiError:  # a picture that no longer reads is simply not in the sample
                continue
    return [r[0] for r in rows[:texts]], pictures
