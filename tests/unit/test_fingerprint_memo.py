"""An unchanged rebuild reuses the remembered lite fingerprint (no torch import); any change of its inputs does not."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmtui.encoders import for_index
from mmtui.config import Settings
from mmtui.encoders import LazyEncoder, fingerprint_memo
from mmtui.store.db import Store

WEIGHTS = Path(for_index.__file__).resolve().parent / "weights" / "lite.safetensors"
pytestmark = pytest.mark.skipif(not WEIGHTS.is_file(), reason="the lite weights are not in this checkout")


def _no_lazy(*args, **kwargs):
    raise AssertionError("the fingerprint was computed again (torch imported) instead of remembered")


def test_second_open_uses_the_memo_and_a_changed_weight_file_does_not(tmp_path, monkeypatch):
    weights = tmp_path / "w" / "lite.safetensors"
    weights.parent.mkdir()
    shutil.copy(WEIGHTS, weights)
    shutil.copy(WEIGHTS.with_suffix(".json"), weights.with_suffix(".json"))
    settings = Settings(data_dir=tmp_path / "data", model=f"lite:{weights}", device="cpu")
    store = Store.open(settings.db_path, create=True)
    first = for_index.open_encoder(settings, store, lazy=True)
    assert isinstance(first, LazyEncoder)
    assert store.get_meta(fingerprint_memo.META_KEY)

    import mmtui.encoders as encoders

    monkeypatch.setattr(encoders, "lazy_encoder", _no_lazy)
    again = for_index.open_encoder(settings, store, lazy=True)
    assert (again.fingerprint, again.dim) == (first.fingerprint, first.dim)

    weights.with_suffix(".json").write_text(weights.with_suffix(".json").read_text() + "\n")  # a new config file
    with pytest.raises(AssertionError, match="computed again"):
        for_index.open_encoder(settings, store, lazy=True)
    store.close()


def test_no_memo_for_other_models():
    assert fingerprint_memo.key("openclip:ViT-B-32", None, None) is None
    assert fingerprint_memo.key("lite", None, "cpu") != fingerprint_memo.key("lite", None, "cuda")
