"""`mmtui judgements`, `mmtui eval --judged / --run / --per-query / --compare-runs / two modes`, and
`mmtui train hybrid|understanding --judged`, through click on tiny_catalog built with the torch-free fake model."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmtui.cli.main import cli
from mmtui.config import Settings
from mmtui.evaluation.runs import query_id
from mmtui.store.judgements import JudgementStore

COLOURS = ("Red", "Blue", "Green", "Black")
KINDS = ("Shirt", "Shoes", "Dress")


def run(*args: str):
    result = CliRunner().invoke(cli, [*args])
    assert result.exit_code == 0, result.output
    return result


def judge_like_a_person(settings: Settings) -> int:
    """What someone would say in the TUI: the product of that colour and kind is relevant, the same kind in another
    colour partly, a product of another kind not; a colour alone: every product of that colour."""
    store = JudgementStore(settings)
    n = 0
    for c, colour in enumerate(COLOURS):
        for k, kind in enumerate(KINDS):
            pid = c * 3 + k + 1
            query = f"{colour.lower()} {kind.lower()}"
            store.set("text", query, str(pid), 2, mode="hybrid", model="fake")
            store.set("text", query, str(((c + 1) % 4) * 3 + k + 1), 1, mode="hybrid", model="fake")
            store.set("text", query, str(c * 3 + (k + 1) % 3 + 1), 0, mode="hybrid", model="fake")
            n += 1
        for k in range(3):
            store.set("text", f"{colour.lower()} clothes", str(c * 3 + k + 1), 2, mode="lexical", model="fake")
        n += 1
    store.set("text", "nothing fits", "1", 0)  # judged, nothing relevant: listed, never scored
    return n


@pytest.fixture
def index(data_dir):
    settings = Settings(data_dir=data_dir, model="fake")
    n = judge_like_a_person(settings)
    return data_dir, n


def test_list_and_export(index, tmp_path):
    data_dir, n = index
    listed = json.loads(run("judgements", "--data-dir", str(data_dir), "--json").stdout)
    assert len(listed["queries"]) == n + 1
    row = next(q for q in listed["queries"] if q["query"] == "red shirt")
    assert (row["judged"], row["relevant"], row["partly"], row["not_relevant"]) == (3, 1, 1, 1)
    out = run("judgements", "--data-dir", str(data_dir)).output
    assert "red shirt" in out and "judged queries" in out
    jsonl, qrels = tmp_path / "j.jsonl", tmp_path / "j.qrels"
    run("judgements", "export", "--data-dir", str(data_dir), "--jsonl", str(jsonl), "--qrels", str(qrels))
    assert len(jsonl.read_text().splitlines()) == n  # "nothing fits" has no relevant result
    assert f"{query_id('text', 'nothing fits')} 0 1 0" in qrels.read_text()
    # the exported file is an ordinary eval file
    from_file = json.loads(run("eval", str(jsonl), "--data-dir", str(data_dir), "--mode", "lexical", "--json").stdout)
    judged = json.loads(run("eval", "--judged", "--data-dir", str(data_dir), "--mode", "lexical", "--json").stdout)
    assert from_file["ndcg@10"] == judged["ndcg@10"] and judged["n_queries"] == n


def test_eval_judged_per_query_and_run_file(index, tmp_path):
    data_dir, n = index
    run_file = tmp_path / "lexical.run"
    body = json.loads(run("eval", "--judged", "--data-dir", str(data_dir), "--mode", "lexical", "--json",
                          "--run", str(run_file)).stdout)
    for key in ("n_queries", "recall@1", "recall@3", "recall@5", "recall@10", "mrr", "ndcg@10", "p@10",
                "latency_ms_p50", "latency_ms_p99", "mode", "model", "judged@10"):
        assert key in body
    rows = {r["label"]: r for r in body["queries"]}
    assert len(rows) == n and rows["red shirt"]["n_judged"] == 3
    assert 0 < rows["red shirt"]["judged@10"] <= 1 and isinstance(rows["red shirt"]["unjudged@10"], list)
    lines = run_file.read_text().splitlines()
    qids = {line.split()[0] for line in lines}
    assert query_id("text", "red shirt") in qids and len(qids) == n
    assert all(len(line.split()) == 6 for line in lines)
    table = run("eval", "--judged", "--data-dir", str(data_dir), "--mode", "lexical", "--per-query").output
    assert "worst nDCG@10 first" in table and "judged@10" in table


def test_two_modes_and_two_run_files_compare_with_a_p_value(index, tmp_path):
    data_dir, n = index
    both = json.loads(run("eval", "--judged", "--data-dir", str(data_dir), "--mode", "lexical", "--mode", "image",
                          "--json").stdout)
    assert (both["a"], both["b"], both["n_queries"]) == ("lexical", "image", n)
    ndcg = both["metrics"]["ndcg@10"]
    assert ndcg["wins_a"] + ndcg["wins_b"] + ndcg["ties"] == n and 0 < ndcg["p_value"] <= 1
    a, b = tmp_path / "a.run", tmp_path / "b.run"
    run("eval", "--judged", "--data-dir", str(data_dir), "--mode", "lexical", "--run", str(a), "--json")
    run("eval", "--judged", "--data-dir", str(data_dir), "--mode", "image", "--run", str(b), "--json")
    files = json.loads(run("eval", "--judged", "--data-dir", str(data_dir), "--compare-runs", str(a), str(b),
                           "--json").stdout)
    assert files["metrics"]["ndcg@10"]["a"] == pytest.approx(ndcg["a"], abs=1e-6)
    assert files["metrics"]["ndcg@10"]["p_value"] == pytest.approx(ndcg["p_value"], abs=1e-6)
    text = run("eval", "--judged", "--data-dir", str(data_dir), "--compare-runs", str(a), str(b)).output
    assert "A wins" in text and "p" in text


def test_suggest_lists_unjudged_results_of_the_pooled_top_10(index):
    data_dir, _ = index
    body = json.loads(run("judgements", "suggest", "--data-dir", str(data_dir), "--rankers", "lexical,image",
                          "-n", "3", "--json").stdout)
    assert 1 <= len(body["suggestions"]) <= 3
    top = body["suggestions"][0]
    store = JudgementStore(Settings(data_dir=data_dir))
    grades = store.grades(top["kind"], top["query"])
    assert top["unjudged"] and all(u["id"] not in grades for u in top["unjudged"])
    assert [u["best_rank"] for u in top["unjudged"]] == sorted(u["best_rank"] for u in top["unjudged"])


def test_train_hybrid_judged_splits_by_query_and_gates_on_the_held_out_side(index):
    data_dir, n = index
    from mmtui.store.db import Store

    before_meta = Store.open(data_dir / "catalog.db").get_meta("hybrid")
    body = json.loads(run("train", "hybrid", "--judged", "--data-dir", str(data_dir), "--json").stdout)
    assert body["n_train"] + body["n_val"] == n and body["n_val"] >= 3
    assert body["promoted"] == (body["after"]["ndcg@10"] > body["before"]["ndcg@10"] + 1e-9)
    meta = Store.open(data_dir / "catalog.db").get_meta("hybrid")
    if body["promoted"]:
        saved = json.loads(meta)
        assert saved["source"] == "judgements" and saved["held_out"]["after"] == body["after"]
    else:
        assert meta == before_meta
    forced = json.loads(run("train", "hybrid", "--judged", "--force", "--data-dir", str(data_dir), "--json").stdout)
    assert forced["promoted"]
    assert json.loads(Store.open(data_dir / "catalog.db").get_meta("hybrid"))["weights"] == forced["weights"]
    table = run("train", "hybrid", "--judged", "--data-dir", str(data_dir)).output
    assert "before (current)" in table and "after (learned)" in table


def test_train_judged_needs_enough_judged_queries(data_dir):
    store = JudgementStore(Settings(data_dir=data_dir))
    store.set("text", "red shirt", "1", 2)
    result = CliRunner().invoke(cli, ["train", "hybrid", "--judged", "--data-dir", str(data_dir)])
    assert result.exit_code != 0 and "judge more queries" in result.output


def test_train_understanding_judged_reports_before_and_after(index):
    data_dir, _ = index
    result = CliRunner().invoke(cli, ["train", "understanding", "--judged", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["source"] == "judgements" and "shopper" in body["val_before"]
    assert body["promoted"] == (body["val"]["shopper"] > body["val_before"]["shopper"] + 1e-9)
