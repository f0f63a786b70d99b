"""The end-to-end tests' one build of the real sample_catalog with the real default model (the slowest step of the
suite, so it is made once per session; the tests only read it, and building it again changes nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[2] / "sample_catalog"


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> Path:
    """sample_catalog built by `mmtui build-index` with the default model: its data dir."""
    from click.testing import CliRunner

    from mmtui.cli.main import cli

    if not (SAMPLE / "styles.csv").exists():
        pytest.skip("sample_catalog is not here")
    d = tmp_path_factory.mktemp("e2e") / "index"
    result = CliRunner().invoke(cli, ["build-index", str(SAMPLE), "--data-dir", str(d), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["model"] == "lite" and report["products"] == 800 and report["encoded_images"] == 800
    return d
