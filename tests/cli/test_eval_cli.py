"""`mmtui eval` through click: the JSON contract, counted skips, the split protocol."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmtui.cli.main import cli

CONTRACT = {"n_queries", "recall@1", "recall@3", "recall@5", "recall@10", "mrr", "ndcg@10", "p@10",
            "latency_ms_p50", "latency_ms_p99", "mode", "model"}


def test_eval_json_has_the_contract_keys_and_counts_skips(data_dir, tiny_catalog, tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join([
        json.dumps({"query": "red shirt", "relevant": {"1": 2, "2": 1}}),
        json.dumps({"query": "scarf", "relevant": {"99": 1}}),
        json.dumps({"image": str(tiny_catalog / "img" / "5.jpg"), "relevant": {"5": 1}}),
        "{not json",
        json.dumps({"query": "x", "relevant": {}}),
        json.dumps({"query": "y", "relevant": {"no-such-id": 1}}),
    ]) + "\n")
    result = CliRunner().invoke(cli, ["eval", str(queries), "--data-dir", str(data_dir), "--mode", "lexical",
                                      "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert CONTRACT <= set(report)
    assert report["mode"] == "lexical" and report["model"] == "fake"
    assert report["n_queries"] == 2  # the image query cannot run in lexical mode: counted, not averaged
    assert sum(report["skipped"].values()) == 4
    assert report["recall@10"] == pytest.approx(1.0)


def test_eval_table_and_split(data_dir):
    table = CliRunner().invoke(cli, ["eval", "--split", "train", "--data-dir", str(data_dir)])
    assert table.exit_code == 0, table.output
    assert "R@10" in table.output or "recall@10" in table.output
    both = CliRunner().invoke(cli, ["eval", "--data-dir", str(data_dir)])
    assert both.exit_code == 2 and "QUERIES.jsonl" in both.output


def test_missing_queries_file_is_a_clear_error(data_dir, tmp_path):
    result = CliRunner().invoke(cli, ["eval", str(tmp_path / "none.jsonl"), "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "hint:" in result.output and "Traceback" not in result.output


def test_compare_modes_adds_the_shopper_table(data_dir):
    result = CliRunner().invoke(cli, ["eval", "--compare-modes", "--split", "train", "--data-dir", str(data_dir),
                                      "--json"])
    assert result.exit_code == 0, result.output
    shopper = json.loads(result.output)["shopper"]
    labels = [row["label"] for row in shopper["rows"]]
    assert "hybrid, words only (before)" in labels and "hybrid + understanding (default)" in labels
    assert shopper["n_queries"]["shopper"] > 0 and shopper["n_queries"]["catalog"] > 0
    default = next(r for r in shopper["rows"] if r["label"] == "hybrid + understanding (default)")
    assert 0 <= default["catalog/p@10"] <= 1 and 0 <= default["shopper/ndcg@10"] <= 1
    table = CliRunner().invoke(cli, ["eval", "--compare-modes", "--split", "train", "--data-dir", str(data_dir)])
    assert table.exit_code == 0 and "shopper-phrased queries" in table.output
