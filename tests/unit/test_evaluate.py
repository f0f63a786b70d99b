"""Query files (every error is a counted skip), the runner on a fake service, the split protocol, the comparison."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmtui.config import Settings
from mmtui.errors import EvalFileError, ModelError, QueryError
from mmtui.evaluation.evaluate import (
    CONTRACT_KEYS, EvalQuery, Skip, compare_models, checkpoint_configs, load_queries, run_eval, split_queries,
)
from mmtui.metrics import paired_retrieval
from mmtui.query.service import Hit, SearchResult
from mmtui.store.db import Store


def write_lines(path: Path, lines: list) -> Path:
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else
                                (line if isinstance(line, str) else json.dumps(line)).encode() for line in lines))
    return path


def tiny_png(path: Path) -> Path:
    Image.new("RGB", (8, 8), (200, 30, 30)).save(path)
    return path


# -- load_queries ---------------------------------------------------------------------------------------------

def test_each_bad_line_is_a_counted_skip_with_its_reason(tmp_path):
    tiny_png(tmp_path / "ok.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all" * 20)
    lines = [
        {"query": "red dress", "relevant": {"1": 2, "2": 0}},        # 1 ok
        {"image": "ok.png", "relevant": [3, "4"]},                    # 2 ok: list form, int ids
        "{not json",                                                  # 3 bad_json
        b"\xff\xfe{\"query\": \"x\"}",                                # 4 bad_json (not UTF-8)
        "[1, 2]",                                                     # 5 not_an_object
        {"relevant": {"1": 1}},                                       # 6 no_query_or_image
        {"query": "a", "image": "ok.png", "relevant": {"1": 1}},      # 7 both
        {"query": "   ", "relevant": {"1": 1}},                       # 8 empty_query
        {"query": "a", "relevant": {}},                               # 9 empty_relevance
        {"query": "a"},                                               # 10 empty_relevance (missing)
        {"query": "a", "relevant": "1"},                              # 11 bad_relevance
        {"query": "a", "relevant": {"1": 1.5}},                       # 12 bad_grade
        {"query": "a", "relevant": {"1": -1}},                        # 13 bad_grade
        {"query": "a", "relevant": {"1": "2"}},                       # 14 bad_grade
        {"query": "a", "relevant": {"1": True}},                      # 15 bad_grade
        {"query": "a", "relevant": {"1": 0, "2": 0}},                 # 16 no_relevant_grade
        {"image": "missing.jpg", "relevant": {"1": 1}},               # 17 unreadable_image
        {"image": "broken.jpg", "relevant": {"1": 1}},                # 18 unreadable_image
        "",                                                           # 19 blank: ignored
        {"query": "b", "relevant": {"5": 2.0}},                       # 20 ok: integral float grade
        {"query": 42, "relevant": {"1": 1}},                          # 21 empty_query (not text)
    ]
    queries, skips = load_queries(write_lines(tmp_path / "q.jsonl", lines))
    assert [q.line for q in queries] == [1, 2, 20]
    assert queries[0].relevant == {"1": 2, "2": 0} and queries[0].text == "red dress"
    assert queries[1].kind == "image" and queries[1].image == tmp_path / "ok.png"
    assert queries[1].relevant == {"3": 1, "4": 1}
    assert queries[2].relevant == {"5": 2}
    assert Counter(s.reason for s in skips) == {
        "bad_json": 2, "not_an_object": 1, "no_query_or_image": 1, "both_query_and_image": 1, "empty_query": 2,
        "empty_relevance": 2, "bad_relevance": 1, "bad_grade": 4, "no_relevant_grade": 1, "unreadable_image": 2}
    assert {s.line for s in skips if s.reason == "unreadable_image"} == {17, 18}
    assert "line 3" in str(next(s for s in skips if s.line == 3))


def test_missing_file_directory_and_empty_file_raise_with_hint(tmp_path):
    for path in (tmp_path / "nope.jsonl", tmp_path):
        with pytest.raises(EvalFileError) as err:
            load_queries(path)
        assert "relevant" in err.value.hint
    with pytest.raises(EvalFileError, match="empty"):
        load_queries(write_lines(tmp_path / "empty.jsonl", [""]))


def test_file_with_no_usable_query_raises_and_says_why(tmp_path):
    path = write_lines(tmp_path / "bad.jsonl", ["{oops", {"query": "a", "relevant": {}}])
    with pytest.raises(EvalFileError, match=r"2 skipped \(.*bad_json: 1"):
        load_queries(path)


# -- run_eval ------------------------------------------------------------------------------------------------

class FakeService:
    """search/search_image return fixed rankings; records the calls."""

    def __init__(self, text_rankings: dict[str, list], image_ranking: list | None = None, store=None):
        self.text_rankings = text_rankings
        self.image_ranking = image_ranking or []
        self.calls: list[tuple] = []
        if store is not None:
            self.store = store

    @staticmethod
    def _result(ids, mode, kind, query):
        return SearchResult(mode=mode, kind=kind, query=query,
                            hits=[Hit(id=pid, title=f"t{pid}", score=1.0 - i / 100, rank=i + 1)
                                  for i, pid in enumerate(ids)])

    def search(self, query, *, k=20, mode="hybrid", filters=None):
        self.calls.append(("text", query, k, mode, filters))
        if query == "boom":
            raise QueryError("the query is empty", "type something")
        return self._result(self.text_rankings.get(query, [])[:k], mode, "text", query)

    def search_image(self, image, *, k=20, filters=None):
        self.calls.append(("image", str(image), k, "image", filters))
        return self._result(self.image_ranking[:k], "image", "image", str(image))


def q(text, relevant, line=None):
    return EvalQuery(relevant=relevant, text=text, line=line)


def test_run_eval_figures_and_contract_keys():
    service = FakeService({"a": ["1", "2", "3"], "b": ["9", "8", "7", "6", "5", "4", "3", "2", "1", "0", "x"]})
    queries = [q("a", {"1": 1}), q("b", {"x": 1})]  # ranks 1 and 11
    report = run_eval(service, queries, mode="text", k=10, skipped=[Skip("bad_json", 3)], model="fake")
    out = report.to_json()
    assert tuple(out)[: len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert out["n_queries"] == 2
    assert out["recall@1"] == 0.5 and out["recall@10"] == 0.5
    assert out["mrr"] == pytest.approx((1 + 1 / 11) / 2)
    assert out["p@10"] == pytest.approx(0.05)
    assert out["mode"] == "text" and out["model"] == "fake" and out["k"] == 10
    assert out["skipped"] == {"bad_json": 1}
    assert out["latency_ms_p50"] >= 0 and out["latency_ms_p99"] >= out["latency_ms_p50"]
    assert all(call[2] == 100 and call[3] == "text" for call in service.calls)  # top 100 retrieved for MRR
    json.dumps(out)


def test_run_eval_non_standard_k_adds_its_recall():
    service = FakeService({"a": ["2", "1"]})
    out = run_eval(service, [q("a", {"1": 1})], mode="text", k=2, model="m").to_json()
    assert out["recall@2"] == 1.0 and out["recall@1"] == 0.0


def test_unknown_ids_are_dropped_and_counted_and_all_unknown_skips():
    service = FakeService({"a": ["1", "2"], "b": ["1"]})
    queries = [q("a", {"1": 1, "404": 1}, 1), q("b", {"405": 1}, 2)]
    report = run_eval(service, queries, mode="text", k=10, known_ids=["1", "2"], model="m")
    out = report.to_json()
    assert out["n_queries"] == 1
    assert out["recall@1"] == 1.0  # "404" dropped: 1 of 1 known relevant found
    assert out["unknown_ids_dropped"] == 2
    assert out["skipped"] == {"unknown_ids": 1}


def test_unknown_ids_checked_against_the_service_store():
    class FakeStore:
        def rowid_of(self, ids):
            return {i: n for n, i in enumerate(ids) if i != "404"}

    service = FakeService({"a": ["404", "1"]}, store=FakeStore())
    out = run_eval(service, [q("a", {"1": 1, "404": 1})], mode="text", k=10, model="m").to_json()
    assert out["recall@1"] == 0.0 and out["mrr"] == 0.5 and out["unknown_ids_dropped"] == 1


def test_image_queries_query_errors_and_modes(tmp_path):
    img = tiny_png(tmp_path / "x.png")
    service = FakeService({"a": ["1"]}, image_ranking=["7", "1"])
    queries = [q("a", {"1": 1}), EvalQuery(relevant={"1": 1}, image=img), q("boom", {"1": 1}, 9)]
    out = run_eval(service, queries, mode="image", k=10, model="m").to_json()
    assert out["n_queries"] == 2 and out["mrr"] == pytest.approx(0.75)
    assert out["skipped"] == {"query_rejected": 1}
    # this fake search_image has no mode: an image query in text mode would silently run as image -> skipped
    out = run_eval(service, queries[:2], mode="text", k=10, model="m").to_json()
    assert out["n_queries"] == 1 and out["skipped"] == {"mode_not_supported": 1}


def test_nothing_evaluable_and_bad_arguments_raise():
    service = FakeService({})
    with pytest.raises(EvalFileError):
        run_eval(service, [q("a", {"404": 1})], mode="text", k=10, known_ids=[], model="m")
    with pytest.raises(QueryError):
        run_eval(service, [q("a", {"1": 1})], mode="semantic", k=10)
    with pytest.raises(QueryError):
        run_eval(service, [q("a", {"1": 1})], mode="text", k=0)


def test_progress_events_and_model_name():
    class Projector:
        name = "adapter-1"

    class Settings_:
        model = "lite"

    service = FakeService({"a": ["1"], "b": ["1"]})
    service.projector, service.settings = Projector(), Settings_()
    events = []
    report = run_eval(service, [q("a", {"1": 1}), q("b", {"1": 1})], mode="text", progress=events.append)
    assert [(e.stage, e.done, e.total) for e in events] == [("eval", 1, 2), ("eval", 2, 2)]
    assert report.model == "lite+adapter-1"


# -- split_queries and compare_models on a tiny store ---------------------------------------------------------

def tiny_store(n: int = 12) -> Store:
    store = Store.memory()
    records = []
    for i in range(n):
        split = "test" if i < 8 else "train"
        records.append({"id": f"p{i}", "title": f"product {i}" if i != 3 else "  ", "split": split,
                        "image_status": "ok" if i != 2 else "image_corrupt",
                        "image_path": f"/img/{i}.jpg" if i != 2 else None, "text": f"product {i}"})
    store.upsert_products(records)
    return store


def test_split_queries_title_to_own_image():
    store = tiny_store()
    queries = split_queries(store, "test")
    ids = [next(iter(x.relevant)) for x in queries]
    assert ids == ["p0", "p1", "p4", "p5", "p6", "p7"]  # p2 has no usable image, p3 no title, p8+ train
    assert queries[0].text == "product 0" and queries[0].relevant == {"p0": 1} and queries[0].kind == "text"
    with pytest.raises(EvalFileError):
        split_queries(store, "val")


def put_vectors(store: Store, fp: str, titles: np.ndarray, images: np.ndarray) -> list[int]:
    rowids = sorted(store.splits())
    store.put_vectors(fp, "title", rowids, ["s"] * len(rowids), titles)
    store.put_vectors(fp, "image", rowids, ["s"] * len(rowids), images)
    return rowids


class FakeProjector:
    def __init__(self, name, snap_to=None):
        self.name, self.snap_to = name, snap_to

    def text(self, v):
        return v

    def image(self, v):  # "perfect" head: each image becomes its title
        return self.snap_to if self.snap_to is not None else v


def write_checkpoint(settings: Settings, name: str, kind: str, **extra):
    folder = settings.checkpoints_dir / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"kind": kind, **extra}))


def test_compare_models_rows_gap_and_report(tmp_path):
    settings = Settings(data_dir=tmp_path)
    store = tiny_store()
    rng = np.random.default_rng(0)
    titles = rng.standard_normal((12, 6)).astype(np.float32)
    images = titles + rng.standard_normal((12, 6)).astype(np.float32)
    put_vectors(store, "fpA", titles, images)
    store.set_meta("active_model", "adapter-1")
    write_checkpoint(settings, "adapter-1", "adapter", base_fingerprint="fpA")
    write_checkpoint(settings, "mlp-1", "mlp", base_fingerprint="fpA")
    write_checkpoint(settings, "other", "adapter", base_fingerprint="fpB")
    write_checkpoint(settings, "ft-1", "finetune", base_fingerprint="fpA", fingerprint="fpFT")
    write_checkpoint(settings, "broken", "fusion", base_fingerprint="fpA")
    in_test = slice(0, 8)  # rows 0..7 are the test split (rowids ordered like the records)

    def loader(_settings, name):
        if name == "broken":
            raise ModelError("weights file is corrupt", "train it again")
        return FakeProjector(name, titles[in_test] if name == "adapter-1" else None)

    report = compare_models(settings, store=store, projector_loader=loader)
    assert [r["name"] for r in report.rows] == ["base", "mlp-1", "adapter-1", "other", "ft-1", "broken"]
    base, mlp, adapter, other, ft, broken = report.rows
    assert report.pool == 8 and base["label"] == "zero-shot" and base["n_queries"] == 8
    expected = paired_retrieval(titles[in_test], images[in_test])
    assert base["recall@10"] == pytest.approx(expected["recall@10"], abs=1e-6)
    assert base["gap"] == pytest.approx(expected["gap"], abs=1e-6)
    assert mlp["mrr"] == pytest.approx(base["mrr"], abs=1e-6)  # identity projector
    assert adapter["recall@1"] == 1.0 and adapter["cos_match"] == pytest.approx(1.0) and adapter["active"]
    assert "another base" in other["note"] and "recall@1" not in other
    assert "mmtui use ft-1" in ft["note"]
    assert "corrupt" in broken["note"]
    saved = json.loads((tmp_path / "reports" / "compare-test.json").read_text())
    assert saved["rows"][0]["recall@10"] == base["recall@10"] and saved["base_fingerprint"] == "fpA"
    assert len(list((tmp_path / "reports").glob("compare-test-*.json"))) == 1


def test_compare_models_scores_a_finetune_from_its_own_vectors(tmp_path):
    settings = Settings(data_dir=tmp_path)
    store = tiny_store()
    eye = np.eye(12, dtype=np.float32)
    put_vectors(store, "fpA", eye, np.roll(eye, 1, axis=0))  # base: every title misses its image
    put_vectors(store, "fpFT", eye, eye)
    write_checkpoint(settings, "ft-1", "finetune", base_fingerprint="fpA", fingerprint="fpFT")
    report = compare_models(settings, store=store, projector_loader=lambda s, n: FakeProjector(n),
                            fingerprint="fpA", write=False)
    base, ft = report.rows
    assert base["recall@1"] == 0.0 and ft["recall@1"] == 1.0 and report.path is None


def test_compare_after_a_finetune_became_the_encoder_scores_the_original_base(tmp_path):
    """Promoting a fine-tune encodes the catalog again and makes it the index's base; the table must still show
    the model it was tuned from as zero-shot (and the heads trained on it), and the fine-tune on its own vectors."""
    settings = Settings(data_dir=tmp_path)
    store = tiny_store()
    eye = np.eye(12, dtype=np.float32)
    put_vectors(store, "fpA", eye, np.roll(eye, 1, axis=0))  # the original base: every title misses its image
    put_vectors(store, "fpFT", eye, eye)  # the fine-tune's re-encode
    store.set_meta("base_fingerprint", "fpFT")
    store.set_meta("active_model", "ft-1")
    write_checkpoint(settings, "adapter-1", "adapter", base_fingerprint="fpA")
    write_checkpoint(settings, "ft-1", "finetune", base_fingerprint="fpA")  # no own fingerprint recorded
    report = compare_models(settings, store=store, projector_loader=lambda s, n: FakeProjector(n), write=False)
    base, adapter, ft = report.rows
    assert report.base_fingerprint == "fpA"
    assert base["recall@1"] == 0.0 and adapter["recall@1"] == 0.0 and not adapter.get("note")
    assert ft["recall@1"] == 1.0 and ft["active"]


def test_checkpoint_configs_tolerates_bad_config(tmp_path):
    settings = Settings(data_dir=tmp_path)
    write_checkpoint(settings, "a", "adapter")
    (settings.checkpoints_dir / "junk").mkdir()
    (settings.checkpoints_dir / "junk" / "config.json").write_text("{broken")
    assert [name for name, _ in checkpoint_configs(settings)] == ["a", "junk"]


def test_model_is_loaded_before_the_clock_starts():
    order = []

    class Loading(FakeService):
        def load_model(self):
            order.append("load")

        def search(self, query, **kw):
            order.append("search")
            return super().search(query, **kw)

    run_eval(Loading({"a": ["1"]}), [q("a", {"1": 1})], mode="text", model="m")
    assert order == ["load", "search"]


def test_base_fingerprint_prefers_the_build_meta():
    from mmtui.evaluation.evaluate import base_fingerprint

    store = tiny_store()
    eye = np.eye(12, dtype=np.float32)
    put_vectors(store, "fpA", eye, eye)
    assert base_fingerprint(store) == "fpA"  # the only model with image vectors
    put_vectors(store, "fpB", eye, eye)
    with pytest.raises(Exception, match="2 models"):
        base_fingerprint(store)
    store.set_meta("base_fingerprint", "fpB")
    assert base_fingerprint(store) == "fpB"


def test_tables_render_figures_skips_and_notes(tmp_path):
    from rich.console import Console

    from mmtui.cli.reports import compare_table, eval_table, skips_table

    service = FakeService({"a": ["1"]})
    report = run_eval(service, [q("a", {"1": 1})], mode="text", k=20, model="lite",
                      skipped=[Skip("bad_json", 4), Skip("bad_json", 9), Skip("unknown_ids", 2)], source="q.jsonl")
    console = Console(width=200, record=True)
    console.print(eval_table(report))
    console.print(skips_table(report.skips))
    text = console.export_text()
    assert "R@20" in text and "1.000" in text and "mode text" in text
    assert "bad_json" in text and "4, 9" in text
    assert skips_table([]) is None

    settings = Settings(data_dir=tmp_path)
    store = tiny_store()
    eye = np.eye(12, dtype=np.float32)
    put_vectors(store, "fpA", eye, eye)
    write_checkpoint(settings, "adapter-001", "adapter", base_fingerprint="fpB")
    comp = compare_models(settings, store=store, projector_loader=lambda s, n: FakeProjector(n), write=False)
    console = Console(width=200, record=True)
    console.print(compare_table(comp))
    text = console.export_text()
    assert "zero-shot *" in text and "1.000" in text and "another base model" in text


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "queries"
SAMPLE = Path(__file__).resolve().parents[2] / "sample_catalog"


def sample_ids() -> set[str]:
    import csv

    with open(SAMPLE / "styles.csv", newline="") as f:
        return {row["id"] for row in csv.DictReader(f)}


def test_fixture_query_files_are_valid_for_the_sample_catalog():
    queries, skips = load_queries(FIXTURES / "sample_catalog.jsonl")
    assert not skips and len(queries) == 13 and sum(x.kind == "image" for x in queries) == 2
    known = sample_ids()
    assert all(set(x.relevant) <= known for x in queries)


def test_messy_fixture_counts_every_problem():
    queries, skips = load_queries(FIXTURES / "messy.jsonl")
    assert Counter(s.reason for s in skips) == {
        "bad_json": 1, "no_query_or_image": 1, "both_query_and_image": 1, "empty_relevance": 1, "bad_grade": 2,
        "no_relevant_grade": 1, "unreadable_image": 1}
    service = FakeService({x.text: ["18461", "13733"] for x in queries if x.text}, image_ranking=["18461"])
    out = run_eval(service, queries, mode="image", skipped=skips, known_ids=sample_ids(), model="m").to_json()
    assert out["n_queries"] == 3 and out["unknown_ids_dropped"] == 2
    assert out["skipped"]["unknown_ids"] == 1 and sum(out["skipped"].values()) == 9
    assert out["recall@1"] == pytest.approx(2 / 3) and out["mrr"] == pytest.approx((1 + 0.5 + 1) / 3)


def test_save_eval_report_writes_figures_and_per_query_ranks(tmp_path):
    from mmtui.evaluation.evaluate import save_eval_report

    report = run_eval(FakeService({"a": ["2", "1"]}), [q("a", {"1": 1}, 1)], mode="text", model="m",
                      skipped=[Skip("bad_json", 2, "x")], source="my queries.jsonl")
    path = save_eval_report(Settings(data_dir=tmp_path), report)
    body = json.loads(path.read_text())
    assert path.parent == tmp_path / "reports" and path.name.startswith("eval-my-queries-text-")
    assert body["mrr"] == 0.5 and body["queries"][0]["rank"] == 2 and body["skips"][0]["line"] == 2


def test_evaluate_split_restricts_the_pool_to_the_split():
    from mmtui.evaluation.evaluate import evaluate_split
    from mmtui.store.filters import where_sql

    class SplitService(FakeService):
        def __init__(self, store):
            super().__init__({}, store=store)

        def search(self, query, *, k=20, mode="hybrid", filters=None):
            self.calls.append(("text", query, k, mode, filters))
            where, params = where_sql(list(filters or []))
            ids = [r[0] for r in self.store.db.execute(f"SELECT id FROM products WHERE {where} ORDER BY id DESC",
                                                       params)]
            return self._result(ids[:k], mode, "text", query)

    service = SplitService(tiny_store())
    report = evaluate_split(service, "test")
    out = report.to_json()
    assert out["mode"] == "image" and out["pool"] == "split" and out["source"] == "split:test"
    assert out["n_queries"] == 6 and out["recall@10"] == 1.0  # only the 8 test products are searched
    assert str(service.calls[0][4][0]) == "split=test"
    wide = evaluate_split(service, "test", pool="catalog").to_json()
    assert wide["pool"] == "catalog" and service.calls[-1][4] is None
    with pytest.raises(QueryError):
        evaluate_split(service, "test", pool="everything")
