"""Bad arguments are refused at the edge with a clear message, never a traceback or a wrong answer:
numeric options, --device, MMTUI_* variables, filters; eval grades and progress under --json; the build
summary names the catalog's encoding."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmtui.cli.main import cli
from mmtui.config import Settings, env_threads
from mmtui.errors import ConfigError, QueryError


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.mark.parametrize("args,message", [
    (["search", "shirt", "-k", "-1"], "-1 is not in the range 1<=x<=10000"),
    (["search", "shirt", "-k", "0"], "0 is not in the range 1<=x<=10000"),
    (["search", "shirt", "-k", "ten"], "'ten' is not a valid integer"),
    (["eval", "q.jsonl", "-k", "0"], "0 is not in the range"),
    (["build-index", ".", "--batch-size", "0"], "0 is not in the range 1<=x<=4096"),
    (["build-index", ".", "--batch-size", "-1"], "-1 is not in the range 1<=x<=4096"),
    (["train", "adapter", "--epochs", "0"], "0 is not in the range 1<=x<=10000"),
    (["train", "adapter", "--lr", "nan"], "'nan' is not a finite number"),
    (["train", "adapter", "--lr", "-1e-3"], "is not in the range 0.0<x<=10.0"),
    (["train", "adapter", "--hard-negatives", "1.5"], "is not in the range 0.0<=x<=1.0"),
    (["train", "adapter", "--batch-size", "1"], "1 is not in the range 2<=x<=65536"),
    (["train", "mlp", "--lr", "inf"], "'inf' is not a finite number"),
    (["train", "finetune", "--weight-decay", "-1"], "is not in the range 0.0<=x<=10.0"),
    (["train", "finetune", "--max-train", "0"], "0 is not in the range x>=2"),
    (["train", "lit", "--patience", "0"], "0 is not in the range x>=1"),
    (["rejects", "--limit", "0"], "0 is not in the range x>=1"),
])
def test_numeric_options_are_checked_by_click(args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_device_and_environment_variables_are_checked(data_dir):
    bad_device = run("search", "shirt", "--data-dir", str(data_dir), "--device", "potato")
    assert bad_device.exit_code == 1 and "--device 'potato' is not a device" in bad_device.output
    assert "cpu, cuda, cuda:N, mps" in bad_device.output
    env_device = run("search", "shirt", "--data-dir", str(data_dir), env={"MMTUI_DEVICE": "gpu0"})
    assert env_device.exit_code == 1 and "MMTUI_DEVICE 'gpu0' is not a device" in env_device.output
    threads = run("search", "shirt", "--data-dir", str(data_dir), env={"MMTUI_THREADS": "abc"})
    assert threads.exit_code == 1 and "MMTUI_THREADS='abc' is not a thread count" in threads.output
    assert "1 to 256" in threads.output
    assert Settings.load(device=" CUDA:1 ").device == "cuda:1"


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5", "999"])
def test_mmtui_threads_must_be_a_thread_count(monkeypatch, value):
    monkeypatch.setenv("MMTUI_THREADS", value)
    with pytest.raises(ConfigError):
        env_threads()
    monkeypatch.setenv("MMTUI_THREADS", " 3 ")
    assert env_threads() == 3


def test_k_is_checked_by_the_library_too(fake_settings, tiny_catalog):
    from mmtui.build.pipeline import build_index
    from mmtui.query.service import SearchService

    with pytest.raises(ConfigError):
        build_index(fake_settings, tiny_catalog, batch_size=-1)
    build_index(fake_settings, tiny_catalog)
    service = SearchService.open(fake_settings)
    for mode in ("hybrid", "lexical", "image"):
        for k in (-1, 0):
            with pytest.raises(QueryError, match="is not a number of results"):
                service.search("shirt", k=k, mode=mode)


@pytest.mark.parametrize("expr,message", [
    ("colour==Black", "has two operators (==)"),
    ("price<nan", "needs a finite number"),
    ("price<=inf", "needs a finite number"),
    ("price<1e999", "needs a finite number"),
    ("flavour=sweet", "unknown filter field 'flavour'"),
    ("colour=", "has no value"),
    ('colour=""', "has no value"),
    ("colour>Black", "does not apply to the text field"),
    ("price~5", "does not apply to the number field"),
    ("price<$5", "price needs a number"),
])
def test_filters_that_would_match_nothing_are_errors(data_dir, expr, message):
    result = run("search", "shirt", "--data-dir", str(data_dir), "--where", expr, "--mode", "lexical")
    assert result.exit_code == 1 and message in result.output and "hint:" in result.output, result.output


def test_eval_grades_over_the_maximum_skip_their_line(data_dir, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join([
        json.dumps({"query": "red shirt", "relevant": {"1": 2}}),
        json.dumps({"query": "blue shirt", "relevant": {"4": 1024}}),
        '{"query": "green shirt", "relevant": {"7": ' + "9" * 400 + "}}",
    ]) + "\n")
    result = run("eval", str(queries), "--data-dir", str(data_dir), "--json", "--mode", "lexical")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n_queries"] == 1 and report["skipped"] == {"bad_grade": 2}


def test_eval_progress_goes_to_stderr_under_json(data_dir, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text("".join(json.dumps({"query": f"shirt {i}", "relevant": {"1": 1}}) + "\n" for i in range(40)))
    result = run("eval", str(queries), "--data-dir", str(data_dir), "--json", "--mode", "lexical")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["n_queries"] == 40  # stdout is pure JSON
    lines = [line for line in result.stderr.splitlines() if line.startswith("evaluating:")]
    assert lines[0] == "evaluating: 1/40 (2%)" and lines[-1] == "evaluating: 40/40 (100%)" and len(lines) >= 10


def test_build_summary_names_the_encoding(tmp_path):
    catalog = tmp_path / "p.csv"
    catalog.write_bytes("id,title,price\n1,\u201cBest\u201d lamp,\u20ac12\n".encode("cp1252"))
    result = run("build-index", str(catalog), "--data-dir", str(tmp_path / "index"), "--model", "fake")
    assert result.exit_code == 0, result.output
    assert "read p.csv as windows-1252" in result.output
    report = json.loads(run("build-index", str(catalog), "--data-dir", str(tmp_path / "index"), "--json").stdout)
    assert report["encodings"] == {"p.csv": "windows-1252"}


def test_a_bad_image_protocol_variable_is_refused_before_the_ui_starts(tmp_path):
    result = run("tui", "--data-dir", str(tmp_path), env={"MMTUI_IMAGES": "bogus"})
    assert result.exit_code == 1 and "MMTUI_IMAGES='bogus' is not one of the choices" in result.output
    assert "halfcell" in result.output
