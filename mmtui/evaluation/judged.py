"""The user's judgements as evaluation sets, the rankers compared on them, and pooling: what to judge next.

- `judged_queries`: each judged query (text, image or "more like this") with its grades as an EvalQuery, the
  same thing `mmtui eval QUERIES.jsonl` reads; `export_jsonl` / `export_qrels` write them out.
- `summary`: per query, the counts by grade and the coverage of its top 10 as last shown (judged@10).
- `RANKERS` / `run_ranker`: named ways to rank one query (a mode, or hybrid with equal weights), what the TUI's
  side-by-side view, interleaving and pooling compare.
- `suggest`: depth-10 pooling over two or more rankers; queries ordered by how much ranking mass sits on
  unjudged results (sum over them of 1/log2(1 + best rank), the nDCG@10 discount they could change) and then by
  how much the rankers disagree (1 - overlap of their top 10s).
Nothing here renders.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mmtui.catalog.queries import EvalQuery
from mmtui.errors import EvalFileError, QueryError
from mmtui.evaluation.runs import query_id, write_lines, write_qrels
from mmtui.metrics import judged_at_k
from mmtui.query.hybrid import default_weights
from mmtui.store.judgements import JudgementStore

POOL_DEPTH = 10


# -- judgements as queries -------------------------------------------------------------------------------------

def judged_queries(store: JudgementStore, *, with_relevant: bool = True) -> tuple[list[EvalQuery], dict[str, int]]:
    """(queries, skipped by reason). A query whose grades are all 0 cannot be scored (nothing relevant): it is
    counted in skipped["no_relevant_grade"]; an image query whose file is gone in skipped["unreadable_image"]."""
    out: list[EvalQuery] = []
    skipped: dict[str, int] = {}
    for (kind, query), grades in store.all().items():
        if with_relevant and not any(g >= 1 for g in grades.values()):
            skipped["no_relevant_grade"] = skipped.get("no_relevant_grade", 0) + 1
            continue
        if kind == "image":
            if not Path(query).is_file():
                skipped["unreadable_image"] = skipped.get("unreadable_image", 0) + 1
                continue
            out.append(EvalQuery(relevant=dict(grades), image=Path(query)))
        elif kind == "like":
            out.append(EvalQuery(relevant=dict(grades), like=query))
        else:
            out.append(EvalQuery(relevant=dict(grades), text=query))
    return out, skipped


def require_judged(store: JudgementStore) -> tuple[list[EvalQuery], dict[str, int]]:
    queries, skipped = judged_queries(store)
    if not queries:
        raise EvalFileError(f"no judged query with a relevant result in {store.path}",
                            "judge results in the TUI (mmtui tui: 2 relevant, 1 partly, 0 not relevant on a result)")
    return queries, skipped


def eval_line(kind: str, query: str, grades: Mapping[str, int]) -> dict[str, Any]:
    key = {"text": "query", "image": "image", "like": "like"}[kind]
    return {key: query, "relevant": dict(sorted(grades.items()))}


def export_jsonl(store: JudgementStore, path: str | Path) -> int:
    """Every judged query with a relevant grade as an eval line (`mmtui eval FILE` reads it); returns the count.
    Queries judged only 0 are left out: an eval file line needs a relevant id."""
    lines = [json.dumps(eval_line(kind, query, grades), ensure_ascii=False)
             for (kind, query), grades in store.all().items() if any(g >= 1 for g in grades.values())]
    write_lines(Path(path), lines)
    return len(lines)


def export_qrels(store: JudgementStore, path: str | Path) -> int:
    """TREC qrels (`QID 0 DOCID GRADE`) of every judged query, 0 grades included; qids as `mmtui eval --run`."""
    qrels = {query_id(kind, query): grades for (kind, query), grades in store.all().items()}
    write_qrels(path, qrels)
    return len(qrels)


def summary(store: JudgementStore) -> list[dict[str, Any]]:
    """Per judged query: kind, query, qid, counts by grade, and judged@10 of the latest ranking shown for it."""
    shown = store.shown()
    rows = []
    for (kind, query), grades in store.all().items():
        latest = (shown.get((kind, query)) or [None])[0]
        rows.append({"kind": kind, "query": query, "qid": query_id(kind, query), "judged": len(grades),
                     "relevant": sum(1 for g in grades.values() if g == 2),
                     "partly": sum(1 for g in grades.values() if g == 1),
                     "not_relevant": sum(1 for g in grades.values() if g == 0),
                     "coverage@10": round(judged_at_k(latest["ids"], grades, 10), 4) if latest else None,
                     "shown_mode": latest["mode"] if latest else None,
                     "shown_model": latest["model"] if latest else None})
    return rows


# -- rankers --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ranker:
    name: str
    mode: str
    description: str
    weights: Mapping[str, float] | None = None
    understand: bool = True


RANKERS: dict[str, Ranker] = {r.name: r for r in (
    Ranker("hybrid", "hybrid", "every signal fused by rank, learned weights, query understanding"),
    Ranker("hybrid-equal", "hybrid", "hybrid with equal signal weights (plain RRF)", weights=default_weights()),
    Ranker("hybrid-plain", "hybrid", "hybrid without query understanding", understand=False),
    Ranker("lexical", "lexical", "words only (BM25)"),
    Ranker("text", "text", "the query against product texts"),
    Ranker("image", "image", "the query against product images"),
    Ranker("fused", "fused", "one combined image + text vector per product"),
)}


def ranker(name: str) -> Ranker:
    try:
        return RANKERS[name]
    except KeyError:
        raise QueryError(f"unknown ranker {name!r}", "one of: " + ", ".join(RANKERS)) from None


def run_ranker(service: Any, name: str, kind: str, query: str, k: int = 20, filters: Any = None) -> Any:
    """One query ranked by ranker `name`; a SearchResult. "More like this" queries rank the same for every
    ranker (the product's own vector); image queries use the ranker's mode where the service takes one."""
    r = ranker(name)
    if kind == "like":
        return service.more_like_this(query, k=k, filters=filters)
    if kind == "image":
        mode = r.mode if r.mode in ("image", "text", "fused", "hybrid") else "image"
        return service.search_image(query, k=k, filters=filters, mode=mode)
    kwargs: dict[str, Any] = {"k": k, "mode": r.mode, "filters": filters}
    if r.weights is not None:
        kwargs["weights"] = dict(r.weights)
    if not r.understand:
        kwargs["understand"] = False
    return service.search(query, **kwargs)


# -- pooling ---------------------------------------------------------------------------------------------------

@dataclass
class Suggestion:
    kind: str
    query: str
    at_stake: float  # sum over unjudged pooled results of 1 / log2(1 + best rank)
    disagreement: float  # 1 - mean pairwise overlap (|A & B| / |A | B|) of the rankers' top 10s
    unjudged: list[dict[str, Any]] = field(default_factory=list)  # id, title, best_rank, rankers
    judged: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "query": self.query, "qid": query_id(self.kind, self.query),
                "at_stake": round(self.at_stake, 4), "disagreement": round(self.disagreement, 4),
                "judged": self.judged, "unjudged": self.unjudged}


def pool(rankings: Mapping[str, Sequence[Any]], grades: Mapping[str, int], depth: int = POOL_DEPTH
         ) -> tuple[float, float, list[dict[str, Any]]]:
    """(at_stake, disagreement, unjudged) of one query from each ranker's ranked hits (objects with .id, .title or
    plain ids). Unjudged results are ordered by their best rank over the rankers."""
    tops = {name: [_hid(h) for h in hits[:depth]] for name, hits in rankings.items()}
    titles = {_hid(h): getattr(h, "title", "") for hits in rankings.values() for h in hits[:depth]}
    best: dict[str, tuple[int, list[str]]] = {}
    for name, ids in tops.items():
        for rank, pid in enumerate(ids, start=1):
            if pid in grades:
                continue
            r, who = best.get(pid, (rank, []))
            best[pid] = (min(r, rank), who + [name])
    unjudged = [{"id": pid, "title": titles.get(pid, ""), "best_rank": r, "rankers": who}
                for pid, (r, who) in sorted(best.items(), key=lambda item: (item[1][0], item[0]))]
    at_stake = sum(1.0 / math.log2(1 + u["best_rank"]) for u in unjudged)
    names = list(tops)
    overlaps = [len(set(tops[a]) & set(tops[b])) / max(1, len(set(tops[a]) | set(tops[b])))
                for i, a in enumerate(names) for b in names[i + 1:]]
    disagreement = 1.0 - (sum(overlaps) / len(overlaps)) if overlaps else 0.0
    return at_stake, disagreement, unjudged


def suggest(service: Any, store: JudgementStore, rankers: Sequence[str], *, extra: Sequence[str] = (),
            depth: int = POOL_DEPTH, limit: int = 20, progress: Callable[[int, int], None] | None = None
            ) -> list[Suggestion]:
    """What to judge next: every judged query and every text in `extra` (queries not judged yet), ranked by each
    ranker; the `limit` queries with most at stake first, each with its unjudged pooled results."""
    if len(rankers) < 1:
        raise QueryError("pooling needs at least one ranker", "e.g. --rankers hybrid,lexical")
    for name in rankers:
        ranker(name)
    judged = store.all()
    todo = list(judged) + [("text", t) for t in dict.fromkeys(extra) if ("text", t) not in judged]
    out: list[Suggestion] = []
    for i, (kind, query) in enumerate(todo):
        grades = judged.get((kind, query), {})
        if kind == "image" and not Path(query).is_file():
            continue
        try:
            lists = {name: run_ranker(service, name, kind, query, depth).hits for name in rankers}
        except QueryError:
            continue
        at_stake, disagreement, unjudged = pool(lists, grades, depth)
        out.append(Suggestion(kind, query, at_stake, disagreement, unjudged, len(grades)))
        if progress is not None:
            progress(i + 1, len(todo))
    out.sort(key=lambda s: (-round(s.at_stake, 9), -s.disagreement, s.query))
    return [s for s in out if s.unjudged][:limit]


def _hid(hit: Any) -> str:
    return str(getattr(hit, "id", hit))


class RankerService:
    """A search service that ranks text queries as ranker `name` does (its weights, with or without query
    understanding), for run_eval: `run_eval(RankerService(service, "hybrid-equal"), queries, mode="hybrid")`."""

    def __init__(self, service: Any, name: str) -> None:
        self.service = service
        self.ranker = ranker(name)
        self.store = getattr(service, "store", None)

    @property
    def model_name(self) -> str:
        from mmtui.evaluation.evaluate import model_name

        return model_name(self.service)

    def load_model(self) -> None:
        load = getattr(self.service, "load_model", None)
        if callable(load):
            load()

    def search(self, query: str, **kwargs: Any) -> Any:
        if self.ranker.weights is not None:
            kwargs["weights"] = dict(self.ranker.weights)
        if not self.ranker.understand:
            kwargs["understand"] = False
        return self.service.search(query, **kwargs)

    def search_image(self, image: Any, **kwargs: Any) -> Any:
        return self.service.search_image(image, **kwargs)

    def more_like_this(self, product_id: str, **kwargs: Any) -> Any:
        return self.service.more_like_this(product_id, **kwargs)
