"""`mmtui train finetune`: a full fine-tune of an open_clip model's two towers on image-title pairs.

Every weight trains except the logit scale (frozen); AdamW lr 1e-4, weight decay 0.01 (not on biases, norms
and embeddings' 1-d parameters); symmetric contrastive loss, or the sigmoid loss for SigLIP models (those
with a logit bias); augmentations: random resized crop, flip, colour jitter, small rotation, perspective;
AMP on CUDA, plain fp32 on CPU. Validation R@10 = each val title vs all val images, exact.

The result is an open_clip state dict in safetensors (finetune-NNN/model.safetensors) with the arch's JSON
config next to it, loadable as `--model openclip:ARCH --checkpoint .../model.safetensors`. Unlike a head it
changes the image vectors, so making it active re-encodes the catalog (mmtui.build.pipeline.build_index).

For the lite model the same command runs the LiT trainer with the last image blocks and the last text
layers unfrozen, and saves model.safetensors + model.json (loadable as `--model lite:.../model.safetensors`).
"""

from __future__ import annotations

import json
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from mmtui.config import Settings
from mmtui.encoders import pick_device
from mmtui.encoders.lite import LiteEncoder
from mmtui.encoders.openclip import OpenClipEncoder
from mmtui.errors import TrainingError
from mmtui.metrics import paired_retrieval
from mmtui.progress import ProgressCallback, ProgressEvent
from mmtui.catalog.splits import split_of
from mmtui.store.db import Store
from mmtui.encoders.checkpoints import finetuned_settings, next_name, save_checkpoint  # noqa: F401 (old name)
from mmtui.train.loop import LoopConfig, fit
from mmtui.train.losses import info_nce, sigmoid_loss
from mmtui.train.promote import EncodeAgain, Reindex, promote
from mmtui.store.datadir import writes


@dataclass(frozen=True)
class Pair:
    product_id: str
    title: str
    image_path: str
    split: str


def pairs_from(source: Store | Sequence) -> list[Pair]:
    """Image-title pairs from a store (products whose image passed validation) or from catalog Products."""
    if isinstance(source, Store):
        sql = ("SELECT id, title, image_path, split FROM products WHERE image_path IS NOT NULL "
               "AND coalesce(image_status, 'ok') = 'ok' AND coalesce(title, '') != '' ORDER BY rowid")
        return [Pair(str(i), t, p, s or split_of(str(i))) for i, t, p, s in source.db.execute(sql)]
    out = []
    for product in source:
        path = getattr(product, "image_path", None) or getattr(product, "image", None)
        if path and getattr(product, "image_status", "ok") == "ok" and product.title:
            out.append(Pair(str(product.id), product.title, str(path), split_of(str(product.id))))
    return out


class PairDataset(torch.utils.data.Dataset):
    """(image tensor, title) per pair; an unreadable image yields None and is dropped by the collate function."""

    def __init__(self, pairs: Sequence[Pair], transform) -> None:
        self.pairs = list(pairs)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int):
        pair = self.pairs[i]
        try:
            with Image.open(pair.image_path) as img:
                return self.transform(img.convert("RGB")), pair.title
        except (OSError, ValueError):
            return None


def train_transform(model, strength: float = 1.0):
    """Training augmentations (crop, flip, colour, rotation, perspective) at the model's input size and
    normalisation; `strength` scales them."""
    from torchvision import transforms as T

    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = model.visual.image_size
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    mean = cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))
    std = cfg.get("std", (0.26862954, 0.26130258, 0.27577711))
    return T.Compose([
        T.RandomResizedCrop(size, scale=(1.0 - 0.4 * strength, 1.0), interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.3 * strength, 0.3 * strength, 0.3 * strength, 0.05 * strength)], p=0.8),
        T.RandomRotation(10 * strength, fill=255),
        T.RandomPerspective(0.2 * strength, p=0.3, fill=255),
        T.ToTensor(),
        T.Normalize(mean, std),
    ])


def resolve_model(settings: Settings, store: Store | None) -> tuple[str, Path | None]:
    """The model to fine-tune: --model, else the one the index was built with; and its weights file."""
    spec = settings.model or (store.get_meta("base_model") if store is not None else None) or "lite"
    checkpoint = settings.checkpoint
    if checkpoint is None and store is not None and store.get_meta("base_model") == spec:
        stored = store.get_meta("base_checkpoint")
        checkpoint = Path(stored) if stored else None
    return spec, checkpoint


OPENCLIP_DEFAULTS = {"epochs": 5, "batch_size": 32, "lr": 1e-4, "weight_decay": 0.01, "patience": None}
# lite: from the current model's own heads and towers, lr 1e-4 for heads and unfrozen tails alike, batches of 256,
# wd 0.05, 20 epochs (one-cycle schedule), patience 8. On Fashion (--tails text) this beat the shipped heads on
# every validation and test figure; starting from fresh heads instead (the LiT recipe: lr 1e-3, 30 epochs)
# gained R@10 but lost R@1 (docs/figures.md, "Retrieval quality").
LITE_DEFAULTS = {"epochs": 20, "batch_size": 256, "lr": 1e-4, "weight_decay": 0.05, "patience": 8}


@writes("train finetune")
def train_finetune(settings: Settings, source: Store | Sequence | None = None, *, epochs: int | None = None,
                   batch_size: int | None = None, lr: float | None = None, weight_decay: float | None = None,
                   augment: bool = True, tails: str = "both",
                   patience: int | None = None, max_train: int | None = None, max_val: int | None = None,
                   num_workers: int = 0, seed: int = 0, force: bool = False, device: str | None = None,
                   progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                   store: Store | None = None, reindex: bool | Reindex = True,
                   encode_again: EncodeAgain | None = None) -> dict:
    """Fine-tune the open_clip model; returns {"name", "promoted", "metrics", "history", "path", "promotion",
    "checkpoint" (the weights file), "model" (the spec that loads it)}.

    Hyper-parameters left as None take the model's defaults: OPENCLIP_DEFAULTS or LITE_DEFAULTS.
    tails (lite only): which tower tails to unfreeze, "both" (default), "text" or "image"; the image tail is
    ~5x slower per epoch on a CPU. A promoted fine-tuned encoder changes every vector: with reindex=True the catalog
    is encoded again by `encode_again(settings, name, store)` (the build's mmtui.build.reencode.reindex_for, passed
    in by the front ends)."""
    if store is None and (source is None or isinstance(source, Store)):
        store = source if isinstance(source, Store) else Store.open(settings.db_path)
    spec, checkpoint = resolve_model(settings, store)
    lite = spec == "lite" or spec.startswith("lite:")
    given = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "patience": patience}
    chosen = {k: v if v is not None else (LITE_DEFAULTS if lite else OPENCLIP_DEFAULTS)[k] for k, v in given.items()}
    epochs, batch_size, lr, weight_decay, patience = (chosen[k] for k in given)
    if lite:
        return _finetune_lite(settings, store, spec, source=source, epochs=epochs, batch_size=batch_size, lr=lr,
                              weight_decay=weight_decay, patience=patience, seed=seed, force=force, device=device,
                              progress=progress, cancel=cancel, reindex=reindex, tails=tails,
                              encode_again=encode_again)
    if not spec.startswith("openclip:"):
        raise TrainingError(f"`train finetune` needs an open_clip or the lite model, not {spec!r}",
                            "build the index with --model lite or --model openclip:ARCH/PRETRAINED "
                            "(or openclip:ARCH --checkpoint FILE)")
    hyper = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay, "augment": augment,
             "patience": patience, "seed": seed}
    return _finetune_open_clip(settings, store, spec, checkpoint, source=source, hyper=hyper, max_train=max_train,
                               max_val=max_val, num_workers=num_workers, force=force, device=device,
                               progress=progress, cancel=cancel, reindex=reindex, encode_again=encode_again)


def _finetune_open_clip(settings: Settings, store: Store | None, spec: str, checkpoint: Path | None, *, source,
                        hyper: dict, max_train: int | None, max_val: int | None, num_workers: int, force: bool,
                        device: str | None, progress: ProgressCallback | None, cancel: threading.Event | None,
                        reindex: bool | Reindex, encode_again: EncodeAgain | None) -> dict:
    """open_clip: both towers trained (logit scale frozen), saved as finetune-NNN and promoted if it beats
    the model in use on validation."""
    epochs, batch_size, patience, seed = hyper["epochs"], hyper["batch_size"], hyper["patience"], hyper["seed"]
    train, val, test = _open_clip_splits(source if source is not None else store, max_train, max_val)
    device = pick_device(device or settings.device)
    if progress:
        progress(ProgressEvent("model", 0, None, f"loading {spec}"))
    encoder = OpenClipEncoder.load(spec, checkpoint=checkpoint, device=device)
    run = _ContrastiveRun(encoder, device, batch_size, num_workers)
    torch.manual_seed(seed)
    loader = run.train_loader(train, hyper["augment"], torch.Generator().manual_seed(seed))
    run.use_for_validation(val)
    run.model.eval()
    with torch.no_grad():
        before = run.validate()
    result = fit(run.model, _open_clip_optimizer(run.model, hyper["lr"], hyper["weight_decay"]),
                 batches=lambda epoch: (b for b in loader if b is not None), steps_per_epoch=max(1, len(loader)),
                 loss_fn=run.loss_fn, validate=run.validate,
                 config=LoopConfig(epochs=epochs, patience=patience, device=device), progress=progress,
                 cancel=cancel)
    with torch.no_grad():
        after = run.validate()
    metrics = {"val_r10": after["val_r10"], "base_val_r10": before["val_r10"], "val": after["scores"],
               "base_val": before["scores"], "best_epoch": result.best_epoch, "stopped_early": result.stopped_early}
    if len(test) >= 2:
        metrics["test"] = _paired_scores(run.model, test, encoder.preprocess, run.tokenizer, device, batch_size)
    ckpt = _save_open_clip(settings, spec, checkpoint, run, hyper, (len(train), len(val), len(test)), metrics,
                           result.history)
    arch = _arch(spec)
    out = {"name": ckpt.name, "promoted": False, "metrics": metrics, "history": result.history,
           "path": str(ckpt.path), "promotion": None, "checkpoint": str(ckpt.weights_path),
           "model": f"openclip:{arch}"}
    if store is None:
        return out
    previous_r10 = before["val_r10"] if (store.get_meta("active_model") or "base") == "base" else None
    promotion = promote(settings, ckpt.name, metrics["val_r10"], force=force, store=store,
                        previous_val_r10=previous_r10,
                        reindex=_encode_again(settings, ckpt.name, store, reindex, encode_again))
    return {**out, "promoted": promotion.promoted, "promotion": promotion.as_dict()}


def _arch(spec: str) -> str:
    return spec.removeprefix("openclip:").partition("/")[0]


def _open_clip_splits(source: Store | Sequence, max_train: int | None,
                      max_val: int | None) -> tuple[list[Pair], list[Pair], list[Pair]]:
    """The train (up to max_train), validation (up to max_val) and test pairs; too few is an error."""
    pairs = pairs_from(source)
    train = [p for p in pairs if p.split == "train"][:max_train]
    val = [p for p in pairs if p.split == "val"][:max_val]
    test = [p for p in pairs if p.split == "test"]
    if len(train) < 2 or len(val) < 2:
        raise TrainingError(f"too few image-title pairs to fine-tune (train {len(train)}, val {len(val)})",
                            "index a catalog with images first: training uses 80% of them, validation 10%")
    return train, val, test


class _ContrastiveRun:
    """An open_clip model trained on image-title pairs: its loaders, its loss (symmetric contrastive, or sigmoid
    for SigLIP models) with the logit scale frozen, and its validation."""

    def __init__(self, encoder: OpenClipEncoder, device: str, batch_size: int, num_workers: int) -> None:
        self.encoder, self.model, self.tokenizer = encoder, encoder.model, encoder.tokenizer
        self.device, self.batch_size, self.num_workers = device, batch_size, num_workers
        self.siglip = getattr(self.model, "logit_bias", None) is not None
        self.model.logit_scale.requires_grad_(False)
        self.scale = self.model.logit_scale.detach().exp()
        self.val_loader = None

    def collate(self, items):
        items = [it for it in items if it is not None]
        if len(items) < 2:
            return None
        return torch.stack([img for img, _ in items]), self.tokenizer([t for _, t in items])

    def train_loader(self, train: list[Pair], augment: bool, generator: torch.Generator):
        transform = train_transform(self.model) if augment else self.encoder.preprocess
        return torch.utils.data.DataLoader(PairDataset(train, transform), batch_size=self.batch_size, shuffle=True,
                                           drop_last=len(train) % self.batch_size == 1, collate_fn=self.collate,
                                           num_workers=self.num_workers, generator=generator)

    def use_for_validation(self, val: list[Pair]) -> None:
        self.val_loader = torch.utils.data.DataLoader(PairDataset(val, self.encoder.preprocess),
                                                      batch_size=self.batch_size, collate_fn=self.collate,
                                                      num_workers=self.num_workers)

    def loss_of(self, img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
        if self.siglip:
            return sigmoid_loss(img, txt, self.scale, self.model.logit_bias)
        return info_nce(txt, img, self.scale)

    def loss_fn(self, batch) -> torch.Tensor:
        images, tokens = batch
        img = self.model.encode_image(images.to(self.device), normalize=True)
        txt = self.model.encode_text(tokens.to(self.device), normalize=True)
        return self.loss_of(img, txt)

    def validate(self) -> dict:
        imgs, txts, losses = [], [], []
        for batch in self.val_loader:
            if batch is None:
                continue
            img = self.model.encode_image(batch[0].to(self.device), normalize=True).float()
            txt = self.model.encode_text(batch[1].to(self.device), normalize=True).float()
            losses.append(float(self.loss_of(img, txt)))
            imgs.append(img.cpu().numpy())
            txts.append(txt.cpu().numpy())
        if not imgs:
            raise TrainingError("no validation image could be read", "check the image files of the catalog")
        scores = paired_retrieval(np.concatenate(txts), np.concatenate(imgs))
        return {"val_loss": float(np.mean(losses)), "val_r10": scores["recall@10"], "scores": scores}


def _open_clip_optimizer(model, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and other 1-d parameters."""
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "lr": lr, "weight_decay": weight_decay},
                              {"params": no_decay, "lr": lr, "weight_decay": 0.0}])


def _save_open_clip(settings: Settings, spec: str, checkpoint: Path | None, run: _ContrastiveRun, hyper: dict,
                    sizes: tuple[int, int, int], metrics: dict, history: list[dict]):
    """The fine-tuned weights as checkpoint finetune-NNN, with the arch's open_clip config next to them."""
    arch = _arch(spec)
    name = next_name(settings.checkpoints_dir, "finetune")
    open_clip_cfg = _model_config(arch)
    config = {"model_spec": f"openclip:{arch}", "arch": arch, "siglip": run.siglip,
              "base_model": spec, "base_checkpoint": str(checkpoint) if checkpoint else None,
              "base_fingerprint": run.encoder.fingerprint, "open_clip_config": open_clip_cfg,
              "hyperparameters": {**hyper, "loss": "sigmoid" if run.siglip else "info_nce", "logit_scale": "frozen"},
              "n_train": sizes[0], "n_val": sizes[1], "n_test": sizes[2], "device": run.device}
    tensors = {k: v.detach().to("cpu").clone() for k, v in run.model.state_dict().items()}
    extra = {f"{arch}.json": json.dumps(open_clip_cfg, indent=2)} if open_clip_cfg else None
    return save_checkpoint(settings.checkpoints_dir, "finetune", tensors, config, metrics, history,
                           name=name, extra_files=extra)


@writes("train lit")
def train_lit_heads(settings: Settings, source: Store | Sequence | None = None, *, epochs: int = 20,
                    batch_size: int = 256, weight_decay: float = 0.05, patience: int | None = 5, seed: int = 0,
                    force: bool = False, device: str | None = None, progress: ProgressCallback | None = None,
                    cancel: threading.Event | None = None, store: Store | None = None,
                    reindex: bool | Reindex = True, encode_again: EncodeAgain | None = None) -> dict:
    """`mmtui train lit`: the lite model's projection heads (towers locked) trained on this catalog's
    title-image pairs with the shipped head design; a checkpoint of kind "lit", promoted like a fine-tune."""
    own = store is None and source is None
    store = store or (source if isinstance(source, Store) else None) or Store.open(settings.db_path)
    try:
        spec = settings.model or store.get_meta("base_model") or "lite"
        if not (spec == "lite" or spec.startswith("lite:")):
            raise TrainingError(f"`train lit` trains the lite model's heads; this index uses {spec!r}",
                                "build the index with the default model (--model lite), or use `mmtui train adapter`")
        return _finetune_lite(settings, store, spec, source=source, epochs=epochs, batch_size=batch_size, lr=1e-4,
                              weight_decay=weight_decay, patience=patience, seed=seed, force=force, device=device,
                              progress=progress, cancel=cancel, reindex=reindex, unfreeze=False,
                              encode_again=encode_again)
    finally:
        if own:
            store.close()


def _finetune_lite(settings: Settings, store: Store | None, spec: str, *, source, epochs: int, batch_size: int,
                   lr: float, weight_decay: float, patience: int | None, seed: int, force: bool, device: str | None,
                   progress: ProgressCallback | None, cancel: threading.Event | None, reindex: bool | Reindex,
                   unfreeze: bool = True, tails: str = "both", encode_again: EncodeAgain | None = None) -> dict:
    """lite: the LiT trainer (mmtui.train.lit) with the last image blocks and the last text layers unfrozen,
    starting from the current lite model's weights (its heads, and its tails when it has fine-tuned ones), all at
    `lr` (1e-4 by default). unfreeze=False (`mmtui train lit`) trains fresh heads of the current design alone, at
    the LiT rate of 1e-3. tails: "both", "text" or "image"."""
    # looked up when called: tests replace mmtui.train.lit.train_lit and mmtui.encoders.lite.read_checkpoint
    from mmtui.encoders.lite import default_weights, read_checkpoint

    weights = Path(spec.split(":", 1)[1]).expanduser() if spec.startswith("lite:") else default_weights()
    current, current_tensors, _ = read_checkpoint(weights)
    config = _lite_config(current, unfreeze, tails)
    kind = "finetune" if unfreeze else "lit"
    name = next_name(settings.checkpoints_dir, kind)
    start = {"init": current_tensors, "lr": lr} if unfreeze else {}  # a fine-tune goes on from the current model
    lit, tensors, lite_json = _run_lit(settings, pairs_from(source if source is not None else store), name, config,
                                       start, epochs=epochs, batch_size=batch_size, tail_lr=lr,
                                       weight_decay=weight_decay, seed=seed, device=device or settings.device,
                                       progress=progress, cancel=cancel, patience=patience or epochs)
    metrics, history = _lite_metrics(lit)
    ckpt_path = settings.checkpoints_dir.resolve() / name  # absolute: the spec must load from any directory
    ckpt_config = {"model_spec": f"lite:{ckpt_path / 'model.safetensors'}", "base_model": spec,
                   "base_fingerprint": store.get_meta("base_fingerprint") if store is not None else None,
                   "lite_config": config, "hyperparameters": {"epochs": epochs, "batch_size": batch_size,
                   "tail_lr": lr, "head_lr": lr if unfreeze else 1e-3,
                   "start": "current model" if unfreeze else "fresh heads", "weight_decay": weight_decay,
                   "patience": patience, "seed": seed,
                   "image_tail_from": config["image"]["tail_from"], "text_tail_from": config["text"]["tail_from"]},
                   "n_train": lit.get("n_train"), "n_val": lit.get("n_val"), "n_test": lit.get("n_test")}
    # model.safetensors + model.json is the layout LiteEncoder reads ("lite:PATH/model.safetensors")
    ckpt = save_checkpoint(settings.checkpoints_dir, kind, tensors, ckpt_config, metrics, history, name=name,
                           extra_files={"model.json": lite_json})
    _record_lite_fingerprint(ckpt.path, ckpt_config["model_spec"], device or settings.device)
    result = {"name": ckpt.name, "promoted": False, "metrics": metrics, "history": history, "path": str(ckpt.path),
              "promotion": None, "checkpoint": str(ckpt.weights_path), "model": ckpt_config["model_spec"]}
    if store is not None:
        promotion = promote(settings, ckpt.name, metrics["val_r10"], force=force, store=store,
                            reindex=_encode_again(settings, ckpt.name, store, reindex, encode_again))
        result.update(promoted=promotion.promoted, promotion=promotion.as_dict())
    return result


def _lite_config(current: dict, unfreeze: bool, tails: str) -> dict:
    """The current lite model's config with the tower tails `tails` unfrozen (none when not `unfreeze`)."""
    from mmtui.train.features import IMAGE_TAP_BLOCKS, TEXT_TAP_LAYER

    config = {k: v for k, v in current.items() if k not in ("metrics", "format", "image_dims", "preprocess")}
    if tails not in ("both", "text", "image"):
        raise TrainingError(f"unknown tails {tails!r}", "use --tails both, text or image")
    image_tail = unfreeze and tails in ("both", "image")
    text_tail = unfreeze and tails in ("both", "text")
    config["image"] = {**config.get("image", {}), "tail_from": IMAGE_TAP_BLOCKS[0] if image_tail else None}
    config["text"] = {**config.get("text", {}), "tail_from": TEXT_TAP_LAYER if text_tail else None}
    return config


def _run_lit(settings: Settings, pairs: list[Pair], name: str, config: dict, start: dict,
             **train_args) -> tuple[dict, dict, str]:
    """train_lit on the pairs in a scratch folder; returns (its metrics, the weights, their lite JSON)."""
    from safetensors.torch import load_file

    from mmtui.train.lit import train_lit

    products = [SimpleNamespace(id=p.product_id, title=p.title, image_path=p.image_path) for p in pairs]
    split_by_id = {p.product_id: p.split for p in pairs}
    work = settings.checkpoints_dir / f".{name}.lit"
    shutil.rmtree(work, ignore_errors=True)
    try:
        lit = train_lit(products, work, cache_dir=settings.data_dir / "cache" / "features", config=config,
                        **start, **train_args, split_fn=lambda pid: split_by_id.get(pid, split_of(pid)))
        return lit, load_file(str(work / "lite.safetensors")), (work / "lite.json").read_text(encoding="utf-8")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _lite_metrics(lit: dict) -> tuple[dict, list[dict]]:
    """train_lit's metrics and history in the checkpoints' names (recall@10, ...)."""
    rename = {"r1": "recall@1", "r5": "recall@5", "r10": "recall@10", "mrr": "mrr", "n": "n_queries"}
    metrics = {"val_r10": float(lit["val"]["r10"]), "best_epoch": lit.get("best_epoch"),
               "val": {rename.get(k, k): v for k, v in lit["val"].items()}}
    if lit.get("test"):
        metrics["test"] = {rename.get(k, k): v for k, v in lit["test"].items()}
    history = [{k: row[k] for k in ("epoch", "train_loss", "val_loss", "val_r10", "seconds") if k in row}
               for row in lit.get("history", [])]
    return metrics, history


def _encode_again(settings: Settings, name: str, store: Store, reindex: bool | Reindex,
                  encode_again: EncodeAgain | None) -> bool | Reindex:
    """A fine-tuned encoder's promotion encodes the catalog again (unless the caller said how, or not to)."""
    if reindex is True:
        if encode_again is None:
            raise ValueError("reindex=True after fine-tuning needs encode_again (mmtui.build.reencode.reindex_for)")
        return encode_again(settings, name, store)
    return reindex


def _record_lite_fingerprint(checkpoint_dir: Path, spec: str, device: str | None) -> None:
    """Add the fingerprint of the encoder a lite checkpoint makes to its config.json: `eval --compare` finds
    its cached vectors by it (the same value build-index records when it encodes with that checkpoint)."""
    path = checkpoint_dir / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["encoder_fingerprint"] = LiteEncoder.fingerprint_for(spec, pick_device(device))[0]
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")


def _paired_scores(model, pairs: Sequence[Pair], preprocess, tokenizer, device: str, batch_size: int) -> dict:
    loader = torch.utils.data.DataLoader(PairDataset(pairs, preprocess), batch_size=batch_size,
                                         collate_fn=lambda items: [it for it in items if it is not None])
    imgs, txts = [], []
    model.eval()
    with torch.no_grad():
        for items in loader:
            if not items:
                continue
            imgs.append(model.encode_image(torch.stack([i for i, _ in items]).to(device), normalize=True).float().cpu())
            txts.append(model.encode_text(tokenizer([t for _, t in items]).to(device), normalize=True).float().cpu())
    return paired_retrieval(torch.cat(txts).numpy(), torch.cat(imgs).numpy())


def _model_config(arch: str) -> dict | None:
    import open_clip

    cfg = open_clip.get_model_config(arch)
    return dict(cfg) if cfg else None
