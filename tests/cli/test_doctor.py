"""`mmtui doctor`: what mmtui sees, as text and as JSON."""

from __future__ import annotations

import json

from click.testing import CliRunner

from mmtui.cli.doctor import gather
from mmtui.cli.main import cli
from mmtui.config import Settings
from mmtui.tui.terminal import parse_answers


def test_doctor_json_reports_the_index_torch_and_the_image_protocol(data_dir, monkeypatch):
    monkeypatch.delenv("MMTUI_IMAGES", raising=False)
    result = CliRunner().invoke(cli, ["doctor", "--data-dir", str(data_dir), "--json", "--no-terminal"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["data_dir"]["index"] and report["data_dir"]["products"] == 13
    assert report["data_dir"]["model"] == "fake"
    assert report["packages"]["textual-image"]
    assert report["torch"]["query_threads"] >= 1
    assert report["terminal"]["protocol"] == "halfcell" and not report["terminal"]["answers"]["asked"]


def test_doctor_says_which_protocol_and_why_from_the_terminal_answers(tmp_path, monkeypatch):
    monkeypatch.delenv("MMTUI_IMAGES", raising=False)
    kitty_0_26 = "\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.26.5)\x1b\\\x1b[?62;c"
    report = gather(Settings(data_dir=tmp_path / "none"), lambda: parse_answers(kitty_0_26))
    term = report["terminal"]
    assert term["protocol"] == "halfcell" and term["terminal"] == "kitty 0.26.5"
    assert "Unicode placeholders" in term["reason"]
    assert term["answers"]["xtversion"] == "kitty(0.26.5)"
    assert not report["data_dir"]["index"] and "build-index" in report["data_dir"]["note"]


def test_doctor_text_names_the_forced_protocol(tmp_path, monkeypatch):
    monkeypatch.setenv("MMTUI_IMAGES", "sixel")
    result = CliRunner().invoke(cli, ["doctor", "--data-dir", str(tmp_path / "none")])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # rich wraps at the console width
    assert "images sixel — MMTUI_IMAGES=sixel chose it" in text
    assert "no index here" in text
