"""Offline evaluation: query files, the eval runner, the test-split protocol and the model comparison table.

Query files (JSONL, the format docs/metrics.md documents), one query per line:
    {"query": "navy running shoes", "relevant": {"15970": 2, "3021": 1}}
    {"image": "photos/shoe.jpg", "relevant": {"15970": 1}}      # path relative to the queries file
    {"like": "15970", "relevant": {"3021": 2}}                  # "more like this" product (TUI judgements)
grade >= 1 is relevant, 0 is "judged, not relevant". `relevant` may also be a list of ids (each grade 1).
Ids are compared as strings, so 15970 and "15970" are the same product. Other keys are ignored.

A line that cannot be used is a counted skip with its reason (`Skip`), never a crash and never part of an
average. Integral floats (2.0) are accepted as grades; 0.5, "2", true, negative grades or grades over MAX_GRADE
(100) skip the query as `bad_grade`: nDCG's gain 2^grade - 1 overflows a float from grade 1024 on, and a
grade of 1000 is a typo far more often than a scale.

Unknown ids: a relevant id the catalog does not hold is DROPPED from that query's relevance (and counted in
"unknown_ids_dropped"); the query is skipped only when no relevant id remains. Why: ids usually go missing
because the catalog rejected or removed a product, which no model can retrieve; keeping them would lower
every figure for a reason that has nothing to do with the model, and skipping the whole query would throw
away its valid judgments. The count is reported ("unknown_ids_dropped" counts every unknown relevant id,
including those of queries skipped for having none left), so a file judged against another catalog is visible.

Nothing here imports torch: the service does the encoding, model comparison works on cached vectors.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from mmtui.config import Settings
from mmtui.errors import EvalFileError, MmtuiError, QueryError, StoreError
from mmtui.metrics import METRIC_KEYS, MRR_DEPTH, paired_retrieval, query_metrics, recall_at_k, score_rankings
from mmtui.evaluation.runs import query_id
from mmtui.progress import ProgressCallback, ProgressEvent, check_cancel
from mmtui.catalog.queries import EvalQuery, split_queries
from mmtui.query.service import MODES
from mmtui.store.db import Store
from mmtui.encoders.projector import load_projector

# Skip reasons: stable strings, shown by the CLI and in the JSON "skipped" dict.
SKIP_BAD_JSON = "bad_json"
SKIP_NOT_OBJECT = "not_an_object"
SKIP_NO_QUERY = "no_query_or_image"
SKIP_BOTH = "both_query_and_image"
SKIP_EMPTY_QUERY = "empty_query"
SKIP_NO_RELEVANCE = "empty_relevance"
SKIP_BAD_RELEVANCE = "bad_relevance"
SKIP_BAD_GRADE = "bad_grade"
SKIP_NO_RELEVANT = "no_relevant_grade"
SKIP_UNKNOWN_IDS = "unknown_ids"
SKIP_BAD_IMAGE = "unreadable_image"
SKIP_MODE = "mode_not_supported"
SKIP_QUERY_ERROR = "query_rejected"
SKIP_BAD_REGION = "bad_region"

SKIP_REASONS = {
    SKIP_BAD_JSON: "line is not valid JSON (or not UTF-8)",
    SKIP_NOT_OBJECT: "line is not a JSON object",
    SKIP_NO_QUERY: "neither \"query\" nor \"image\"",
    SKIP_BOTH: "both \"query\" and \"image\" (one query per line)",
    SKIP_EMPTY_QUERY: "\"query\" is empty or not text",
    SKIP_NO_RELEVANCE: "\"relevant\" is missing or empty",
    SKIP_BAD_RELEVANCE: "\"relevant\" is not an {id: grade} object or a list of ids",
    SKIP_BAD_GRADE: "a grade is not a whole number from 0 to 100",
    SKIP_NO_RELEVANT: "no id has grade >= 1",
    SKIP_UNKNOWN_IDS: "none of the relevant ids is in the catalog",
    SKIP_BAD_IMAGE: "the image is missing or cannot be read",
    SKIP_MODE: "this query kind cannot be run in this mode",
    SKIP_QUERY_ERROR: "the search rejected the query",
    SKIP_BAD_REGION: "\"region\" is not x,y,w,h (four numbers, or a string of them)",
}

MAX_GRADE = 100  # 2^100 - 1 is still an exact, finite gain; see the module docstring
FORMAT_HINT = ('one JSON object per line: {"query": "text", "relevant": {"<product id>": 1}} or '
               '{"image": "path/relative/to/the/file.jpg", "relevant": {"<product id>": 2}}; grade >= 1 is relevant')
CONTRACT_KEYS = (*METRIC_KEYS, "latency_ms_p50", "latency_ms_p99", "mode", "model")
KIND_ORDER = ("base", "mlp", "adapter", "finetune", "lit")  # the comparison table's row order; other kinds follow
# config.json keys that may hold a fine-tuned encoder's own fingerprint (its vectors are cached under it)
FINETUNE_FINGERPRINT_KEYS = ("encoder_fingerprint", "fingerprint")


@dataclass(frozen=True)
class Skip:
    reason: str  # one of SKIP_REASONS
    line: int | None = None
    detail: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{SKIP_REASONS.get(self.reason, self.reason)}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class EvalReport:
    metrics: dict[str, float]  # METRIC_KEYS
    latency_ms_p50: float
    latency_ms_p99: float
    mode: str
    model: str
    k: int
    recall_at_k: float  # recall@k for the requested k
    skips: list[Skip] = field(default_factory=list)
    unknown_ids_dropped: int = 0
    source: str = ""
    per_query: list[dict[str, Any]] = field(default_factory=list)  # qid, label, kind, rank, metrics, latency_ms
    pool: str = ""  # for split evals: "split" (only the split's products are searched) or "catalog"
    runs: dict[str, tuple[list[str], list[float]]] = field(default_factory=dict)  # qid -> (ids, scores), ranked
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)  # qid -> the judgements it was scored on

    @property
    def judged_at_10(self) -> float:
        """Mean share of each query's top 10 that was judged: how far the other figures can be trusted."""
        values = [row["judged@10"] for row in self.per_query if "judged@10" in row]
        return float(np.mean(values)) if values else 0.0

    def write_run(self, path: str | Path, name: str | None = None) -> Path:
        """The rankings as a TREC run file (mmtui.evaluation.runs)."""
        from mmtui.evaluation.runs import write_run

        return write_run(path, [(qid, ids, scores) for qid, (ids, scores) in self.runs.items()],
                         name or f"{self.mode}-{self.model}")

    @property
    def skipped(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.skips).most_common())

    def to_json(self) -> dict[str, Any]:
        """The contract's keys, in order, then extras: k, recall@k (if k is not 1/3/5/10), skipped, ..."""
        out: dict[str, Any] = {key: (int(self.metrics[key]) if key == "n_queries" else round(self.metrics[key], 6))
                               for key in METRIC_KEYS}
        out["latency_ms_p50"] = round(self.latency_ms_p50, 3)
        out["latency_ms_p99"] = round(self.latency_ms_p99, 3)
        out["mode"] = self.mode
        out["model"] = self.model
        out["k"] = self.k
        if f"recall@{self.k}" not in out:
            out[f"recall@{self.k}"] = round(self.recall_at_k, 6)
        out["skipped"] = self.skipped
        out["unknown_ids_dropped"] = self.unknown_ids_dropped
        out["source"] = self.source
        if self.pool:
            out["pool"] = self.pool
        out["judged@10"] = round(self.judged_at_10, 6)
        return out

    def per_query_json(self) -> list[dict[str, Any]]:
        """One row per query: qid, label, kind, each metric, judged@10 and the unjudged ids of its top 10."""
        keep = ("qid", "label", "kind", "line", "rank", "n_relevant", "n_judged", *METRIC_KEYS[1:], "judged@10",
                "unjudged@10", "latency_ms")
        return [{key: (round(row[key], 3) if key == "latency_ms" else row[key]) for key in keep if key in row}
                for row in self.per_query]


# -- query files ----------------------------------------------------------------------------------------------

def load_queries(path: str | Path) -> tuple[list[EvalQuery], list[Skip]]:
    """Read a JSONL queries file -> (usable queries, skips with reasons).

    Raises EvalFileError when the file is missing or unreadable, or holds no usable query at all.
    Image paths are resolved relative to the file and opened with Pillow to check they are readable.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise EvalFileError(f"no queries file at {path}", "check the path; " + FORMAT_HINT)
    if not path.is_file():
        raise EvalFileError(f"{path} is not a file", "give a .jsonl file; " + FORMAT_HINT)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise EvalFileError(f"cannot read {path}: {exc.strerror or exc}", "check the file's permissions") from exc
    queries: list[EvalQuery] = []
    skips: list[Skip] = []
    for number, line in enumerate(raw.splitlines(), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            skips.append(Skip(SKIP_BAD_JSON, number, "not UTF-8"))
            continue
        text = text.lstrip("\ufeff").strip()
        if not text:
            continue  # blank lines are allowed
        result = parse_query_line(text, number, path.parent)
        (queries if isinstance(result, EvalQuery) else skips).append(result)
    if not queries:
        raise EvalFileError(f"no usable query in {path}" + (f": {_summary(skips)}" if skips else " (the file is empty)"),
                            FORMAT_HINT)
    return queries, skips


def parse_query_line(text: str, line: int | None = None, base_dir: Path | None = None) -> EvalQuery | Skip:
    """One JSON line -> EvalQuery, or a Skip saying why it cannot be used."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, or an integer of over 4,300 digits
        return Skip(SKIP_BAD_JSON, line, str(exc)[:80])
    if not isinstance(obj, dict):
        return Skip(SKIP_NOT_OBJECT, line, type(obj).__name__)
    query, image, like = obj.get("query"), obj.get("image"), obj.get("like")
    if sum(x is not None for x in (query, image, like)) > 1:
        return Skip(SKIP_BOTH, line)
    if query is None and image is None and like is None:
        return Skip(SKIP_NO_QUERY, line)
    relevant = _parse_relevance(obj.get("relevant"), line)
    if isinstance(relevant, Skip):
        return relevant
    if like is not None:
        if isinstance(like, bool) or not isinstance(like, (str, int)) or not str(like).strip():
            return Skip(SKIP_EMPTY_QUERY, line, "\"like\" must be a product id")
        return EvalQuery(relevant=relevant, like=str(like).strip(), line=line)
    if query is not None:
        if not isinstance(query, str) or not query.strip():
            return Skip(SKIP_EMPTY_QUERY, line)
        return EvalQuery(relevant=relevant, text=query.strip(), line=line)
    if not isinstance(image, str) or not image.strip():
        return Skip(SKIP_BAD_IMAGE, line, "\"image\" must be a path")
    image_path = Path(image.strip()).expanduser()
    if not image_path.is_absolute() and base_dir is not None:
        image_path = base_dir / image_path
    problem = _image_problem(image_path)
    if problem:
        return Skip(SKIP_BAD_IMAGE, line, f"{image}: {problem}")
    region = _parse_region(obj.get("region"))
    if region is False:
        return Skip(SKIP_BAD_REGION, line, repr(obj.get("region"))[:40])
    return EvalQuery(relevant=relevant, image=image_path, line=line, region=region or None)


def _parse_region(value: Any) -> str | None | bool:
    """An image line's "region" ([x, y, w, h] or "x,y,w,h") as "x,y,w,h"; None when absent, False when unusable."""
    if value is None:
        return None
    from mmtui.catalog.regions import region_text

    if not isinstance(value, (str, list)) or any(isinstance(v, bool) for v in value):
        return False
    try:
        return region_text(value)
    except QueryError:
        return False


def _parse_relevance(value: Any, line: int | None) -> dict[str, int] | Skip:
    if value is None or (isinstance(value, (dict, list)) and not value):
        return Skip(SKIP_NO_RELEVANCE, line)
    if isinstance(value, list):
        items: Iterable[tuple[Any, Any]] = ((pid, 1) for pid in value)
    elif isinstance(value, dict):
        items = value.items()
    else:
        return Skip(SKIP_BAD_RELEVANCE, line, type(value).__name__)
    grades: dict[str, int] = {}
    for pid, grade in items:
        if isinstance(pid, bool) or not isinstance(pid, (str, int)) or not str(pid).strip():
            return Skip(SKIP_BAD_RELEVANCE, line, f"id {pid!r}")
        if isinstance(grade, float) and grade.is_integer():
            grade = int(grade)
        if isinstance(grade, bool) or not isinstance(grade, int) or grade < 0:
            return Skip(SKIP_BAD_GRADE, line, f"{pid}: {grade!r}"[:80])
        if grade > MAX_GRADE:
            return Skip(SKIP_BAD_GRADE, line, f"{pid}: grade {grade if grade < 10**12 else 'over 10^12'} is over "
                                              f"the maximum {MAX_GRADE}")
        key = str(pid).strip()
        grades[key] = max(grade, grades.get(key, 0))
    if not any(g >= 1 for g in grades.values()):
        return Skip(SKIP_NO_RELEVANT, line)
    return grades


def _image_problem(path: Path) -> str:
    """'' when Pillow can open the file, else a short reason."""
    if not path.is_file():
        return "no such file"
    try:
        from PIL import Image

        with Image.open(path) as img:
            img.verify()
    except Exception as exc:  # noqa: BLE001 - any decoder error means "unusable", and it is reported
        return type(exc).__name__
    return ""


def _summary(skips: Sequence[Skip]) -> str:
    counts = Counter(s.reason for s in skips)
    return f"{len(skips)} skipped (" + ", ".join(f"{r}: {n}" for r, n in counts.most_common()) + ")"


# -- the runner -------------------------------------------------------------------------------------------

def run_eval(service: Any, queries: Sequence[EvalQuery], *, mode: str = "hybrid", k: int = 10,
             filters: Sequence[Any] | None = None, progress: ProgressCallback | None = None,
             skipped: Sequence[Skip] = (), known_ids: Iterable[str] | None = None, model: str | None = None,
             source: str = "", cancel: threading.Event | None = None, regions: int | None = None) -> EvalReport:
    """Run every query through the service and score it (top 100 retrieved, so MRR sees ranks up to 100).

    Text queries go to service.search(text, k=, mode=, filters=), image queries to service.search_image(path,
    k=, filters=[, mode=][, region=]). `regions` N: each image query is split into the N regions that look most
    like products instead, and the merged list of their hits is scored (shop the look, mmtui.query.regions).
    `skipped` (from load_queries) is carried into the report. Relevant ids unknown to
    the catalog (`known_ids`, else service.store.rowid_of) are dropped, see the module docstring.
    A QueryError from the service skips that query; any other error propagates.
    """
    if mode not in MODES:
        raise QueryError(f"unknown mode {mode!r}", "use one of: " + ", ".join(MODES))
    if k < 1:
        raise QueryError(f"k must be at least 1, not {k}", "e.g. -k 10")
    depth = max(MRR_DEPTH, k)
    skips = list(skipped)
    queries, dropped = _drop_unknown_ids(service, queries, known_ids, skips)
    image_accepts_mode = _accepts(getattr(service, "search_image", None), "mode")
    if callable(getattr(service, "load_model", None)) and mode != "lexical":
        service.load_model()  # load the model before the clock starts: latency is per query, not start-up
    rankings: list[list[str]] = []
    relevances: list[dict[str, int]] = []
    latencies: list[float] = []
    per_query: list[dict[str, Any]] = []
    runs: dict[str, tuple[list[str], list[float]]] = {}
    qrels: dict[str, dict[str, int]] = {}
    total = len(queries)
    for i, query in enumerate(queries):
        check_cancel(cancel)
        if query.kind == "image" and mode != "image" and (mode == "lexical" or not image_accepts_mode):
            skips.append(Skip(SKIP_MODE, query.line, f"image query in mode {mode}"))
            continue
        started = time.perf_counter()
        try:
            result = _search(service, query, depth, mode, filters, image_accepts_mode, regions)
        except QueryError as exc:
            skips.append(Skip(SKIP_QUERY_ERROR, query.line, exc.message))
            continue
        elapsed = (time.perf_counter() - started) * 1000.0
        ranked = [str(hit.id) for hit in result.hits]
        rankings.append(ranked)
        relevances.append(query.relevant)
        latencies.append(elapsed)
        qid = _unique(query_id(query.kind, query_text(query)), runs)
        runs[qid] = (ranked, [float(hit.score) for hit in result.hits])
        qrels[qid] = dict(query.relevant)
        per_query.append(_query_row(query, qid, ranked, k, elapsed))
        if progress is not None:
            progress(ProgressEvent("eval", i + 1, total, query.label[:60]))
    if not rankings:
        raise EvalFileError(f"no query could be evaluated{': ' + _summary(skips) if skips else ''}",
                            "check that the relevant ids are the catalog's own ids and that the mode suits "
                            "the queries; " + FORMAT_HINT)
    metrics = score_rankings(rankings, relevances)
    p50, p99 = (float(x) for x in np.percentile(np.array(latencies), [50, 99]))
    recall_k = float(np.mean([recall_at_k(r, rel, k) for r, rel in zip(rankings, relevances)]))
    return EvalReport(metrics=metrics, latency_ms_p50=p50, latency_ms_p99=p99, mode=mode,
                      model=model or model_name(service), k=k, recall_at_k=recall_k, skips=skips,
                      unknown_ids_dropped=dropped, source=source, per_query=per_query, runs=runs,
                      qrels=qrels)


def _search(service: Any, query: EvalQuery, depth: int, mode: str, filters: Any, image_accepts_mode: bool,
            regions: int | None = None) -> Any:
    if query.kind == "image":
        kwargs = {"mode": mode} if image_accepts_mode else {}
        if regions:  # the merged list of the regions that look most like products (mmtui.query.regions)
            return service.search_regions(query.image, k=depth, filters=filters, limit=regions, **kwargs)
        if query.region:
            kwargs["region"] = query.region
        return service.search_image(query.image, k=depth, filters=filters, **kwargs)
    if query.kind == "like":  # the product's own vector: the same in every mode
        return service.more_like_this(query.like, k=depth, filters=filters)
    return service.search(query.text, k=depth, mode=mode, filters=filters)


def query_text(query: EvalQuery) -> str:
    """What identifies the query within its kind (the text, the image path, the product id)."""
    return query.label if query.kind == "image" else query.like if query.kind == "like" else query.text or ""


def _unique(qid: str, taken: dict) -> str:
    """The same query twice in a file gets ids qX, qX.2, ... (a run file needs one ranking per id)."""
    n, out = 1, qid
    while out in taken:
        n += 1
        out = f"{qid}.{n}"
    return out


def _query_row(query: EvalQuery, qid: str, ranked: list[str], k: int, elapsed: float) -> dict[str, Any]:
    first = next((r for r, pid in enumerate(ranked, 1) if query.relevant.get(pid, 0) >= 1), None)
    figures = query_metrics(ranked, query.relevant)
    row = {"qid": qid, "label": query.label, "kind": query.kind, "line": query.line, "rank": first,
           f"recall@{k}": recall_at_k(ranked, query.relevant, k), "latency_ms": elapsed,
           **{m: round(v, 6) for m, v in figures.items()},
           "n_relevant": sum(1 for g in query.relevant.values() if g >= 1), "n_judged": len(query.relevant),
           "unjudged@10": [pid for pid in ranked[:10] if pid not in query.relevant]}
    return row


def evaluate_file(service: Any, path: str | Path, *, mode: str = "hybrid", k: int = 10,
                  filters: Sequence[Any] | None = None, progress: ProgressCallback | None = None,
                  cancel: threading.Event | None = None, regions: int | None = None) -> EvalReport:
    """load_queries + run_eval: what `mmtui eval QUERIES.jsonl` does."""
    queries, skips = load_queries(path)
    return run_eval(service, queries, mode=mode, k=k, filters=filters, progress=progress, skipped=skips,
                    source=str(path), cancel=cancel, regions=regions)


@dataclass(frozen=True)
class SplitPool:
    """A filter (duck-typed like mmtui.store.filters.Filter: .sql()) keeping only the products of one split."""
    split: str

    def sql(self) -> tuple[str, list]:
        return "split = ?", [self.split]

    def __str__(self) -> str:
        return f"split={self.split}"


def evaluate_split(service: Any, split: str = "test", *, k: int = 10, pool: str = "split",
                   filters: Sequence[Any] | None = None, progress: ProgressCallback | None = None,
                   cancel: threading.Event | None = None) -> EvalReport:
    """split_queries + run_eval in mode image: what `mmtui eval --split test` does.

    pool "split" (default): search only the split's products, so the figures are
    comparable with `compare_models`; pool "catalog": search the whole catalog (harder).
    """
    if pool not in ("split", "catalog"):
        raise QueryError(f"unknown pool {pool!r}", "use 'split' or 'catalog'")
    queries = split_queries(service.store, split)
    scope = [*(filters or []), SplitPool(split)] if pool == "split" else filters
    report = run_eval(service, queries, mode="image", k=k, filters=scope, progress=progress,
                      source=f"split:{split}", cancel=cancel)
    report.pool = pool
    return report


def save_eval_report(settings: Settings, report: EvalReport) -> Path:
    """Write the report's JSON (plus per-query ranks) to reports_dir/eval-<source>-<time>.json; returns the path."""
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(report.source or "queries").stem)[:40]
    path = settings.reports_dir / f"eval-{stem}-{report.mode}-{now:%Y%m%d-%H%M%S}.json"
    body = {**report.to_json(), "created": now.isoformat(timespec="seconds"),
            "skips": [{"reason": s.reason, "line": s.line, "detail": s.detail} for s in report.skips],
            "queries": report.per_query}
    path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return path


def model_name(service: Any) -> str:
    """'lite' for the base encoder alone, 'lite+adapter-002' with a head checkpoint active."""
    name = getattr(service, "model_name", None)
    if isinstance(name, str) and name:
        return name
    base = str(getattr(getattr(service, "settings", None), "model", "") or "unknown")
    head = getattr(getattr(service, "projector", None), "name", None)
    return base if not head or head in ("base", base) else f"{base}+{head}"


def _drop_unknown_ids(service: Any, queries: Sequence[EvalQuery], known_ids: Iterable[str] | None,
                      skips: list[Skip]) -> tuple[list[EvalQuery], int]:
    wanted = sorted({pid for q in queries for pid in q.relevant})
    if known_ids is not None:
        known = {str(i) for i in known_ids}
    elif hasattr(getattr(service, "store", None), "rowid_of"):
        known = set(service.store.rowid_of(wanted))
    else:
        return list(queries), 0  # nothing to check against (a fake service in tests)
    kept: list[EvalQuery] = []
    dropped = 0
    for q in queries:
        relevant = {pid: g for pid, g in q.relevant.items() if pid in known}
        dropped += sum(1 for pid, g in q.relevant.items() if pid not in known and g >= 1)
        if not any(g >= 1 for g in relevant.values()):
            missing = [pid for pid in q.relevant if pid not in known]
            skips.append(Skip(SKIP_UNKNOWN_IDS, q.line, ", ".join(missing[:3]) + ("..." if len(missing) > 3 else "")))
            continue
        kept.append(q if len(relevant) == len(q.relevant) else
                    EvalQuery(relevant=relevant, text=q.text, image=q.image, line=q.line, region=q.region))
    return kept, dropped


def _accepts(func: Callable | None, name: str) -> bool:
    if func is None:
        return False
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


# -- model comparison (`mmtui eval --compare`) --------------------------------------------------------------

@dataclass
class CompareReport:
    split: str
    pool: int  # products in the split with both a title vector and an image vector
    base_fingerprint: str
    rows: list[dict[str, Any]]  # one per model: label, name, kind, active, metrics, cos_match, cos_random, gap, note
    path: Path | None = None  # where the JSON report was written

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "pool": self.pool, "base_fingerprint": self.base_fingerprint,
                "rows": self.rows, "path": str(self.path) if self.path else None}


def compare_models(settings: Settings, split: str = "test", *, store: Any = None,
                   projector_loader: Callable[[Settings, str | None], Any] | None = None,
                   fingerprint: str | None = None, write: bool = True) -> CompareReport:
    """Zero-shot and every head checkpoint side by side on `split`: title -> own image, exact numpy search over
    the split's images, from cached base vectors through each checkpoint's Projector (no encoding).

    Rows: base first, then mlp, adapter, finetune, other kinds (each kind's checkpoints by name). A checkpoint
    that cannot be scored (other base model, unloadable, a fine-tune without cached vectors) gets a row with a
    `note` and no figures. Writes reports_dir/compare-<split>.json (and a timestamped copy) when `write`.
    """
    if store is None:
        store = Store.open(settings.db_path)
    if projector_loader is None:
        projector_loader = load_projector
    configs = checkpoint_configs(settings)
    active = store.get_meta("active_model") or "base"
    fp = fingerprint or _original_base(store, dict(configs).get(active)) or base_fingerprint(store)
    in_split = sorted(r for r, s in store.splits().items() if s == split)
    if not in_split:
        raise StoreError(f"no product in the {split!r} split", "run `mmtui build-index CATALOG` first")
    base_pairs = _pairs(store, fp, in_split)
    if base_pairs is None:
        raise StoreError(f"no product of the {split!r} split has both a title and an image vector for this model",
                         "run `mmtui build-index CATALOG` with a catalog that has images")
    titles, images = base_pairs
    rows = [_score_row("zero-shot", "base", "base", active in ("", "base"),
                       lambda: paired_retrieval(titles, images))]
    for name, config in configs:
        kind = str(config.get("kind", "?"))
        row_base = config.get("base_fingerprint") or config.get("base")
        is_active = name == active
        if row_base and row_base != fp:
            rows.append(_note_row(name, kind, is_active, f"trained on another base model ({row_base})"))
            continue
        if kind in ("finetune", "lit"):
            own = next((config[key] for key in FINETUNE_FINGERPRINT_KEYS if config.get(key)), None)
            if own is None and is_active:  # the index was encoded again with it: its vectors are the current ones
                own = store.get_meta("base_fingerprint")
            pairs = _pairs(store, own, in_split) if own else None
            if pairs is None:
                rows.append(_note_row(name, kind, is_active,
                                      f"no cached vectors: run `mmtui use {name}` to encode the catalog with it"))
                continue
            if len(pairs[0]) != len(titles):
                rows.append(_note_row(name, kind, is_active, "its cached vectors cover only part of the split"))
                continue
            rows.append(_score_row(name, name, kind, is_active, lambda p=pairs: paired_retrieval(*p)))
            continue

        def scored(n: str = name) -> dict[str, float]:
            projector = projector_loader(settings, n)
            return paired_retrieval(projector.text(titles), projector.image(images))

        rows.append(_score_row(name, name, kind, is_active, scored))
    report = CompareReport(split=split, pool=len(titles), base_fingerprint=fp, rows=rows)
    if write:
        report.path = _write_report(settings, report)
    return report


def _original_base(store: Any, active_config: dict[str, Any] | None) -> str | None:
    """When the active model is a fine-tuned encoder (the catalog was encoded again with it), the fingerprint of
    the model it was tuned from, if its vectors are still cached: the zero-shot row and the heads trained on it
    are scored on those, and the fine-tune on its own."""
    if not active_config or active_config.get("kind") not in ("finetune", "lit"):
        return None
    original = active_config.get("base_fingerprint")
    if not original:
        return None
    found = store.db.execute("SELECT 1 FROM embeddings WHERE model = ? AND kind = 'image' LIMIT 1",
                             [original]).fetchone()
    return original if found else None


def checkpoint_configs(settings: Settings) -> list[tuple[str, dict[str, Any]]]:
    """(name, config.json) of each checkpoint directory, in the comparison table's order (mlp, adapter,
    finetune, others)."""
    root = settings.checkpoints_dir
    found: list[tuple[str, dict[str, Any]]] = []
    if not root.is_dir():
        return found
    for cfg in root.glob("*/config.json"):
        try:
            config = json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {"kind": "?", "_error": "config.json unreadable"}
        if not isinstance(config, dict):
            config = {"kind": "?", "_error": "config.json is not an object"}
        found.append((cfg.parent.name, config))

    def order(item: tuple[str, dict[str, Any]]) -> tuple[int, str, str]:
        kind = str(item[1].get("kind", "?"))
        return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), kind, item[0])

    return sorted(found, key=order)


def base_fingerprint(store: Any) -> str:
    """The base encoder's fingerprint of the cached vectors, without loading the model: meta
    "base_fingerprint" (written by build-index), else the only model that has image vectors."""
    for key in ("base_fingerprint", "encoder_fingerprint"):
        value = store.get_meta(key)
        if value:
            return value
    models = [m for (m,) in store.db.execute(
        "SELECT DISTINCT model FROM embeddings WHERE kind = 'image'").fetchall()]
    if len(models) == 1:
        return models[0]
    if not models:
        raise StoreError("the index holds no image vectors", "run `mmtui build-index CATALOG` with images")
    raise StoreError(f"the index holds vectors of {len(models)} models and does not say which is current",
                     "run `mmtui build-index` again to record the current model")


def _pairs(store: Any, fp: str, rowids: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
    t_ids, t_vecs = store.vectors(fp, "title", rowids)
    i_ids, i_vecs = store.vectors(fp, "image", rowids)
    common, t_pos, i_pos = np.intersect1d(t_ids, i_ids, return_indices=True)
    if len(common) < 2:
        return None
    return t_vecs[t_pos], i_vecs[i_pos]


def _score_row(label: str, name: str, kind: str, active: bool, score: Callable[[], dict[str, float]]) -> dict:
    try:
        figures = score()
    except MmtuiError as exc:
        return _note_row(name, kind, active, exc.message, label=label)
    return {"label": label, "name": name, "kind": kind, "active": active,
            **{key: (int(v) if key == "n_queries" else round(float(v), 6)) for key, v in figures.items()},
            "note": ""}


def _note_row(name: str, kind: str, active: bool, note: str, label: str | None = None) -> dict:
    return {"label": label or name, "name": name, "kind": kind, "active": active, "note": note}


def _write_report(settings: Settings, report: CompareReport) -> Path:
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(timezone.utc)
    body = {**report.to_json(), "model": settings.model, "created": now.isoformat(timespec="seconds")}
    body.pop("path", None)
    text = json.dumps(body, indent=2) + "\n"
    latest = settings.reports_dir / f"compare-{report.split}.json"
    (settings.reports_dir / f"compare-{report.split}-{now:%Y%m%d-%H%M%S}.json").write_text(text, encoding="utf-8")
    latest.write_text(text, encoding="utf-8")
    return latest


