"""Which model is active, and when a new checkpoint may replace it.

A new checkpoint becomes active only if its validation R@10 beats the active model's (`force` overrides).
The choice is recorded in store meta ("active_model", "active_model_since", "model_history"), and the ANN
indexes are rebuilt from cached vectors through the new projector (mmtui.index.writer.reindex: nothing is encoded).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Callable

from mmtui.index.writer import reindex as rebuild_ann
from mmtui.config import Settings
from mmtui.errors import IndexMismatchError, MmtuiError, TrainingError
from mmtui.store.db import Store
from mmtui.encoders.checkpoints import list_checkpoints, load_checkpoint, now_iso
from mmtui.train.data import PairedData, base_fingerprint, load_pairs, paired_r10
from mmtui.encoders.projector import BASE, load_projector
from mmtui.store.datadir import writes

ACTIVE_KEY = "active_model"
Reindex = Callable[[Settings], None]
# what a promoted fine-tuned encoder must redo (mmtui.build.reencode.reindex_for): (settings, name, store) -> Reindex
EncodeAgain = Callable[..., "Reindex | bool"]


@dataclass
class Promotion:
    name: str
    promoted: bool
    val_r10: float
    previous: str  # the model that was active before
    previous_val_r10: float | None
    forced: bool = False
    needs_rebuild: bool = False  # a fine-tuned encoder: images must be encoded again (build-index)
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def active_name(store: Store) -> str:
    return store.get_meta(ACTIVE_KEY) or BASE


def val_r10_of(settings: Settings, store: Store, name: str, data: PairedData | None = None) -> float | None:
    """Validation R@10 (titles vs images, exact) of a model: recomputed from the cache when it applies to it,
    else the figure saved in the checkpoint's metrics.json (None when unknown)."""
    if data is None:
        data = load_pairs(store, base_fingerprint(settings, store))
    if name == BASE:
        return paired_r10(data.val.query, data.val.image)
    ckpt = load_checkpoint(settings.checkpoints_dir, name)
    if ckpt.config.get("head") and ckpt.config.get("base_fingerprint") == data.fingerprint:
        proj = load_projector(settings, name)
        return paired_r10(proj.text(data.val.query), proj.image(data.val.image))
    value = ckpt.metrics.get("val_r10")
    return float(value) if value is not None else None


@writes("promote")
def promote(settings: Settings, name: str, val_r10: float, *, force: bool = False, store: Store | None = None,
            data: PairedData | None = None, previous_val_r10: float | None = None,
            reindex: bool | Reindex = True) -> Promotion:
    """Make checkpoint `name` active if val_r10 beats the active model's validation R@10 (or if force).

    previous_val_r10: the active model's figure when the caller measured it (fine-tuning does, on images);
    else it is recomputed from the cache (base, heads) or read from the active checkpoint's metrics.
    """
    store = store or Store.open(settings.db_path)
    previous = active_name(store)
    previous_r10 = previous_val_r10
    if previous_r10 is None:
        try:
            previous_r10 = val_r10_of(settings, store, previous, data)
        except MmtuiError:  # no cached vectors, or the active checkpoint was deleted: anything beats it
            previous_r10 = None
    better = previous_r10 is None or val_r10 > previous_r10
    if not (better or force):
        return Promotion(name, False, val_r10, previous, previous_r10, reason=(
            f"validation R@10 {val_r10:.4f} does not beat {previous} ({previous_r10:.4f}); "
            f"`mmtui use {name}` switches anyway"))
    result = _activate(settings, store, name, val_r10, reindex=reindex, previous=previous,
                       previous_r10=previous_r10, forced=force and not better)
    return result


@writes("use")
def use_model(settings: Settings, name: str, *, store: Store | None = None,
              reindex: bool | Reindex = True) -> Promotion:
    """Switch to `name` (a checkpoint or "base") unconditionally, e.g. for `mmtui use NAME`."""
    store = store or Store.open(settings.db_path)
    previous = active_name(store)
    val = None
    if name != BASE:
        val = load_checkpoint(settings.checkpoints_dir, name).metrics.get("val_r10")  # ModelError if missing
    return _activate(settings, store, name, float(val) if val is not None else float("nan"), reindex=reindex,
                     previous=previous, previous_r10=None, forced=True)


def _activate(settings: Settings, store: Store, name: str, val_r10: float, *, reindex: bool | Reindex,
              previous: str, previous_r10: float | None, forced: bool) -> Promotion:
    ckpt = None if name == BASE else load_checkpoint(settings.checkpoints_dir, name)
    needs_rebuild = ckpt is not None and ckpt.kind in ("finetune", "lit")  # whole encoders
    base_fp = store.get_meta("base_fingerprint")
    if ckpt is not None and ckpt.config.get("head") and base_fp and ckpt.config.get("base_fingerprint") != base_fp:
        raise IndexMismatchError(
            f"{name} was trained on {ckpt.config.get('base_model')} ({ckpt.config.get('base_fingerprint')}), "
            f"but this index holds vectors of {store.get_meta('base_model')} ({base_fp})",
            f"train a new head on this index with `mmtui train {ckpt.kind}`")
    if needs_rebuild and reindex:
        # a fine-tuned encoder changes every vector: encode the catalog again with it (incremental by fingerprint)
        if not callable(reindex):
            raise TrainingError(f"{name} is a fine-tuned encoder: the catalog must be encoded again with it",
                                f"run `mmtui use {name}`, which does that")
        reindex(settings)
    store.set_meta(ACTIVE_KEY, name)
    store.set_meta("active_model_since", now_iso())
    history = json.loads(store.get_meta("model_history") or "[]")
    history.append({"name": name, "previous": previous, "val_r10": val_r10, "previous_val_r10": previous_r10,
                    "forced": forced, "at": now_iso()})
    store.set_meta("model_history", json.dumps(history[-100:]))
    if reindex and not needs_rebuild:  # a head: rebuild the ANN indexes from cached vectors
        if callable(reindex):
            reindex(settings)
        else:
            rebuild_ann(settings, store=store)
    reason = "forced" if forced else (
        f"validation R@10 {val_r10:.4f} beats {previous}" +
        (f" ({previous_r10:.4f})" if previous_r10 is not None else ""))
    return Promotion(name, True, val_r10, previous, previous_r10, forced=forced, needs_rebuild=needs_rebuild,
                     reason=reason)


def list_models(settings: Settings, store: Store | None = None) -> list[dict]:
    """The base model and every checkpoint: name, kind, active, created, val_r10, test figures, base model. The
    base model's val_r10 is the one build-index measured for the heads in use ("adapted": adapted to the catalog)."""
    from mmtui.encoders.for_index import base_model_figures

    active, adapted, base_r10 = BASE, False, None
    own = store is None and settings.db_path.exists()
    if store is not None or own:
        store = store or Store.open(settings.db_path)
        try:
            active = active_name(store)
            adapted, base_r10 = base_model_figures(store)
        finally:
            if own:
                store.close()
    rows = [{"name": BASE, "kind": BASE, "active": active == BASE, "created": None, "base_model": settings.model,
             "val_r10": base_r10, "test_r10": None, "path": None, "adapted": adapted}]
    for ckpt in list_checkpoints(settings.checkpoints_dir):
        m = ckpt.metrics
        rows.append({"name": ckpt.name, "kind": ckpt.kind, "active": active == ckpt.name,
                     "created": ckpt.config.get("created"), "base_model": ckpt.config.get("base_model"),
                     "val_r10": m.get("val_r10"), "test_r10": (m.get("test") or {}).get("recall@10"),
                     "path": str(ckpt.path)})
    return rows


def run_summary(result: dict) -> list[str]:
    """Plain lines describing a training run (the dict every trainer returns), for the CLI and the TUI."""
    lines = [f"{result['name']}  saved to {result.get('path', '')}",
             f"{'epoch':>5}  {'train loss':>10}  {'val loss':>10}  {'val R@10':>8}"]
    for row in result.get("history", []):
        lines.append(f"{row['epoch']:>5}  {row['train_loss']:>10.4f}  {row['val_loss']:>10.4f}  {row['val_r10']:>8.4f}")
    m = result.get("metrics", {})
    if "base_val_r10" in m:
        lines.append(f"best epoch {m.get('best_epoch')}: validation R@10 {m['val_r10']:.4f} "
                     f"(before training {m['base_val_r10']:.4f})")
    test, base = m.get("test"), m.get("base_test")
    if test and base:
        lines.append(f"test split ({test['n_queries']} products): R@1 {base['recall@1']:.3f} -> {test['recall@1']:.3f}, "
                     f"R@10 {base['recall@10']:.3f} -> {test['recall@10']:.3f}, MRR {base['mrr']:.3f} -> {test['mrr']:.3f}")
    elif test:
        lines.append(f"test split ({test['n_queries']} products): R@1 {test['recall@1']:.3f}, "
                     f"R@10 {test['recall@10']:.3f}, MRR {test['mrr']:.3f}")
    promotion = result.get("promotion") or {}
    if result.get("promoted"):
        lines.append(f"active model: {result['name']} ({promotion.get('reason', '')})")
    elif promotion:
        lines.append(f"not promoted: {promotion.get('reason', '')}")
        if base_fits_training_pairs(m):
            lines.append(f"the base model already fits the training pairs (R@10 {m['base_train_r10']:.3f} on training "
                         f"products, {m['base_val_r10']:.3f} on validation ones): it was trained on them, so a head on "
                         f"its vectors has little left to learn; `mmtui train finetune --tails text` unfreezes the "
                         f"text tower instead")
    return lines


def base_fits_training_pairs(metrics: dict, fit: float = 0.99, gap: float = 0.05) -> bool:
    """True when the base vectors rank training pairs almost perfectly and validation pairs clearly worse."""
    train, val = metrics.get("base_train_r10"), metrics.get("base_val_r10")
    return train is not None and val is not None and train >= fit and train - val >= gap
