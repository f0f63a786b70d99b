"""Fine-tuning a tiny random open_clip model on CPU: two steps, a loadable safetensors checkpoint, promotion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from mmtui.config import Settings  # noqa: E402
from mmtui.store.db import Store  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "openclip"
COLOURS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (20, 40, 220), "black": (10, 10, 10),
           "white": (250, 250, 250), "yellow": (240, 220, 10)}
torch.set_num_threads(2)


@pytest.fixture
def image_store(tmp_path, monkeypatch, make_jpeg):
    """12 products with images: 8 train, 4 val (splits set directly so the test does not depend on hashing)."""
    monkeypatch.setenv("MMTUI_OPENCLIP_CONFIGS", str(CONFIGS))
    settings = Settings(data_dir=tmp_path / "idx", model="openclip:mmtui-tiny", device="cpu")
    store = Store.open(settings.db_path, create=True)
    (tmp_path / "img").mkdir()
    rows = []
    for i in range(12):
        colour = list(COLOURS)[i % len(COLOURS)]
        path = tmp_path / "img" / f"{i}.jpg"
        path.write_bytes(make_jpeg(COLOURS[colour], (40, 48)))
        rows.append({"rowid": i + 1, "id": f"p{i}", "title": f"{colour} shirt number {i}", "image_path": str(path),
                     "image_status": "ok", "split": "train" if i < 8 else "val"})
    rows[3]["image_path"] = str(tmp_path / "img" / "missing.jpg")  # an unreadable image is skipped, not fatal
    store.upsert_products(rows)
    store.set_meta("base_model", "openclip:mmtui-tiny")
    return settings, store


def test_finetune_two_steps_writes_a_loadable_checkpoint(image_store):
    from mmtui.encoders import load_encoder
    from mmtui.train.finetune import train_finetune
    from mmtui.train.promote import active_name

    settings, store = image_store
    before = load_encoder("openclip:mmtui-tiny", device="cpu")
    calls, events = [], []
    out = train_finetune(settings, store, epochs=1, batch_size=4, lr=1e-3, store=store, force=True,
                         reindex=calls.append, progress=events.append)
    assert out["name"] == "finetune-001" and len(out["history"]) == 1
    assert [e.done for e in events if e.stage == "train" and not e.metrics] == [1, 2]  # 7 readable pairs, batch 4
    ckpt_dir = Path(out["path"])
    assert {p.name for p in ckpt_dir.iterdir()} >= {"model.safetensors", "config.json", "history.json",
                                                     "metrics.json", "curves.png", "mmtui-tiny.json"}
    assert not list(ckpt_dir.glob("*.pt")) and not list(ckpt_dir.glob("*.bin"))
    # `--model openclip:mmtui-tiny --checkpoint FILE` loads it, and its vectors differ from the untrained model's
    after = load_encoder(out["model"], checkpoint=Path(out["checkpoint"]), device="cpu")
    from safetensors.torch import load_file

    saved = load_file(out["checkpoint"])
    assert all(torch.equal(after.model.state_dict()[k], v) for k, v in saved.items())
    assert torch.equal(saved["logit_scale"], before.model.state_dict()["logit_scale"])  # frozen
    texts = ["red shirt number 1"]
    assert not np.allclose(after.encode_texts(texts), before.encode_texts(texts), atol=1e-4)
    assert out["promoted"] and active_name(store) == "finetune-001" and calls == [settings]
    assert 0.0 <= out["metrics"]["val_r10"] <= 1.0


def test_finetune_refuses_a_model_it_cannot_tune(image_store):
    from mmtui.errors import TrainingError
    from mmtui.train.finetune import train_finetune

    settings, store = image_store
    with pytest.raises(TrainingError) as err:
        train_finetune(Settings(data_dir=settings.data_dir, model="fake"), store, epochs=1)
    assert "openclip:ARCH" in err.value.hint


def test_finetune_lite_unfreezes_tails_through_the_lit_trainer(image_store, monkeypatch):
    """The lite path's wiring (the LiT trainer itself is tested with lite): tails unfrozen, files where
    LiteEncoder reads them, promotion."""
    import json

    import mmtui.encoders.lite as lite
    import mmtui.train.lit as lit
    from mmtui.train.finetune import train_finetune
    from mmtui.train.promote import active_name

    settings, store = image_store
    store.set_meta("base_model", "lite")
    seen = {}

    def fake_train_lit(products, out_dir, **kw):
        seen.update(kw, products=products)
        out_dir.mkdir(parents=True)
        from safetensors.torch import save_file

        save_file({"text.proj.weight": torch.zeros(2, 2, dtype=torch.float16)}, str(out_dir / "lite.safetensors"))
        (out_dir / "lite.json").write_text(json.dumps({"format": lite.FORMAT, "dim": 2}))
        hist = [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.1, "val_r10": 0.5, "val_r1": 0.1}]
        return {"best_epoch": 1, "val": {"r1": 0.1, "r5": 0.3, "r10": 0.5, "mrr": 0.2, "n": 4}, "test": {},
                "history": hist, "n_train": 7, "n_val": 4, "n_test": 0}

    monkeypatch.setattr(lit, "train_lit", fake_train_lit)
    current = {"text.proj.weight": torch.ones(2, 2)}  # the current model's weights: a fine-tune starts from them
    monkeypatch.setattr(lite, "read_checkpoint", lambda w: ({"dim": 2, "image": {"pooled": ["head_mean"]},
                                                             "text": {"pool": "mean"}, "metrics": {}}, current, b""))
    calls = []
    out = train_finetune(Settings(data_dir=settings.data_dir), store, epochs=2, lr=1e-4, store=store,
                         reindex=calls.append)
    assert seen["config"]["image"]["tail_from"] == 12 and seen["config"]["text"]["tail_from"] == 4
    assert seen["config"]["image"]["pooled"] == ["head_mean"] and seen["tail_lr"] == seen["lr"] == 1e-4
    assert seen["init"] is current
    assert len(seen["products"]) == 12 and seen["split_fn"]("p9") == "val"
    path = Path(out["path"])
    assert (path / "model.safetensors").is_file() and json.loads((path / "model.json").read_text())["dim"] == 2
    assert out["model"] == f"lite:{path / 'model.safetensors'}" and out["metrics"]["val_r10"] == 0.5
    assert out["promoted"] and active_name(store) == out["name"] and calls == [Settings(data_dir=settings.data_dir)]
    assert not list(settings.checkpoints_dir.glob(".*"))  # the trainer's work folder is gone
    train_finetune(Settings(data_dir=settings.data_dir), store, store=store, reindex=False)  # lite's own defaults
    assert (seen["epochs"], seen["batch_size"], seen["weight_decay"], seen["patience"]) == (20, 256, 0.05, 8)
    train_finetune(Settings(data_dir=settings.data_dir), store, tails="text", store=store, reindex=False)
    assert seen["config"]["image"]["tail_from"] is None and seen["config"]["text"]["tail_from"] == 4
