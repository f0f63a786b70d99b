"""The GPU check (benchmarks/gpu_check.py, scripts/gpu_check.sh): what runs without a GPU - its options, the
no-CUDA exit, the vector comparison and the one-page report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks import gpu_check


def test_without_cuda_it_says_so_and_exits_0(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    assert "no CUDA here" in capsys.readouterr().out


def test_options_are_checked():
    assert gpu_check.parse_args(["--device", "cuda:1", "--products", "64"]).device == "cuda:1"
    for bad in (["--device", "cpu"], ["--products", "5"]):
        with pytest.raises(SystemExit):
            gpu_check.parse_args(bad)


def test_vector_agreement_is_perfect_for_the_same_vectors_and_drops_with_noise():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(40, 16)), rng.normal(size=(40, 16))
    same = gpu_check.vector_agreement(img, txt, img.copy(), txt.copy())
    assert same["n"] == 40 and same["top10_overlap"] == 1.0
    assert same["image_cos_min"] == pytest.approx(1.0) and same["text_cos_mean"] == pytest.approx(1.0)
    noisy = gpu_check.vector_agreement(img, txt, img + rng.normal(scale=1.0, size=img.shape), txt)
    assert noisy["image_cos_min"] < 0.9 and noisy["top10_overlap"] < 1.0


def test_the_page_has_a_row_per_step_and_a_verdict():
    steps = [{"step": "build-index sample_catalog (lite)", "seconds": 41.2, "images_per_s": 310.5, "epoch_s": None,
              "peak_mib": 900, "note": "800 images"},
             {"step": "train adapter (lite)", "seconds": 3.0, "images_per_s": None, "epoch_s": 0.4, "peak_mib": 120,
              "note": ""}]
    good = {"n": 256, "image_cos_min": 0.9991, "image_cos_mean": 0.9998, "text_cos_min": 0.9999,
            "text_cos_mean": 1.0, "top10_overlap": 0.97}
    page = gpu_check.render("Test GPU, 8.0 GiB", steps, good, 123.4)
    assert "Test GPU" in page and "310.5" in page and "0.4" in page and "verdict: OK" in page
    assert len(page.splitlines()) < 25  # one page
    bad = {**good, "top10_overlap": 0.5}
    assert "verdict: CHECK" in gpu_check.render("x", steps, bad, 1.0)
    assert "verdict" not in gpu_check.render("x", steps, None, 1.0)  # a failed run: the steps that ran, no verdict


def test_epoch_time_comes_from_the_newest_history(tmp_path):
    run = tmp_path / "checkpoints" / "finetune-001"
    run.mkdir(parents=True)
    (run / "history.json").write_text(json.dumps([{"epoch": 1, "seconds": 12.5}, {"epoch": 2, "seconds": 20.0}]))
    assert gpu_check.last_epoch_seconds(tmp_path) == pytest.approx(7.5)
    assert gpu_check.last_epoch_seconds(tmp_path / "nothing") is None


def test_a_command_runs_in_this_process_and_its_output_is_captured():
    pytest.importorskip("torch")
    import io

    log = io.StringIO()
    out, seconds, peak = gpu_check.run_cli(["build-index", "--help"], log)
    assert "build-index" in out and "--device" in out and seconds >= 0 and peak >= 0
    assert out in log.getvalue()
    with pytest.raises(Exception):
        gpu_check.run_cli(["no-such-command"], log)
