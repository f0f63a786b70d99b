"""Judging results in the TUI: 2 relevant, 1 partly, 0 not relevant on the highlighted result, x forgets, n jumps
to the next unjudged one. The screens that list results (search, compare) share these actions (`JudgeActions`);
`Judging` (one per app) reads and writes DATA_DIR/judgements.db off the UI thread."""

from __future__ import annotations

import asyncio
from typing import Any, Sequence

from rich.text import Text

from mmtui.metrics import judged_at_k, ndcg_at_k, precision_at_k
from mmtui.store.judgements import JudgementStore
from mmtui.tui.query import Query
from mmtui.tui.widgets.results import ResultItem, ResultsList

FORGET = -1  # the grade the x key sends: forget the judgement


def identity(query: Query | None) -> tuple[str, str] | None:
    """(kind, text) a judgement is kept under: the words, the image file's full path, or the product id."""
    if query is None:
        return None
    if query.kind == "text":
        return "text", query.text
    if query.kind == "image" and query.path is not None:
        return "image", str(query.path.resolve())
    if query.kind == "like":
        return "like", query.text
    return None


def figures(ids: Sequence[str], grades: dict[str, int]) -> dict[str, float]:
    """P@10, nDCG@10 and judged@10 of a ranking under the query's judgements (unjudged count as not relevant)."""
    return {"p@10": precision_at_k(ids, grades, 10), "ndcg@10": ndcg_at_k(ids, grades, 10),
            "judged@10": judged_at_k(ids, grades, 10)}


def figures_text(ids: Sequence[str], grades: dict[str, int]) -> Text:
    f = figures(ids, grades)
    text = Text()
    text.append(f"judged {len(grades)}", style="bold")
    text.append(f" · P@10 {f['p@10']:.2f} · nDCG@10 {f['ndcg@10']:.2f}")
    text.append(f" · judged@10 {f['judged@10']:.0%}", style="dim" if f["judged@10"] >= 1 else "yellow")
    return text


class Judging:
    """The app's judgements: a JudgementStore on the data dir, used from worker threads."""

    def __init__(self, settings: Any) -> None:
        self.store = JudgementStore(settings)

    def grades(self, kind: str, text: str) -> dict[str, int]:
        return self.store.grades(kind, text)

    def judge(self, kind: str, text: str, product_id: str, grade: int | None, mode: str, model: str,
              shown: Sequence[str]) -> dict[str, int]:
        """Write the judgement and the ranking it was made on; returns the query's grades now."""
        self.store.set(kind, text, product_id, grade, mode=mode, model=model)
        self.store.record_shown(kind, text, mode, model, shown)
        return self.store.grades(kind, text)

    def close(self) -> None:
        self.store.close()


class JudgeActions:
    """Mixin for a Screen with ResultsLists. The screen says what the focused list ranks (`judge_target`) and
    shows the new grades (`judgements_changed`)."""

    app: Any

    def judge_target(self) -> tuple[ResultsList, str, str, str] | None:  # list, kind, query text, mode
        raise NotImplementedError

    def judgements_changed(self, kind: str, text: str, grades: dict[str, int]) -> None:
        raise NotImplementedError

    def model_label(self) -> str:
        stats = self.app.stats or {}
        model = str(stats.get("model") or self.app.settings.model or "lite")
        active = stats.get("active")
        return f"{model}+{active}" if active and active not in ("base", model) else model

    async def action_judge(self, grade: int) -> None:
        target = self.judge_target()
        item = target[0].highlighted_child if target else None
        if target is None or not isinstance(item, ResultItem):
            self.app.notify("Highlight a result first (search, then ↓).", severity="warning", timeout=3)
            return
        results, kind, text, mode = target
        new = None if grade == FORGET else grade
        shown = [i.hit.id for i in results.items]
        try:
            grades = await asyncio.to_thread(self.app.judging.judge, kind, text, item.hit.id, new, mode,
                                             self.model_label(), shown)
        except Exception as exc:  # a full disk, a read-only data dir: say so, lose nothing else
            self.app.show_error(exc, title="The judgement was not saved")
            return
        for other in self.query(ResultsList):  # the same product may be listed twice (compare view)
            for row in other.items:
                if row.hit.id == item.hit.id:
                    row.set_grade(new)
        if new is not None and results.index is not None and results.index < len(results.items) - 1:
            results.index += 1  # judge and move on
        self.judgements_changed(kind, text, grades)

    def action_next_unjudged(self) -> None:
        target = self.judge_target()
        if target is None:
            return
        results = target[0]
        rows = results.items
        if not rows:
            return
        start = results.index if results.index is not None else -1
        for step in range(1, len(rows) + 1):
            i = (start + step) % len(rows)
            if rows[i].grade is None:
                results.index = i
                return
        self.app.notify("Every result in this list is judged.", timeout=2)
