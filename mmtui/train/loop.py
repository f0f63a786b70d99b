"""One training loop shared by every trainer; it reads top to bottom.

    for epoch:            train on every batch (lr from get_lr(step), AMP on CUDA only)
        validate          -> val_loss, val_r10
        keep the best     -> by validation R@10 (early stopping after `patience` epochs without a gain)
    restore the best epoch's weights

The caller supplies the model, the optimizer's parameter groups, a batch -> loss function and a
validation function; the loop knows nothing about heads, towers or images.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import nn

from mmtui.errors import TrainingError
from mmtui.progress import ProgressCallback, ProgressEvent, check_cancel


@dataclass
class LoopConfig:
    epochs: int = 10
    warmup_steps: int | None = None  # None: 5% of all steps (at least 1 when there are >= 20 steps)
    min_lr_ratio: float = 0.0  # the cosine decays to base_lr * min_lr_ratio
    patience: int | None = None  # stop after this many epochs without a better val R@10; None: run all
    grad_clip: float | None = 1.0  # max gradient norm; None: no clipping
    amp: bool = True  # mixed precision, only ever used on CUDA
    device: str = "cpu"


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # [{"epoch", "train_loss", "val_loss", "val_r10", "lr", "seconds"}]
    best_epoch: int = 0
    best_val_r10: float = float("-inf")
    stopped_early: bool = False


def get_lr(step: int, base_lr: float, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0) -> float:
    """Linear warmup to base_lr over warmup_steps, then cosine decay to base_lr * min_ratio at total_steps."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return base_lr * (min_ratio + (1.0 - min_ratio) * cosine)


def default_warmup(total_steps: int) -> int:
    return int(0.05 * total_steps) if total_steps >= 20 else 0


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    batches: Callable[[int], Iterable],
    steps_per_epoch: int,
    loss_fn: Callable[[object], torch.Tensor],
    validate: Callable[[], dict],
    config: LoopConfig,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> FitResult:
    """Train `model` and leave it holding the weights of its best epoch (by validation R@10).

    batches(epoch) yields training batches; loss_fn(batch) returns a scalar loss (the model is in train mode);
    validate() returns {"val_loss": float, "val_r10": float} (called in eval mode, without gradients).
    Raises progress.Cancelled when `cancel` is set (checked before every step).
    """
    total_steps = max(1, config.epochs * steps_per_epoch)
    warmup = config.warmup_steps if config.warmup_steps is not None else default_warmup(total_steps)
    for group in optimizer.param_groups:
        group.setdefault("base_lr", group["lr"])
    use_amp = config.amp and str(config.device).startswith("cuda")
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    result = FitResult()
    best_state = copy.deepcopy(model.state_dict())
    step = 0
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        losses: list[float] = []
        for batch in batches(epoch):
            check_cancel(cancel)
            for group in optimizer.param_groups:
                group["lr"] = get_lr(step, group["base_lr"], total_steps, warmup, config.min_lr_ratio)
            with torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
                loss = loss_fn(batch)
            if not torch.isfinite(loss):
                raise TrainingError(f"training diverged at epoch {epoch} (loss {loss.item()})",
                                    "lower the learning rate or check the cached vectors")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            if progress:
                progress(ProgressEvent("train", step, total_steps, f"epoch {epoch}/{config.epochs}"))
        check_cancel(cancel)
        model.eval()
        with torch.no_grad():
            val = validate()
        row = {
            "epoch": epoch,
            "train_loss": float(sum(losses) / len(losses)) if losses else float("nan"),
            "val_loss": float(val["val_loss"]),
            "val_r10": float(val["val_r10"]),
            "lr": float(optimizer.param_groups[0]["lr"]),
            "seconds": round(time.perf_counter() - started, 3),
        }
        result.history.append(row)
        if progress:
            progress(ProgressEvent("train", step, total_steps, f"epoch {epoch}/{config.epochs} done", metrics=row))
        if row["val_r10"] > result.best_val_r10:
            result.best_val_r10, result.best_epoch = row["val_r10"], epoch
            best_state = copy.deepcopy(model.state_dict())
        elif config.patience is not None and epoch - result.best_epoch >= config.patience:
            result.stopped_early = True
            break
    model.load_state_dict(best_state)
    model.eval()
    return result
