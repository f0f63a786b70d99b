"""`mmtui train adapter`: a residual head per side trained on the store's cached vectors.

A residual head per side (title/query side and image side), y = x + alpha * f(x), starting as the identity;
symmetric InfoNCE with a learnable temperature; AdamW (heads 1e-4 on open_clip models and 1e-3 on lite, see
default_lr; logit scale 1e-3, weight decay 1e-2);
cosine schedule; 10 epochs; AMP on CUDA. The best epoch by validation R@10 is saved as adapter-NNN and
becomes the active model if it beats the current one. No image is encoded: training and re-indexing read
the cache. `run_head_training` is shared with the MLP baseline (mlp.py).
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import torch

from mmtui.config import Settings
from mmtui.encoders import pick_device
from mmtui.metrics import paired_retrieval
from mmtui.progress import ProgressCallback, ProgressEvent
from mmtui.store.db import Store
from mmtui.encoders.checkpoints import save_checkpoint
from mmtui.train.data import PairedData, base_fingerprint, hard_batches, kmeans_labels, load_pairs, paired_r10
from mmtui.encoders.heads import TwoTower, head_tensors, residual_two_tower
from mmtui.train.loop import LoopConfig, fit
from mmtui.train.losses import info_nce
from mmtui.train.promote import Reindex, promote
from mmtui.store.datadir import writes

LossFn = Callable[[torch.Tensor, torch.Tensor, TwoTower], torch.Tensor]


OPENCLIP_LR = 1e-4  # the heads' learning rate on CLIP-like features
LITE_LR = 1e-3  # the lite model's 256-d space learns ~10x slower: benchmarks/results/adapter-fresh.md


def default_lr(base_model: str | None) -> float:
    """The adapter's head learning rate for a base model when the user gives none.

    1e-4 for open_clip models. For lite, 1e-3: on a catalog new to the lite heads it lifted test
    R@10 from 0.826 to 0.863, where 1e-4 reached 0.828 in the same 10 epochs (benchmarks/adapter_fresh.py).
    """
    spec = base_model or "lite"
    return LITE_LR if spec == "lite" or spec.startswith("lite:") else OPENCLIP_LR


def train_adapter(settings: Settings, *, epochs: int = 10, alpha: float = 0.2, batch_size: int = 256,
                  lr: float | None = None, logit_lr: float = 1e-3, weight_decay: float = 1e-2, hidden: int | None = None,
                  hard_negatives: float = 0.0, patience: int | None = None, seed: int = 0, force: bool = False, device: str | None = None,
                  progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                  store: Store | None = None, reindex: bool | Reindex = True) -> dict:
    """Train a residual adapter; returns {"name", "promoted", "metrics", "history", "path", "promotion"}.

    lr: the heads' learning rate; None = default_lr(the index's base model).
    hard_negatives: share (0..1) of each epoch's batches made of look-alike products (k-means over the
    image vectors), whose in-batch negatives are harder than random ones.
    """
    store = store or Store.open(settings.db_path)
    if lr is None:
        lr = default_lr(store.get_meta("base_model") or settings.model)
    hparams = {"epochs": epochs, "alpha": alpha, "batch_size": batch_size, "lr": lr, "logit_lr": logit_lr,
               "weight_decay": weight_decay, "hidden": hidden, "hard_negatives": hard_negatives,
               "patience": patience, "seed": seed, "loss": "info_nce"}
    return run_head_training(
        settings, kind="adapter", head="residual",
        build=lambda dim: residual_two_tower(dim, alpha=alpha, hidden=hidden),
        loss=lambda q, p, model: info_nce(q, p, model.logit_scale()),
        hparams=hparams, config={"alpha": alpha, "hidden": hidden}, force=force, device=device,
        progress=progress, cancel=cancel, store=store, reindex=reindex)


@writes("train")
def run_head_training(settings: Settings, *, kind: str, head: str, build: Callable[[int], TwoTower], loss: LossFn,
                      hparams: dict, config: dict, force: bool = False, device: str | None = None,
                      progress: ProgressCallback | None = None, cancel: threading.Event | None = None,
                      store: Store | None = None, reindex: bool | Reindex = True) -> dict:
    """Load pairs, fit a two-tower head, save the best epoch as a checkpoint, promote it if it is better."""
    store = store or Store.open(settings.db_path)
    if progress:
        progress(ProgressEvent("load", 0, None, "reading cached vectors"))
    data = load_pairs(store, base_fingerprint(settings, store))
    device = pick_device(device or settings.device)
    model, result = fit_head(data, build=build, loss=loss, hparams=hparams, device=device, progress=progress,
                             cancel=cancel)
    vq, vp = _tensor(data.val.query, device), _tensor(data.val.image, device)
    metrics = evaluate_head(model, data, device)
    metrics.update({"best_epoch": result.best_epoch, "stopped_early": result.stopped_early,
                    "logit_scale": float(model.logit_scale().detach())})
    out_dim = int(model(vq[:1], vp[:1])[0].shape[1])
    ckpt_config = {"head": head, "base_model": store.get_meta("base_model") or settings.model, "base_fingerprint": data.fingerprint,
                   "in_dim": data.dim, "out_dim": out_dim, **config, "hyperparameters": hparams,
                   "n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test), "device": device}
    ckpt = save_checkpoint(settings.checkpoints_dir, kind, head_tensors(model), ckpt_config, metrics, result.history)
    if progress:
        progress(ProgressEvent("promote", 0, None, f"saved {ckpt.name}"))
    promotion = promote(settings, ckpt.name, metrics["val_r10"], force=force, store=store, data=data,
                        reindex=reindex)
    return {"name": ckpt.name, "promoted": promotion.promoted, "metrics": metrics, "history": result.history,
            "path": str(ckpt.path), "promotion": promotion.as_dict()}


def fit_head(data: PairedData, *, build: Callable[[int], TwoTower], loss: LossFn, hparams: dict, device: str,
             progress: ProgressCallback | None = None, cancel: threading.Event | None = None):
    """Fit a two-tower head on paired vectors (train split), keeping its best epoch by validation R@10."""
    torch.manual_seed(hparams.get("seed", 0))
    model = build(data.dim).to(device)
    batch_size = int(hparams["batch_size"])
    tq, tp = _tensor(data.train.query, device), _tensor(data.train.image, device)
    vq, vp = _tensor(data.val.query, device), _tensor(data.val.image, device)
    n = tq.shape[0]
    steps_per_epoch = max(1, n // batch_size if n % batch_size < 2 else n // batch_size + 1)

    hard = float(hparams.get("hard_negatives") or 0.0)
    labels = kmeans_labels(data.train.image, max(1, n // batch_size), seed=hparams.get("seed", 0)) if hard else None

    def batches(epoch: int):
        rng = np.random.default_rng(hparams.get("seed", 0) * 1000 + epoch)
        order = rng.permutation(n)
        chunks = [order[s:s + batch_size] for s in range(0, n, batch_size)]
        chunks = [c for c in chunks if len(c) >= 2]
        if labels is not None:  # replace a share of the random batches with batches of look-alike products
            similar = hard_batches(labels, batch_size, rng)
            n_hard = min(len(similar), int(round(hard * len(chunks))))
            chunks = [*similar[:n_hard], *chunks[n_hard:]]
            chunks = [chunks[i] for i in rng.permutation(len(chunks))]
        for idx in chunks:
            yield torch.from_numpy(idx).to(device)

    def loss_fn(idx: torch.Tensor) -> torch.Tensor:
        qe, pe = model(tq[idx], tp[idx])
        return loss(qe, pe, model)

    def validate() -> dict:
        qe, pe = model(vq, vp)
        losses = [float(loss(qe[s:s + batch_size], pe[s:s + batch_size], model))
                  for s in range(0, qe.shape[0], batch_size) if qe[s:s + batch_size].shape[0] >= 2]
        return {"val_loss": float(np.mean(losses)) if losses else float("nan"),
                "val_r10": _r10(qe, pe)}

    groups = [{"params": model.head_parameters(), "lr": hparams["lr"], "weight_decay": hparams["weight_decay"]},
              {"params": list(model.logit_scale.parameters()), "lr": hparams.get("logit_lr", hparams["lr"]),
               "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups)
    loop = LoopConfig(epochs=int(hparams["epochs"]), patience=hparams.get("patience"), device=device)
    result = fit(model, optimizer, batches=batches, steps_per_epoch=steps_per_epoch, loss_fn=loss_fn,
                 validate=validate, config=loop, progress=progress, cancel=cancel)
    return model, result


def evaluate_head(model: TwoTower, data: PairedData, device: str) -> dict:
    """Validation R@10 of the base vectors and of the head; test-split figures before/after (when there is a test split)."""
    with torch.no_grad():
        model.eval()
        vq, vp = model(_tensor(data.val.query, device), _tensor(data.val.image, device))
        metrics: dict = {"val_r10": _r10(vq, vp), "base_val_r10": paired_r10(data.val.query, data.val.image),
                         "base_train_r10": base_train_r10(data)}
        if len(data.test) >= 2:
            tq, tp = model(_tensor(data.test.query, device), _tensor(data.test.image, device))
            metrics["test"] = paired_retrieval(tq.float().cpu().numpy(), tp.float().cpu().numpy())
            metrics["base_test"] = paired_retrieval(data.test.query, data.test.image)
    return metrics


def base_train_r10(data: PairedData, seed: int = 0) -> float:
    """R@10 of the base vectors on training pairs, over a random pool as large as the validation split (so the
    two figures compare): near 1.0 while validation is well below means the base model was trained on these
    very pairs, and a head trained on them has little left to learn."""
    n = len(data.train)
    pick = np.random.default_rng(seed).permutation(n)[:max(2, min(n, len(data.val)))]
    return paired_r10(data.train.query[pick], data.train.image[pick])


def _r10(q: torch.Tensor, p: torch.Tensor, k: int = 10) -> float:
    sims = q.float() @ p.float().t()
    ranks = (sims >= sims.diag()[:, None]).sum(dim=1)
    return float((ranks <= k).float().mean())


def _tensor(x: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
