"""Contrastive losses over a batch of matching (query, product) pairs; row i of q matches row i of p.

All take L2-normalised embeddings.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def info_nce(q: torch.Tensor, p: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP loss): cross-entropy query->product and product->query, averaged."""
    logits = logit_scale * q @ p.t()
    labels = torch.arange(q.shape[0], device=q.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def margin_ranking(q: torch.Tensor, p: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Hinge loss: each matching pair must beat every in-batch non-matching pair by `margin`, both directions."""
    sims = q @ p.t()
    pos = sims.diag()
    n = sims.shape[0]
    if n < 2:
        return sims.sum() * 0.0
    off = ~torch.eye(n, dtype=torch.bool, device=sims.device)
    q2p = F.relu(margin - pos[:, None] + sims)[off]
    p2q = F.relu(margin - pos[None, :] + sims)[off]
    return 0.5 * (q2p.mean() + p2q.mean())


def sigmoid_loss(q: torch.Tensor, p: torch.Tensor, logit_scale: torch.Tensor | float,
                 logit_bias: torch.Tensor | float = 0.0) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss: every (i, j) is a binary match / no-match decision."""
    logits = logit_scale * q @ p.t() + logit_bias
    labels = 2.0 * torch.eye(q.shape[0], device=q.device, dtype=logits.dtype) - 1.0
    return -F.logsigmoid(labels * logits).sum() / q.shape[0]
