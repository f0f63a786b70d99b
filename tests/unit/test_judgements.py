"""The judgements store (DATA_DIR/judgements.db), judged queries as eval sets, runs, pooling and comparisons."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from pathlib import Path

import pytest

from mmtui.config import Settings
from mmtui.errors import EvalFileError, StoreError
from mmtui.evaluation import judged, runs
from mmtui.evaluation.evaluate import load_queries, run_eval
from mmtui.query.service import Hit, SearchResult
from mmtui.store.judgements import JudgementStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


def test_judgements_are_kept_one_row_per_query_and_product(settings):
    store = JudgementStore(settings)
    assert store.count() == 0 and store.all() == {} and not store.path.exists()  # reading makes no file
    store.set("text", "red dress", "1005", 2, mode="hybrid", model="lite", judge="ann")
    store.set("text", "red dress", "1009", 0, mode="hybrid", model="lite")
    store.set("text", "red dress", "1005", 1, mode="lexical", model="lite+adapter-1", judge="bob")  # re-judged
    store.set("like", "1005", "1003", 2)
    assert store.grades("text", "red dress") == {"1005": 1, "1009": 0}
    row = next(r for r in store.rows() if r["product_id"] == "1005")
    assert (row["grade"], row["judge"], row["mode"], row["model"]) == (1, "bob", "lexical", "lite+adapter-1")
    assert row["judged_at"]
    store.set("text", "red dress", "1009", None)  # forgotten
    assert store.grades("text", "red dress") == {"1005": 1}
    store.close()
    # another process (a new store object) sees everything: it was on disk when set() returned
    again = JudgementStore(settings)
    assert again.all() == {("text", "red dress"): {"1005": 1}, ("like", "1005"): {"1003": 2}}


def test_bad_grades_and_kinds_are_refused(settings):
    store = JudgementStore(settings)
    with pytest.raises(StoreError):
        store.set("text", "q", "1", 3)
    with pytest.raises(StoreError):
        store.set("audio", "q", "1", 1)
    with pytest.raises(StoreError):
        store.set("text", "  ", "1", 1)


def test_judgements_survive_a_rebuild_of_the_catalog(settings):
    """They live in their own file, keyed by product id: deleting catalog.db (a rebuild from scratch) keeps them."""
    store = JudgementStore(settings)
    store.set("text", "watch", "1006", 2)
    settings.data_dir.joinpath("catalog.db").write_bytes(b"")
    settings.data_dir.joinpath("catalog.db").unlink()
    assert JudgementStore(settings).grades("text", "watch") == {"1006": 2}


def _judge_many(data_dir: str, who: int, n: int, crash: bool) -> None:
    store = JudgementStore(Settings(data_dir=Path(data_dir)))
    for i in range(n):
        store.set("text", f"query {i % 5}", f"{who}-{i}", i % 3, judge=f"p{who}")
    if crash:
        os._exit(1)  # no close, no clean-up: what a killed TUI leaves


def test_two_processes_judging_at_once_lose_nothing_and_a_crash_keeps_what_was_set(settings):
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_judge_many, args=(str(settings.data_dir), who, 40, who == 1)) for who in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [1, 0]
    rows = JudgementStore(settings).rows()
    assert len(rows) == 80
    assert {r["judge"] for r in rows} == {"p1", "p2"}


def test_judged_queries_export_and_read_back_as_an_eval_file(settings, tmp_path):
    store = JudgementStore(settings)
    store.set("text", "red dress", "1005", 2)
    store.set("text", "red dress", "1009", 1)
    store.set("text", "red dress", "1002", 0)
    store.set("text", "nothing good", "1001", 0)  # judged, but no relevant result: not an eval query
    image = tmp_path / "q.png"
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 0, 0)).save(image)
    store.set("image", str(image), "1005", 2)
    store.set("like", "1005", "1009", 1)
    queries, skipped = judged.judged_queries(store)
    assert [q.kind for q in queries] == ["text", "image", "like"]
    assert skipped == {"no_relevant_grade": 1}
    path = tmp_path / "judged.jsonl"
    assert judged.export_jsonl(store, path) == 3
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"query": "red dress", "relevant": {"1002": 0, "1005": 2, "1009": 1}}
    assert lines[2] == {"like": "1005", "relevant": {"1009": 1}}
    back, skips = load_queries(path)
    assert [(q.kind, q.relevant) for q in back] == [(q.kind, q.relevant) for q in queries] and not skips
    qrels_path = tmp_path / "judged.qrels"
    assert judged.export_qrels(store, qrels_path) == 4
    qrels = runs.read_qrels(qrels_path)
    assert qrels[runs.query_id("text", "red dress")] == {"1005": 2, "1009": 1, "1002": 0}
    assert qrels[runs.query_id("text", "nothing good")] == {"1001": 0}


def test_coverage_of_the_top_10_comes_from_the_ranking_last_shown(settings):
    store = JudgementStore(settings)
    store.record_shown("text", "shoes", "hybrid", "lite", [str(i) for i in range(20)])
    for pid in ("0", "1", "2", "15"):
        store.set("text", "shoes", pid, 1)
    (row,) = judged.summary(store)
    assert row["coverage@10"] == 0.3 and row["judged"] == 4 and row["partly"] == 4
    assert row["shown_mode"] == "hybrid"


class Ranked:
    """A service whose rankings are fixed lists of ids, per mode."""

    def __init__(self, lists: dict[str, dict[str, list[str]]]):
        self.lists = lists
        self.calls = []

    def search(self, query, *, k=20, mode="hybrid", filters=None, **kw):
        self.calls.append((query, mode, kw))
        ids = self.lists[mode].get(query, [])[:k]
        return SearchResult(mode=mode, query=query, hits=[Hit(id=i, title=f"t{i}", score=1.0 - r / 100, rank=r + 1)
                                                           for r, i in enumerate(ids)])


def test_eval_reports_per_query_figures_judged_at_10_and_writes_a_trec_run(settings, tmp_path):
    from mmtui.catalog.queries import EvalQuery

    service = Ranked({"hybrid": {"a": ["1", "2", "3"], "b": ["9", "8"]}})
    queries = [EvalQuery(relevant={"1": 2, "3": 0}, text="a"), EvalQuery(relevant={"8": 1}, text="b")]
    report = run_eval(service, queries, mode="hybrid", known_ids=["1", "2", "3", "8", "9"])
    rows = {r["label"]: r for r in report.per_query_json()}
    assert rows["a"]["judged@10"] == pytest.approx(2 / 3) and rows["a"]["unjudged@10"] == ["2"]
    assert rows["b"]["mrr"] == 0.5 and rows["b"]["judged@10"] == 0.5
    assert report.to_json()["judged@10"] == pytest.approx((2 / 3 + 0.5) / 2, abs=1e-6)
    path = report.write_run(tmp_path / "x.run", "hyb")
    lines = path.read_text().splitlines()
    assert lines[0] == f"{runs.query_id('text', 'a')} Q0 1 1 1.000000 hyb"
    back, name = runs.read_run(path)
    assert name == "hyb" and back[runs.query_id("text", "b")] == ["9", "8"]


def test_tied_scores_are_written_so_trec_eval_reads_the_same_order(tmp_path):
    path = runs.write_run(tmp_path / "t.run", [("q1", ["a", "z", "m"], [1.0, 1.0, 1.0])], "t")
    back, _ = runs.read_run(path)
    assert back["q1"] == ["a", "z", "m"]


def test_compare_runs_counts_wins_and_tests_the_difference():
    qrels = {f"q{i}": {"good": 2, "bad": 0} for i in range(20)}
    better = {f"q{i}": ["good", "bad"] for i in range(20)}
    worse = {f"q{i}": (["bad", "good"] if i < 15 else ["good", "bad"]) for i in range(20)}
    cmp = runs.compare_runs(better, worse, {**qrels, "unjudged": {"x": 0}}, name_a="new", name_b="old")
    info = cmp.to_json()["metrics"]["ndcg@10"]
    assert (info["wins_a"], info["wins_b"], info["ties"]) == (15, 0, 5)
    assert info["significant"] and info["p_value"] < 0.001
    assert cmp.missing == {"no_relevant_judgement": 1}
    same = runs.compare_runs(better, better, qrels)
    assert same.p_values["ndcg@10"] == 1.0 and same.wins["ndcg@10"] == (0, 0, 20)
    with pytest.raises(EvalFileError):
        runs.compare_runs({"zz": ["a"]}, {}, {"q": {"a": 0}})


def test_pooling_puts_unjudged_disagreements_first(settings):
    store = JudgementStore(settings)
    store.set("text", "agreed", "1", 2)
    store.set("text", "agreed", "2", 0)
    store.set("text", "split", "1", 2)
    service = Ranked({"hybrid": {"agreed": ["1", "2"], "split": ["1", "5", "6"], "new one": ["7"]},
                      "lexical": {"agreed": ["1", "2"], "split": ["8", "1"], "new one": ["7"]}})
    found = judged.suggest(service, store, ["hybrid", "lexical"], extra=["new one"])
    assert [s.query for s in found] == ["split", "new one"]  # "agreed" has nothing unjudged left
    top = found[0]
    assert [u["id"] for u in top.unjudged] == ["8", "5", "6"]  # best rank first: 8 (1), 5 (2), 6 (3)
    assert top.unjudged[0]["rankers"] == ["lexical"] and top.disagreement > found[1].disagreement
