"""Heads, losses and the training loop: identity at init, losses that fall, a pure cosine schedule."""

from __future__ import annotations

import threading

import pytest

torch = pytest.importorskip("torch")

from mmtui.progress import Cancelled  # noqa: E402
from mmtui.encoders.heads import MLPTower, ResidualAdapter, mlp_two_tower, residual_two_tower  # noqa: E402
from mmtui.train.loop import LoopConfig, fit, get_lr  # noqa: E402
from mmtui.train.losses import info_nce, margin_ranking, sigmoid_loss  # noqa: E402

torch.set_num_threads(2)


def test_residual_adapter_is_identity_at_init():
    torch.manual_seed(0)
    x = torch.randn(8, 32)
    adapter = ResidualAdapter(32, alpha=0.2)
    assert torch.allclose(adapter(x), x, atol=1e-6)
    model = residual_two_tower(32)
    q, p = model(x, x)
    assert torch.allclose(q, torch.nn.functional.normalize(x, dim=-1), atol=1e-6)


def test_mlp_tower_shapes():
    tower = MLPTower(24)
    assert tower(torch.randn(5, 24)).shape == (5, 256)
    assert [m.p for m in tower.modules() if isinstance(m, torch.nn.Dropout)] == [0.2]


def _pairs(n=32, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, dim, generator=g)
    p = q @ torch.randn(dim, dim, generator=g)
    return q, p


@pytest.mark.parametrize("which", ["info_nce", "margin", "sigmoid"])
def test_loss_falls_on_tiny_overfit(which):
    torch.manual_seed(0)
    q, p = _pairs()
    model = residual_two_tower(16, alpha=1.0) if which != "margin" else mlp_two_tower(16, hidden=32, out_dim=16,
                                                                                        dropout=0.0)
    bias = torch.nn.Parameter(torch.tensor(-5.0))

    def loss():
        a, b = model(q, p)
        if which == "info_nce":
            return info_nce(a, b, model.logit_scale())
        if which == "margin":
            return margin_ranking(a, b)
        return sigmoid_loss(a, b, model.logit_scale(), bias)

    opt = torch.optim.AdamW([*model.parameters(), bias], lr=1e-2)
    first = float(loss().detach())
    for _ in range(60):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert float(loss().detach()) < 0.5 * first


def test_info_nce_prefers_matching_pairs():
    x = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    assert info_nce(x, x, 10.0) < info_nce(x, x.roll(1, 0), 10.0)


def test_get_lr_warmup_then_cosine():
    assert get_lr(0, 1.0, 100, warmup_steps=10) == pytest.approx(0.1)
    assert get_lr(9, 1.0, 100, warmup_steps=10) == pytest.approx(1.0)
    assert get_lr(10, 1.0, 100, warmup_steps=10) == pytest.approx(1.0)
    assert get_lr(55, 1.0, 100, warmup_steps=10) == pytest.approx(0.5)
    assert get_lr(100, 1.0, 100, warmup_steps=10, min_ratio=0.1) == pytest.approx(0.1)
    lrs = [get_lr(s, 1.0, 100, warmup_steps=10) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def _tiny_fit(val_r10s, patience=None, cancel=None):
    model = residual_two_tower(4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    q = torch.randn(8, 4)
    scores = iter(val_r10s)
    events = []
    result = fit(model, opt, batches=lambda epoch: [slice(0, 8)], steps_per_epoch=1,
                 loss_fn=lambda s: info_nce(*model(q[s], q[s]), model.logit_scale()),
                 validate=lambda: {"val_loss": 0.0, "val_r10": next(scores)},
                 config=LoopConfig(epochs=len(val_r10s), patience=patience), progress=events.append, cancel=cancel)
    return result, events


def test_fit_keeps_best_epoch_and_stops_early():
    result, events = _tiny_fit([0.2, 0.5, 0.4, 0.3, 0.1, 0.9], patience=2)
    assert result.best_epoch == 2 and result.best_val_r10 == 0.5
    assert result.stopped_early and len(result.history) == 4
    assert [e.metrics["epoch"] for e in events if e.metrics] == [1, 2, 3, 4]
    assert {"epoch", "train_loss", "val_loss", "val_r10"} <= set(result.history[0])


def test_fit_can_be_cancelled():
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        _tiny_fit([0.1, 0.2], cancel=cancel)
