"""The adapter trainer on cached vectors, checkpoints on disk, the numpy projector, and promotion."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mmtui.errors import ModelError  # noqa: E402
from mmtui.train.adapter import train_adapter  # noqa: E402
from mmtui.encoders.checkpoints import list_checkpoints, load_checkpoint, next_name, save_checkpoint  # noqa: E402
from mmtui.train.data import load_pairs, paired_r10  # noqa: E402
from mmtui.encoders.heads import head_tensors, mlp_two_tower, residual_two_tower  # noqa: E402
from mmtui.train.promote import active_name, list_models, promote, use_model  # noqa: E402
from mmtui.encoders.projector import load_projector  # noqa: E402

torch.set_num_threads(2)


def _save_head(settings, model, head, kind, val_r10, **config):
    return save_checkpoint(settings.checkpoints_dir, kind, head_tensors(model),
                           {"head": head, "base_fingerprint": "fakefp", "in_dim": 16, "out_dim": config.pop("out_dim", 16),
                            **config},
                           {"val_r10": val_r10}, [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_r10": val_r10}])


@pytest.mark.parametrize("head", ["residual", "mlp"])
def test_checkpoint_round_trip_matches_torch_and_has_no_pickle(paired_store, head):
    settings, _ = paired_store
    torch.manual_seed(1)
    if head == "residual":
        model = residual_two_tower(16, alpha=0.2)
        torch.nn.init.normal_(model.text.fc2.weight)  # not the identity any more
        torch.nn.init.normal_(model.image.fc2.weight)
        ckpt = _save_head(settings, model, head, "adapter", 0.5, alpha=0.2)
    else:
        model = mlp_two_tower(16)
        ckpt = _save_head(settings, model, head, "mlp", 0.5, out_dim=256)
    model.eval()
    x = torch.randn(5, 16)
    with torch.no_grad():
        want_q, want_p = model(x, x)
    proj = load_projector(settings, ckpt.name)
    assert np.allclose(proj.text(x.numpy()), want_q.numpy(), atol=1e-5)
    assert np.allclose(proj.image(x.numpy()), want_p.numpy(), atol=1e-5)
    assert proj.text(x.numpy()[0]).shape == (want_q.shape[1],)
    files = {p.name for p in ckpt.path.iterdir()}
    assert files == {"model.safetensors", "config.json", "metrics.json", "history.json", "curves.png"}
    assert not any(p.suffix in (".pt", ".pth", ".pkl", ".bin") for p in settings.checkpoints_dir.rglob("*"))
    assert load_checkpoint(settings.checkpoints_dir, ckpt.name).config["head"] == head


def test_versioned_names_and_unknown_name(paired_store):
    settings, _ = paired_store
    root = settings.checkpoints_dir
    assert next_name(root, "adapter") == "adapter-001"
    model = residual_two_tower(16)
    _save_head(settings, model, "residual", "adapter", 0.1, alpha=0.2)
    _save_head(settings, model, "residual", "adapter", 0.2, alpha=0.2)
    assert [c.name for c in list_checkpoints(root)] == ["adapter-001", "adapter-002"]
    assert next_name(root, "adapter") == "adapter-003" and next_name(root, "mlp") == "mlp-001"
    with pytest.raises(ModelError) as err:
        load_projector(settings, "adapter-009")
    assert "adapter-001" in err.value.hint
    assert load_projector(settings, None).is_identity and load_projector(settings, "base").fingerprint == "identity"


def test_promotion_only_on_improvement(paired_store):
    settings, store = paired_store
    data = load_pairs(store, "fakefp")
    base_r10 = paired_r10(data.val.query, data.val.image)
    worse = _save_head(settings, mlp_two_tower(16), "mlp", "mlp", 0.0, out_dim=256)  # random MLP: worse than base
    calls = []
    result = promote(settings, worse.name, 0.0, store=store, reindex=calls.append)
    assert not result.promoted and active_name(store) == "base" and calls == []
    assert result.previous_val_r10 == pytest.approx(base_r10)
    forced = promote(settings, worse.name, 0.0, store=store, force=True, reindex=calls.append)
    assert forced.promoted and forced.forced and active_name(store) == worse.name and calls == [settings]
    # the active model's R@10 is recomputed from the cache: a checkpoint claiming more than it does is promoted
    better = _save_head(settings, residual_two_tower(16), "residual", "adapter", 1.0, alpha=0.2)
    assert promote(settings, better.name, base_r10 + 0.01, store=store, reindex=False).promoted
    assert active_name(store) == better.name
    history = json.loads(store.get_meta("model_history"))
    assert [h["name"] for h in history] == [worse.name, better.name]
    use_model(settings, "base", store=store, reindex=False)
    assert active_name(store) == "base"
    rows = list_models(settings, store)
    assert [r["name"] for r in rows] == ["base", worse.name, better.name] and rows[0]["active"]


def test_train_adapter_two_epochs_learns_and_promotes(paired_store):
    settings, store = paired_store
    events, calls = [], []
    out = train_adapter(settings, epochs=2, batch_size=32, lr=1e-2, store=store, progress=events.append,
                        reindex=calls.append)
    assert set(out) >= {"name", "promoted", "metrics", "history"}
    assert out["name"] == "adapter-001" and len(out["history"]) == 2
    m = out["metrics"]
    assert m["val_r10"] > m["base_val_r10"]
    assert out["promoted"] and active_name(store) == "adapter-001" and calls == [settings]
    assert any(e.stage == "train" and e.metrics for e in events)
    assert m["test"]["recall@10"] >= m["base_test"]["recall@10"]
    cfg = load_checkpoint(settings.checkpoints_dir, "adapter-001").config
    assert cfg["base_fingerprint"] == "fakefp" and cfg["alpha"] == 0.2 and cfg["head"] == "residual"
    # a second, worse run (no learning) is saved but not promoted
    again = train_adapter(settings, epochs=1, batch_size=32, lr=1e-9, logit_lr=1e-9, store=store, reindex=calls.append)
    assert again["name"] == "adapter-002" and not again["promoted"] and active_name(store) == "adapter-001"


def test_train_mlp_two_epochs(paired_store):
    from mmtui.train.mlp import train_mlp

    settings, store = paired_store
    out = train_mlp(settings, epochs=2, batch_size=64, store=store, reindex=False)
    assert out["name"] == "mlp-001" and len(out["history"]) == 2
    assert out["history"][1]["train_loss"] < out["history"][0]["train_loss"]
    proj = load_projector(settings, "mlp-001")
    data = load_pairs(store, "fakefp")
    assert proj.text(data.val.query).shape == (len(data.val), 256)
    assert paired_r10(proj.text(data.val.query), proj.image(data.val.image)) == pytest.approx(out["metrics"]["val_r10"])
    assert out["promoted"] == (out["metrics"]["val_r10"] > out["metrics"]["base_val_r10"])


def test_hard_batches_group_look_alike_products(paired_store):
    from mmtui.train.data import hard_batches, kmeans_labels

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16))
    x = np.repeat(centres, 30, axis=0) + 0.05 * rng.standard_normal((120, 16))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    labels = kmeans_labels(x, 4)
    assert len(set(zip(labels.tolist(), np.repeat(np.arange(4), 30).tolist()))) == 4  # the 4 true groups
    batches = hard_batches(labels, 10, rng)
    assert sorted(np.concatenate(batches).tolist()) == list(range(120))
    assert all(len(set(labels[b].tolist())) == 1 for b in batches)
    settings, store = paired_store
    out = train_adapter(settings, epochs=1, batch_size=32, hard_negatives=0.5, store=store, reindex=False)
    assert out["metrics"]["val_r10"] > 0 and load_checkpoint(settings.checkpoints_dir, out["name"]).config[
        "hyperparameters"]["hard_negatives"] == 0.5


def test_run_summary_lines(paired_store):
    from mmtui.train.promote import run_summary

    settings, store = paired_store
    out = train_adapter(settings, epochs=1, batch_size=32, lr=1e-2, store=store, reindex=False)
    lines = run_summary(out)
    assert lines[0].startswith("adapter-001  saved to ") and lines[2].split()[0] == "1"
    assert any(line.startswith("test split (") for line in lines)
    assert lines[-1].startswith("active model: adapter-001" if out["promoted"] else "not promoted: ")


def test_default_learning_rate_follows_the_base_model(paired_store):
    from mmtui.train.adapter import LITE_LR, OPENCLIP_LR, default_lr

    assert default_lr("lite") == default_lr("lite:/x/model.safetensors") == LITE_LR == 1e-3
    assert default_lr("openclip:ViT-B-32/laion2b_s34b_b79k") == OPENCLIP_LR == 1e-4
    settings, store = paired_store
    hp = lambda out: load_checkpoint(settings.checkpoints_dir, out["name"]).config["hyperparameters"]  # noqa: E731
    assert hp(train_adapter(settings, epochs=1, batch_size=32, store=store, reindex=False))["lr"] == OPENCLIP_LR
    store.set_meta("base_model", "lite")
    assert hp(train_adapter(settings, epochs=1, batch_size=32, store=store, reindex=False))["lr"] == LITE_LR
    assert hp(train_adapter(settings, epochs=1, batch_size=32, lr=5e-4, store=store, reindex=False))["lr"] == 5e-4


def test_the_summary_says_when_the_base_model_was_trained_on_these_pairs():
    from mmtui.train.data import PairedData, PairedSplit
    from mmtui.train.adapter import base_train_r10
    from mmtui.train.promote import run_summary

    rng = np.random.default_rng(0)
    memorised = rng.standard_normal((300, 16)).astype(np.float32)  # training pairs: query == image
    val_q = rng.standard_normal((200, 16)).astype(np.float32)
    val_p = (val_q + 3.0 * rng.standard_normal((200, 16))).astype(np.float32)  # validation pairs: noisy
    split = lambda q, p: PairedSplit(np.arange(len(q)), q, p)  # noqa: E731
    data = PairedData("fp", 16, {"train": split(memorised, memorised), "val": split(val_q, val_p),
                                 "test": split(val_q[:0], val_p[:0])})
    assert base_train_r10(data) == 1.0 and paired_r10(val_q, val_p) < 0.9
    result = {"name": "adapter-001", "promoted": False, "promotion": {"reason": "validation R@10 0.80 does not beat 0.81"},
              "metrics": {"val_r10": 0.80, "base_val_r10": paired_r10(val_q, val_p), "base_train_r10": base_train_r10(data)}}
    assert "already fits the training pairs" in run_summary(result)[-1]
    fresh = {**result, "metrics": {**result["metrics"], "base_train_r10": 0.85}}  # a base new to the catalog
    assert not any("already fits" in line for line in run_summary(fresh))
    promoted = {**result, "promoted": True}
    assert not any("already fits" in line for line in run_summary(promoted))
