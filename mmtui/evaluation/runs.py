"""TREC run and qrels files, and comparing two rankers query by query with a paired significance test.

Run lines:   `QID Q0 DOCID RANK SCORE RUN_NAME`  (trec_eval's format; it ranks by SCORE, ties by DOCID descending)
Qrels lines: `QID 0 DOCID GRADE`

A query's id (`query_id`) is a hash of its kind and text, so runs written by two `mmtui eval --run` calls on the
same queries (from a file or from the judgements) pair up, whatever the order of the lines.
Nothing here renders: the CLI turns a RunComparison into tables.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmtui.errors import EvalFileError
from mmtui.metrics import paired_randomisation, query_metrics, wins_losses_ties

COMPARED = ("ndcg@10", "p@10", "mrr", "recall@10", "judged@10")
ALPHA = 0.05


def query_id(kind: str, text: str) -> str:
    """A stable id for a query: 'q' + 10 hex digits of sha1(kind + text) (no spaces, as TREC files need)."""
    return "q" + hashlib.sha1(f"{kind}\t{text}".encode("utf-8")).hexdigest()[:10]


def ranking_from_scores(scores: Mapping[str, float]) -> list[str]:
    """Doc ids best first, as trec_eval ranks a run: by score descending, equal scores by doc id descending."""
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def write_run(path: str | Path, rankings: Sequence[tuple[str, Sequence[str], Sequence[float]]],
              name: str) -> Path:
    """rankings: (qid, ids best first, scores). Scores are written so that trec_eval reads the same order back:
    a score that does not fall below the one before it (a tie) is nudged just under it."""
    path = Path(path)
    tag = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in name) or "mmtui"
    lines = []
    for qid, ids, scores in rankings:
        last = None
        for rank, (doc, score) in enumerate(zip(ids, scores), start=1):
            score = float(score)
            if last is not None and score >= last:
                score = last - 1e-6
            last = score
            lines.append(f"{qid} Q0 {doc} {rank} {score:.6f} {tag}")
    write_lines(path, lines)
    return path


def write_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> Path:
    lines = [f"{qid} 0 {doc} {int(grade)}" for qid, docs in qrels.items() for doc, grade in docs.items()]
    write_lines(Path(path), lines)
    return Path(path)


def read_run(path: str | Path) -> tuple[dict[str, list[str]], str]:
    """{qid: ids best first (trec_eval's order)}, and the run's name (the last column of its first line)."""
    scores: dict[str, dict[str, float]] = {}
    name = ""
    for number, parts in _lines(path):
        if len(parts) != 6:
            raise EvalFileError(f"{path}, line {number}: a run line has 6 columns, not {len(parts)}",
                                "write runs with `mmtui eval ... --run FILE` (QID Q0 DOCID RANK SCORE NAME)")
        try:
            score = float(parts[4])
        except ValueError:
            raise EvalFileError(f"{path}, line {number}: the score {parts[4]!r} is not a number",
                                "the fifth column of a run line is its score") from None
        scores.setdefault(parts[0], {})[parts[2]] = score
        name = name or parts[5]
    if not scores:
        raise EvalFileError(f"{path} holds no run line", "write one with `mmtui eval QUERIES --run FILE`")
    return {qid: ranking_from_scores(s) for qid, s in scores.items()}, name


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for number, parts in _lines(path):
        if len(parts) != 4 or not parts[3].lstrip("-").isdigit():
            raise EvalFileError(f"{path}, line {number}: a qrels line is `QID 0 DOCID GRADE`",
                                "export them with `mmtui judgements export --qrels FILE`")
        qrels.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    return qrels


@dataclass
class RunComparison:
    """Two rankers on the queries both answered that have a relevant judgement."""
    name_a: str
    name_b: str
    means: dict[str, tuple[float, float]]  # metric -> (mean a, mean b)
    wins: dict[str, tuple[int, int, int]]  # metric -> (a better, b better, tied), per query
    p_values: dict[str, float]  # metric -> paired randomisation test, two-sided
    per_query: list[dict[str, Any]] = field(default_factory=list)  # qid, label, <metric>_a, <metric>_b
    missing: dict[str, int] = field(default_factory=dict)  # queries left out, by reason
    test: str = "paired randomisation (sign flip) on the per-query difference, two-sided"

    @property
    def n_queries(self) -> int:
        return len(self.per_query)

    def to_json(self) -> dict[str, Any]:
        return {"a": self.name_a, "b": self.name_b, "n_queries": self.n_queries, "test": self.test,
                "metrics": {m: {"a": round(a, 6), "b": round(b, 6), "delta": round(a - b, 6),
                                "wins_a": self.wins[m][0], "wins_b": self.wins[m][1], "ties": self.wins[m][2],
                                "p_value": round(self.p_values[m], 6),
                                "significant": self.p_values[m] < ALPHA}
                            for m, (a, b) in self.means.items()},
                "missing": self.missing, "queries": self.per_query}


def compare_runs(run_a: Mapping[str, Sequence[str]], run_b: Mapping[str, Sequence[str]],
                 qrels: Mapping[str, Mapping[str, int]], *, name_a: str = "A", name_b: str = "B",
                 labels: Mapping[str, str] | None = None, metrics: Sequence[str] = COMPARED,
                 seed: int = 0) -> RunComparison:
    """Score both runs on every query of `qrels` that has a relevant grade and that either run answered (a query
    one run did not answer counts as an empty ranking for it: every figure 0), then compare them pairwise."""
    missing = {"no_relevant_judgement": 0, "in_neither_run": 0}
    rows: list[dict[str, Any]] = []
    for qid in sorted(qrels):
        rel = qrels[qid]
        if not any(g >= 1 for g in rel.values()):
            missing["no_relevant_judgement"] += 1
            continue
        if qid not in run_a and qid not in run_b:
            missing["in_neither_run"] += 1
            continue
        fa, fb = query_metrics(run_a.get(qid, []), rel), query_metrics(run_b.get(qid, []), rel)
        row: dict[str, Any] = {"qid": qid, "label": (labels or {}).get(qid, qid)}
        for m in metrics:
            row[f"{m}_a"], row[f"{m}_b"] = round(fa[m], 6), round(fb[m], 6)
        rows.append(row)
    if not rows:
        raise EvalFileError("no query with a relevant judgement is in either run",
                            "compare runs made on the same queries as the judgements (mmtui eval --judged --run)")
    means, wins, p = {}, {}, {}
    for m in metrics:
        a = [r[f"{m}_a"] for r in rows]
        b = [r[f"{m}_b"] for r in rows]
        means[m] = (sum(a) / len(a), sum(b) / len(b))
        wins[m] = wins_losses_ties(a, b)
        p[m] = paired_randomisation(a, b, seed=seed)
    return RunComparison(name_a, name_b, means, wins, p, rows, {k: v for k, v in missing.items() if v})


def _lines(path: str | Path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(f"cannot read {path}: {exc}", "give the path of a TREC run or qrels file") from None
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if parts:
            yield number, parts


def write_lines(path: Path, lines: list[str]) -> None:
    """Whole or not at all: a temporary file renamed over the target."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        raise EvalFileError(f"cannot write {path}: {exc.strerror or exc}", "check the folder exists and is writable") from None
