"""`mmtui train adapter`, `models`, `use` through click, on sample_catalog with the torch-free fake model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmtui.cli.main import cli

SAMPLE = Path(__file__).resolve().parents[2] / "sample_catalog"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("train") / "index"
    result = CliRunner().invoke(cli, ["build-index", str(SAMPLE), "--data-dir", str(d), "--model", "fake", "--json"])
    assert result.exit_code == 0, result.output
    return d


def test_adapter_run_models_and_use(data_dir):
    run = CliRunner().invoke(cli, ["train", "adapter", "--epochs", "2", "--data-dir", str(data_dir),
                                   "--device", "cpu"])
    assert run.exit_code == 0, run.output
    assert "adapter-001" in run.output and "val R@10" in run.output and "test split" in run.output
    rows = json.loads(CliRunner().invoke(cli, ["models", "--data-dir", str(data_dir), "--json"]).output)
    assert [r["name"] for r in rows] == ["base", "adapter-001"]
    switched = CliRunner().invoke(cli, ["use", "adapter-001", "--data-dir", str(data_dir)])
    assert switched.exit_code == 0 and "active model: adapter-001" in switched.output
    rows = json.loads(CliRunner().invoke(cli, ["models", "--data-dir", str(data_dir), "--json"]).output)
    assert [r["name"] for r in rows if r["active"]] == ["adapter-001"]
    search = CliRunner().invoke(cli, ["search", "shirt", "--data-dir", str(data_dir), "--json"])
    assert search.exit_code == 0 and json.loads(search.output)["hits"]
    back = CliRunner().invoke(cli, ["use", "base", "--data-dir", str(data_dir)])
    assert back.exit_code == 0


def test_unknown_model_name_is_a_clear_error(data_dir):
    result = CliRunner().invoke(cli, ["use", "adapter-999", "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "hint:" in result.output and "Traceback" not in result.output


def test_train_lit_needs_a_lite_index(data_dir):
    result = CliRunner().invoke(cli, ["train", "lit", "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "lite model's heads" in result.output and "hint:" in result.output
