"""The command line: build-index and search through click, with the torch-free fake model."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from mmtui.cli.main import cli


@pytest.fixture
def built(tiny_catalog, tmp_path):
    data_dir = tmp_path / "index"
    result = CliRunner().invoke(cli, ["build-index", str(tiny_catalog), "--data-dir", str(data_dir),
                                      "--model", "fake"])
    assert result.exit_code == 0, result.output
    return data_dir, result.output


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_build_prints_summary_and_rejects(built):
    _, output = built
    assert "Indexed 13 products (12 with images)" in output
    assert "image_missing" in output and "missing_id" in output


def test_second_build_says_nothing_to_encode(built, tiny_catalog):
    data_dir, _ = built
    result = run("build-index", str(tiny_catalog), "--data-dir", str(data_dir), "--json")
    report = json.loads(result.output)
    assert report["encoded_images"] == 0 and report["encoded_texts"] == 0 and report["model"] == "fake"


def test_search_text_table(built):
    data_dir, _ = built
    result = run("search", "red shirt", "--data-dir", str(data_dir), "--mode", "lexical", "-k", "3")
    assert result.exit_code == 0, result.output
    assert "Red Shirt for men" in result.output and "lexical search: red shirt" in result.output


def test_search_json_contract(built):
    data_dir, _ = built
    result = run("search", "blue dress", "--data-dir", str(data_dir), "--json", "-k", "4")
    payload = json.loads(result.output)
    assert payload["query"] == "blue dress" and payload["mode"] == "hybrid"
    assert len(payload["hits"]) == 4
    assert {"id", "title", "score"} <= set(payload["hits"][0])
    assert isinstance(payload["hits"][0]["id"], str)


def test_search_by_image(built, tiny_catalog):
    data_dir, _ = built
    result = run("search", "--image", str(tiny_catalog / "img" / "7.jpg"), "--data-dir", str(data_dir), "--json")
    payload = json.loads(result.output)
    assert payload["mode"] == "image" and payload["hits"][0]["id"] == "7"


def test_where_filter_and_bad_filter(built):
    data_dir, _ = built
    ok = run("search", "shirt", "--data-dir", str(data_dir), "--where", "colour=Green", "--json")
    assert {h["colour"] for h in json.loads(ok.output)["hits"]} == {"Green"}
    bad = run("search", "shirt", "--data-dir", str(data_dir), "--where", "flavour=sweet")
    assert bad.exit_code == 1 and "unknown filter field 'flavour'" in bad.output and "hint:" in bad.output


def test_errors_are_messages_not_tracebacks(tmp_path, built):
    data_dir, _ = built
    missing = run("search", "shirt", "--data-dir", str(tmp_path / "empty"))
    assert missing.exit_code == 1 and "run `mmtui build-index CATALOG` first" in missing.output
    assert "Traceback" not in missing.output
    nothing = run("search", "--data-dir", str(data_dir))
    assert nothing.exit_code == 2 and "either TEXT or --image" in nothing.output
    other = run("search", "shirt", "--data-dir", str(data_dir), "--model", "openclip:ViT-B-32/openai")
    assert other.exit_code == 1 and "built with model 'fake'" in other.output


def test_rejects_command(built):
    data_dir, _ = built
    payload = json.loads(run("rejects", "--data-dir", str(data_dir), "--json").output)
    assert payload["counts"] == {"image_missing": 1, "missing_id": 1}
    assert {r["reason"] for r in payload["rejects"]} == {"image_missing", "missing_id"}


def test_env_var_sets_the_data_dir(built, monkeypatch):
    data_dir, _ = built
    monkeypatch.setenv("MMTUI_DATA_DIR", str(data_dir))
    assert run("search", "shirt", "--mode", "lexical").exit_code == 0


def test_help_imports_neither_torch_nor_textual():
    code = ("import sys; from click.testing import CliRunner; from mmtui.cli.main import cli; "
            "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0; "
            "print(sorted(m for m in ('torch', 'textual', 'open_clip') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_search_imports_no_build_code(built):
    """The TUI opens the search service while Textual draws its first frame: building code (catalog readers,
    image download, PIL decoding paths) is not part of it."""
    data_dir, _ = built
    code = ("import sys; from pathlib import Path; from mmtui.config import Settings; "
            "from mmtui.query.service import SearchService; "
            f"s = SearchService.open(Settings(data_dir=Path({str(data_dir)!r}), model='fake')); "
            "r = s.search('shirt', mode='hybrid'); assert r.hits; "
            "print(sorted(m for m in ('mmtui.build', 'mmtui.catalog.readers', 'mmtui.catalog.images', 'textual') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_search_shows_what_it_understood_and_can_leave_it_out(built):
    data_dir, _ = built
    result = run("search", "shirt in red", "--data-dir", str(data_dir), "--json", "-k", "3")
    payload = json.loads(result.output)
    assert payload["understood"]["parts"]["kind"] == {"Shirt": 1.0}
    assert payload["understood"]["label"] == "kind: Shirt · colour: Red"
    table = run("search", "shirt in red", "--data-dir", str(data_dir), "-k", "3")
    assert "understood: kind: Shirt · colour: Red" in table.output
    literal = json.loads(run("search", "shirt in red", "--data-dir", str(data_dir), "--json", "--literal").output)
    assert "understood" not in literal
    dropped = json.loads(run("search", "shirt in red", "--data-dir", str(data_dir), "--json", "--drop", "kind").output)
    assert "kind" not in dropped["understood"]["parts"]


def test_a_part_that_leaves_nothing_is_named_and_left_out(built):
    data_dir, _ = built
    payload = json.loads(run("search", "shirt under 0.001", "--data-dir", str(data_dir), "--json", "-k", "3").output)
    assert payload["hits"] and payload["understood"]["price"] is None
    assert payload["notes"] == ["no product matches 'under 0.001': results without the price"]
    cheap = json.loads(run("search", "shirt under 8", "--data-dir", str(data_dir), "--json", "-k", "3").output)
    assert cheap["notes"] == ["no Shirt matches 'under 8': results without the price"]  # not the 5-euro scarf
    assert cheap["hits"][0]["title"].endswith("Shirt for men") and cheap["understood"]["price"] is None
    table = run("search", "shirt", "--where", "price<0.001", "--data-dir", str(data_dir), "-k", "3").output
    assert "No results for 'shirt'" in table and "the filter price<0.001 matches no product" in table
    assert "hybrid search: shirt" in table  # and the results without that filter follow
    scripted = json.loads(run("search", "shirt", "--where", "price<0.001", "--data-dir", str(data_dir),
                              "--json").output)
    assert scripted["hits"] == [] and scripted["notes"] == ["the filter price<0.001 matches no product"]
