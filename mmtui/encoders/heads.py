"""Trainable heads that map cached base-encoder vectors into the search space.

- ResidualAdapter: y = x + alpha * f(x), f zero-initialised at its output, so a new adapter is exactly the
  identity and training starts from the base model's own alignment.
- MLPTower: Linear -> ReLU -> Dropout -> Linear, a fresh projection (the baseline heads).
- TwoTower: one head for the query/text side, one for the image side, plus the learnable logit scale.

Every head's weights are plain named tensors, so the numpy Projector can apply them without torch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

DEFAULT_ALPHA = 0.2
DEFAULT_TEMPERATURE = 0.07


class ResidualAdapter(nn.Module):
    """y = x + alpha * f(x), with f = Linear(dim, hidden) -> ReLU -> Linear(hidden, dim).

    The last Linear starts at zero (weights and bias), so at initialisation y == x exactly.
    """

    def __init__(self, dim: int, hidden: int | None = None, alpha: float = DEFAULT_ALPHA, dropout: float = 0.0):
        super().__init__()
        self.dim = dim
        self.hidden = hidden or dim
        self.alpha = float(alpha)
        self.fc1 = nn.Linear(dim, self.hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(self.hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.alpha * self.fc2(self.drop(F.relu(self.fc1(x))))


class MLPTower(nn.Module):
    """Linear(in_dim, hidden) -> ReLU -> Dropout(p) -> Linear(hidden, out_dim): one side of the baseline."""

    def __init__(self, in_dim: int, hidden: int = 512, out_dim: int = 256, dropout: float = 0.2):
        super().__init__()
        self.in_dim, self.hidden, self.out_dim = in_dim, hidden, out_dim
        self.fc1 = nn.Linear(in_dim, hidden)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class LogitScale(nn.Module):
    """A learnable log inverse temperature (CLIP style), clamped so exp() stays <= max_scale."""

    def __init__(self, temperature: float = DEFAULT_TEMPERATURE, max_scale: float = 100.0):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.max_log = math.log(max_scale)

    def forward(self) -> torch.Tensor:
        return self.log_scale.clamp(max=self.max_log).exp()


class TwoTower(nn.Module):
    """A text-side head and an image-side head; outputs are L2-normalised."""

    def __init__(self, text: nn.Module, image: nn.Module, temperature: float = DEFAULT_TEMPERATURE):
        super().__init__()
        self.text = text
        self.image = image
        self.logit_scale = LogitScale(temperature)

    def forward(self, q: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.normalize(self.text(q), dim=-1), F.normalize(self.image(p), dim=-1)

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("logit_scale.")]


def residual_two_tower(dim: int, alpha: float = DEFAULT_ALPHA, hidden: int | None = None,
                       dropout: float = 0.0) -> TwoTower:
    return TwoTower(ResidualAdapter(dim, hidden, alpha, dropout), ResidualAdapter(dim, hidden, alpha, dropout))


def mlp_two_tower(in_dim: int, hidden: int = 512, out_dim: int = 256, dropout: float = 0.2) -> TwoTower:
    return TwoTower(MLPTower(in_dim, hidden, out_dim, dropout), MLPTower(in_dim, hidden, out_dim, dropout))


def head_tensors(model: TwoTower) -> dict[str, "torch.Tensor"]:
    """The weights to save: text.fc1.weight, ..., image.fc2.bias, logit_scale.log_scale (detached, CPU, fp32)."""
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
