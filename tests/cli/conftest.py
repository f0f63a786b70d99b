"""Fixtures shared by the command-line tests."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mmtui.cli.main import cli


@pytest.fixture
def data_dir(tiny_catalog, tmp_path):
    """tiny_catalog built with the fake model by the build-index command."""
    d = tmp_path / "index"
    result = CliRunner().invoke(cli, ["build-index", str(tiny_catalog), "--data-dir", str(d), "--model", "fake"])
    assert result.exit_code == 0, result.output
    return d
