"""LiT training of the `lite` heads: locked towers, learned heads, symmetric InfoNCE on title-image pairs.

Tower features are extracted once and cached (mmtui.train.features); each epoch then only runs the heads
(and the small fine-tuned tower tails). Split by mmtui.catalog.splits.split_of: train on "train", pick the best
epoch on "val" R@10, report on "test". Writes OUT/lite.safetensors (fp16) + OUT/lite.json.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.nn import functional as F

from mmtui.encoders import towers
from mmtui.encoders.lite import FORMAT, BertTailLayer, LiteHeads
from mmtui.errors import TrainingError
from mmtui.progress import ProgressCallback, ProgressEvent, check_cancel
from mmtui.catalog.splits import split_of
from mmtui.train.features import TEXT_TAP_LAYER, extract_image_features, extract_text_features

DEFAULT_CONFIG: dict[str, Any] = {
    "dim": 256,
    "image_tower": "lite0",
    "text_tower": "all-MiniLM-L6-v2",
    "image": {"pooled": ["head_mean"], "tail_from": None, "dropout": 0.0},
    "text": {"tail_from": None, "pool": "mean", "dropout": 0.0},
}


def retrieval_metrics(text_vecs: np.ndarray, image_vecs: np.ndarray) -> dict[str, float]:
    """Text i -> image i exact-item retrieval among all images: R@1/5/10 and MRR."""
    sims = text_vecs @ image_vecs.T
    own = np.diag(sims)
    rank = (sims > own[:, None]).sum(axis=1)  # 0 = first; ties count in the query's favour
    return {"r1": float((rank < 1).mean()), "r5": float((rank < 5).mean()), "r10": float((rank < 10).mean()),
            "mrr": float((1.0 / (rank + 1)).mean()), "n": int(len(rank))}


def _to_torch(feats: dict[str, np.ndarray], idx: np.ndarray, device: str) -> dict[str, torch.Tensor]:
    out = {k: torch.from_numpy(np.ascontiguousarray(v[idx])).to(device) for k, v in feats.items()}
    if "mask" in out:  # drop token positions that are padding for the whole batch
        t = max(1, int(out["mask"].sum(1).max()))
        out = {k: (v[:, :t] if k in ("tap", "last", "mask") else v) for k, v in out.items()}
    return out


def _advance_text_tap(txt: dict[str, np.ndarray], start: int, stop: int) -> None:
    """Run the frozen MiniLM layers start..stop-1 over the cached tap, in place (for a shorter text tail)."""
    bert = towers.load_text_tower("cpu")[1]
    layers = [BertTailLayer().load_from_bert(bert.encoder.layer[i]).eval() for i in range(start, stop)]
    out = []
    with torch.inference_mode():
        for s in range(0, len(txt["tap"]), 512):
            h = torch.from_numpy(txt["tap"][s:s + 512].astype(np.float32))
            m = torch.from_numpy(txt["mask"][s:s + 512].astype(np.float32))
            for layer in layers:
                h = layer(h, m)
            out.append(h.numpy().astype(np.float16))
    txt["tap"] = np.concatenate(out)


def _embed(head: torch.nn.Module, feats: dict[str, np.ndarray], idx: np.ndarray, device: str,
           batch: int = 512) -> np.ndarray:
    head.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(idx), batch):
            out.append(F.normalize(head(_to_torch(feats, idx[s:s + batch], device)).float(), dim=-1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def evaluate(heads: LiteHeads, img: dict, txt: dict, idx: np.ndarray, device: str) -> dict[str, float]:
    return retrieval_metrics(_embed(heads.text, txt, idx, device), _embed(heads.image, img, idx, device))


def _select(feats: dict[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    return {k: feats[k] for k in names}


def train_lit(products: Sequence[Any], out_dir: Path, *, cache_dir: Path, epochs: int = 30, batch_size: int = 256,
              lr: float = 1e-3, tail_lr: float = 1e-4, weight_decay: float = 0.05, config: dict | None = None,
              seed: int = 0, device: str | None = None, progress: ProgressCallback | None = None,
              cancel: threading.Event | None = None, patience: int = 8, write: bool = True,
              split_fn: Callable[[str], str] = split_of, select: str = "mrr",
              init: dict[str, torch.Tensor] | None = None) -> dict:
    """Train lite heads on products (.id, .title, .image_path); returns metrics (val best + test).

    config: overrides of DEFAULT_CONFIG (which image features, tower tails, pooling, dim).
    split_fn: product id -> "train" | "val" | "test" (default mmtui.catalog.splits.split_of).
    select: the val metric that picks the best epoch ("mrr", "r10", "r1").
    init: start from these head weights (e.g. the shipped lite heads) instead of fresh ones; tensors whose name or
    shape does not match the new heads (an unfrozen tail, a different feature set) keep their fresh values.
    """
    cfg = _merged_config(config)
    device = device or "cpu"
    towers.set_default_threads()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    items, splits = _usable_items(products, split_fn)
    check_cancel(cancel)
    data = _read_features(items, splits, cfg, Path(cache_dir), device, progress, cancel)
    heads = _new_heads(cfg, data, init).to(device)
    opt, sched, steps = _optimiser(heads, len(data.train), epochs, batch_size, lr, tail_lr, weight_decay)
    t0 = time.time()
    best, best_val, best_epoch, best_state, history = -1.0, None, 0, None, []
    for epoch in range(1, epochs + 1):
        loss = _train_epoch(heads, data, rng.permutation(data.train), steps, batch_size, opt, sched, cancel)
        row, val = _validate(heads, data, epoch, loss, t0)
        history.append(row)
        if progress:
            progress(ProgressEvent("train", epoch, epochs, f"epoch {epoch}/{epochs}", metrics=dict(row)))
        if val[select] > best + 1e-9:  # MRR: less saturated than R@10 on a small val split
            best, best_val, best_epoch = val[select], val, epoch
            best_state = {k: v.detach().cpu().clone() for k, v in heads.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    if best_state is None:
        raise TrainingError("no epoch produced a usable model", "check the catalog's titles and images")
    heads.load_state_dict(best_state)
    test = evaluate(heads, data.img, data.txt, data.test, device) if len(data.test) else {}
    metrics = {"best_epoch": best_epoch, "selected_on": f"val_{select}", "val": best_val, "test": test,
               "history": history,
               "n_train": int(len(data.train)), "n_val": int(len(data.val)), "n_test": int(len(data.test)),
               "train_seconds": round(time.time() - t0, 1)}
    if write:
        save_checkpoint(heads, cfg, metrics, Path(out_dir))
    return metrics


@dataclass
class _Features:
    """The tower features the heads read (per product, cached), and which products are in each split."""
    img: dict[str, np.ndarray]
    txt: dict[str, np.ndarray]
    dims: dict[str, int]  # the image features' widths
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    device: str

    def batch(self, idx: np.ndarray) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        return _to_torch(self.txt, idx, self.device), _to_torch(self.img, idx, self.device)


def _merged_config(config: dict | None) -> dict:
    """DEFAULT_CONFIG with `config`'s overrides (one level of nested dicts merged)."""
    cfg = json.loads(json.dumps(DEFAULT_CONFIG))
    for k, v in (config or {}).items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    return cfg


def _usable_items(products: Sequence[Any], split_fn: Callable[[str], str]) -> tuple[list, np.ndarray]:
    """The products with a picture and a title, and the split of each; too few to train on is an error."""
    items = [p for p in products if getattr(p, "image_path", None) and str(getattr(p, "title", "")).strip()]
    splits = np.array([split_fn(str(p.id)) for p in items])
    if (splits == "train").sum() < 8 or (splits == "val").sum() < 2:
        raise TrainingError(f"too few products with images to train ({len(items)})",
                            "train on a catalog with at least a few hundred products that have images")
    return items, splits


def _read_features(items: list, splits: np.ndarray, cfg: dict, cache_dir: Path, device: str,
                   progress: ProgressCallback | None, cancel: threading.Event | None) -> _Features:
    """The towers' features of every item (cached), those the configured heads read; records their widths,
    the checkpoint format and the preprocessing in `cfg`."""
    img_all = extract_image_features([p.image_path for p in items], cache_dir, variant=cfg["image_tower"],
                                     device=device, progress=progress, cancel=cancel)
    txt_all = extract_text_features([p.title for p in items], cache_dir, device=device, progress=progress,
                                    cancel=cancel)
    image_names = list(cfg["image"]["pooled"])
    if cfg["image"].get("tail_from") is not None:
        image_names.append(f"tap{cfg['image']['tail_from']}")
    img = _select(img_all, image_names)
    txt = _select(txt_all, ["tap", "last", "mask"])
    text_tail = cfg["text"].get("tail_from")
    if text_tail is not None and not TEXT_TAP_LAYER <= int(text_tail) <= 5:
        raise TrainingError(f"text tail_from must be {TEXT_TAP_LAYER}..5, not {text_tail}", "fix the config")
    if text_tail is not None and int(text_tail) > TEXT_TAP_LAYER:
        _advance_text_tap(txt, TEXT_TAP_LAYER, int(text_tail))
    dims = {k: int(v.shape[1]) for k, v in img_all.items() if v.ndim == 2}
    cfg["image_dims"] = dims
    cfg["format"] = FORMAT
    cfg["preprocess"] = towers.PREPROCESS_VERSION
    tr, va, te = (np.flatnonzero(splits == s) for s in ("train", "val", "test"))
    return _Features(img, txt, dims, tr, va, te, device)


def _new_heads(cfg: dict, data: _Features, init: dict[str, torch.Tensor] | None) -> LiteHeads:
    """Fresh heads (with tower tails where the config unfreezes them), pooled features standardised with the
    train split's statistics, then `init`'s tensors where their name and shape match."""
    need_tower = cfg["image"].get("tail_from") is not None
    image_tower = towers.load_image_tower(cfg["image_tower"], "cpu") if need_tower else None
    bert = towers.load_text_tower("cpu")[1] if cfg["text"].get("tail_from") is not None else None
    heads = LiteHeads(cfg, data.dims, image_tower, bert)
    if heads.image.pooled:
        z = np.concatenate([data.img[n][data.train].astype(np.float32) for n in heads.image.pooled], axis=1)
        heads.image.mu.copy_(torch.from_numpy(z.mean(0)))
        heads.image.sd.copy_(torch.from_numpy(z.std(0) + 1e-3))
    if init:
        own = heads.state_dict()
        heads.load_state_dict({k: v for k, v in init.items() if k in own and own[k].shape == v.shape}, strict=False)
    return heads


def _optimiser(heads: LiteHeads, n_train: int, epochs: int, batch_size: int, lr: float, tail_lr: float,
               weight_decay: float):
    """AdamW (tower tails at their own, lower rate) under a one-cycle schedule. Returns (opt, sched, steps)."""
    tail_params = [p for n, p in heads.named_parameters()
                   if n.startswith(("image.tail.", "text.tail.", "image.conv_head.", "image.bn_head."))]
    tail_ids = {id(p) for p in tail_params}
    other = [p for p in heads.parameters() if id(p) not in tail_ids]
    groups = [{"params": other, "lr": lr}]
    if tail_params:
        groups.append({"params": tail_params, "lr": tail_lr})
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay)
    steps_per_epoch = max(1, n_train // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups],
                                                total_steps=epochs * steps_per_epoch, pct_start=0.1)
    return opt, sched, steps_per_epoch


def _train_epoch(heads: LiteHeads, data: _Features, perm: np.ndarray, steps: int, batch_size: int, opt, sched,
                 cancel: threading.Event | None) -> float:
    """One pass over the train split in `perm` order; returns the mean training loss."""
    heads.train()
    losses = []
    cuda = str(data.device).startswith("cuda")  # bf16 autocast there (no loss scaling needed); fp32 on the CPU
    for s in range(steps):
        check_cancel(cancel)
        text, image = data.batch(np.sort(perm[s * batch_size:(s + 1) * batch_size]))
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            zt, zi = heads.text(text), heads.image(image)
        loss = _clip_loss(zt, zi, heads.logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            heads.logit_scale.clamp_(0, np.log(100))
        losses.append(float(loss.detach()))
    return float(np.mean(losses))


def _validate(heads: LiteHeads, data: _Features, epoch: int, train_loss: float, t0: float) -> tuple[dict, dict]:
    """The epoch's history row and its validation metrics; a loss that is not finite is an error."""
    val = evaluate(heads, data.img, data.txt, data.val, data.device)
    with torch.inference_mode():
        heads.eval()
        text, image = data.batch(np.sort(data.val))
        val_loss = float(_clip_loss(heads.text(text), heads.image(image), heads.logit_scale))
    row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "val_r10": val["r10"],
           "val_r1": val["r1"], "val_mrr": val["mrr"], "seconds": round(time.time() - t0, 1)}
    if not np.isfinite(row["train_loss"]):
        raise TrainingError(f"training diverged at epoch {epoch} (loss is not finite)", "lower --lr")
    return row, val


def _clip_loss(t: torch.Tensor, i: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    t = F.normalize(t.float(), dim=-1)
    i = F.normalize(i.float(), dim=-1)
    logits = logit_scale.exp() * t @ i.T
    target = torch.arange(len(t), device=t.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def save_checkpoint(heads: LiteHeads, cfg: dict, metrics: dict, out_dir: Path, name: str = "lite") -> Path:
    """OUT/NAME.safetensors (fp16 weights, fp32 buffers) + OUT/NAME.json (config + metrics). No pickle."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    state = {}
    for k, v in heads.state_dict().items():
        v = v.detach().cpu().contiguous()
        keep32 = k.endswith((".mu", ".sd", "logit_scale")) or "running_" in k or v.dtype != torch.float32
        state[k] = v if keep32 else v.half()
    path = out_dir / f"{name}.safetensors"
    save_file(state, str(path))
    keys = ("best_epoch", "selected_on", "val", "test", "n_train", "n_val", "n_test")
    summary = {k: metrics[k] for k in keys if k in metrics}
    (out_dir / f"{name}.json").write_text(json.dumps({**cfg, "metrics": summary}, indent=1), encoding="utf-8")
    return path
