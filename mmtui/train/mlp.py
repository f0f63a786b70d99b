"""`mmtui train mlp`: fresh two-tower heads, the baseline the adapter is compared with.

Two fresh towers (Linear in->512, ReLU, Dropout 0.2, Linear ->256) on the cached vectors, trained with a
margin ranking loss over in-batch negatives. It throws away the base model's alignment, so on a small
catalog it is expected to do worse than the base model; it is saved as mlp-NNN and promoted only if it wins.
"""

from __future__ import annotations

import threading

from mmtui.config import Settings
from mmtui.progress import ProgressCallback
from mmtui.store.db import Store
from mmtui.train.adapter import run_head_training
from mmtui.encoders.heads import mlp_two_tower
from mmtui.train.losses import margin_ranking
from mmtui.train.promote import Reindex


def train_mlp(settings: Settings, *, epochs: int = 10, batch_size: int = 256, lr: float = 1e-3,
              weight_decay: float = 1e-2, hidden: int = 512, out_dim: int = 256, dropout: float = 0.2,
              margin: float = 0.2, patience: int | None = None, seed: int = 0, force: bool = False,
              device: str | None = None, progress: ProgressCallback | None = None,
              cancel: threading.Event | None = None, store: Store | None = None,
              reindex: bool | Reindex = True) -> dict:
    """Train the two-tower MLP baseline; returns {"name", "promoted", "metrics", "history", "path", "promotion"}."""
    hparams = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
               "hidden": hidden, "out_dim": out_dim, "dropout": dropout, "margin": margin, "patience": patience,
               "seed": seed, "loss": "margin_ranking"}
    return run_head_training(
        settings, kind="mlp", head="mlp",
        build=lambda dim: mlp_two_tower(dim, hidden=hidden, out_dim=out_dim, dropout=dropout),
        loss=lambda q, p, model: margin_ranking(q, p, margin),
        hparams=hparams, config={"hidden": hidden, "dropout": dropout}, force=force, device=device,
        progress=progress, cancel=cancel, store=store, reindex=reindex)
