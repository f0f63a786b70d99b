"""Two rankings of one query side by side (F6), and team-draft interleaving of the two (i).

Side by side: ranker A on the left, B on the right (a / b choose each among mmtui.evaluation.judged.RANKERS),
each headed by its P@10 / nDCG@10 under the judgements so far. Judging works in both lists (2/1/0, n), and a
product listed in both shows its grade in both. Interleaved: one list of both rankings merged by team draft,
blind (no side is shown); each judgement credits the ranker whose pick the result was, and the per-query outcome
is kept in the judgements file (`mmtui judgements` lists them).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, ListView, Static

from mmtui.evaluation.interleave import credit, seeded, team_draft
from mmtui.evaluation.judged import RANKERS, run_ranker
from mmtui.tui.host import AppHost
from mmtui.tui.judging import JudgeActions, figures, identity
from mmtui.tui.query import Query
from mmtui.tui.widgets.results import ResultsList

INTERLEAVE_K = 10
RANKER_NAMES = list(RANKERS)


class CompareScreen(JudgeActions, Screen):
    BINDINGS = [
        Binding("escape,q", "close", "Back"),
        Binding("a", "cycle('a')", "Ranker A"),
        Binding("b", "cycle('b')", "Ranker B"),
        Binding("s", "swap", "Swap", show=False),
        Binding("i", "interleave", "Interleave"),
    ]
    app: AppHost

    def __init__(self, query: Query, ranker_a: str = "hybrid", ranker_b: str = "lexical") -> None:
        super().__init__()
        self.search_query = query
        self.key = identity(query)
        self.rankers = {"a": ranker_a, "b": ranker_b}
        self.hits: dict[str, list[Any]] = {"a": [], "b": []}
        self.grades: dict[str, int] = {}
        self.interleaved = False
        self.teams: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        yield Static(id="compare-title")
        with Horizontal(id="compare-body"):
            for side in ("a", "b"):
                with Vertical(classes="compare-col", id=f"col-{side}"):
                    yield Static(id=f"head-{side}", classes="compare-head")
                    yield ResultsList(id=f"list-{side}", classes="compare-list")
            with Vertical(classes="compare-col", id="col-mixed"):
                yield Static(id="head-mixed", classes="compare-head")
                yield ResultsList(id="list-mixed", classes="compare-list")
        yield Static(id="compare-status")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#col-mixed").display = False
        label = self.key[1] if self.key else ""
        self.query_one("#compare-title", Static).update(Text.assemble(
            ("Compare ", "bold"), (f"{self.key[0] if self.key else ''} ", "dim"), (label, "bold cyan"),
            ("   a / b: change ranker · i: interleave (blind) · 2/1/0 judge · n: next unjudged · Esc: back", "dim")))
        self.load()

    # ---------------------------------------------------------------- rankings
    @work(exclusive=True, group="compare", exit_on_error=False)
    async def load(self) -> None:
        app = self.app
        if app.service is None or self.key is None:
            self.set_status("Nothing to compare: search for something first.")
            return
        kind, text = self.key
        self.set_status("ranking…")
        try:
            for side in ("a", "b"):
                result = await app.lane.call(run_ranker, app.service, self.rankers[side], kind, text, app.k)
                self.hits[side] = result.hits
            self.grades = await asyncio.to_thread(app.judging.grades, kind, text)
        except Exception as exc:
            self.set_status("The comparison failed: see the notification.")
            app.show_error(exc, title="Compare failed")
            return
        for side in ("a", "b"):
            await self.query_one(f"#list-{side}", ResultsList).set_hits(self.hits[side], None, self.grades)
        if self.interleaved:
            await self._show_interleaved()
        self.refresh_heads()
        self.set_status("")
        self.query_one("#list-mixed" if self.interleaved else "#list-a", ResultsList).focus()

    def refresh_heads(self) -> None:
        for side in ("a", "b"):
            name = self.rankers[side]
            f = figures([h.id for h in self.hits[side]], self.grades)
            head = Text.assemble((f"{side.upper()}: {name}", "bold"),
                                 f"  P@10 {f['p@10']:.2f} · nDCG@10 {f['ndcg@10']:.2f} · judged@10 {f['judged@10']:.0%}",
                                 (f"\n{RANKERS[name].description}", "dim"))
            head.no_wrap, head.overflow = True, "ellipsis"
            self.query_one(f"#head-{side}", Static).update(head)
        if self.interleaved:
            ca, cb, judged = credit(self.teams, self.grades)
            head = Text.assemble(("interleaved ", "bold"), (f"{self.rankers['a']} (A) vs {self.rankers['b']} (B)", "cyan"),
                                 f"  {judged} of {len(self.teams)} judged · credit A {ca:g} · B {cb:g} · "
                                 f"{'A ahead' if ca > cb else 'B ahead' if cb > ca else 'even'}",
                                 ("\nblind: which ranker a result came from is not shown", "dim"))
            self.query_one("#head-mixed", Static).update(head)

    def set_status(self, text: str | Text) -> None:
        self.query_one("#compare-status", Static).update(text)

    # ---------------------------------------------------------------- actions
    def action_close(self) -> None:
        self.app.pop_screen()

    def action_cycle(self, side: str) -> None:
        current = self.rankers[side]
        self.rankers[side] = RANKER_NAMES[(RANKER_NAMES.index(current) + 1) % len(RANKER_NAMES)]
        self.load()

    def action_swap(self) -> None:
        self.rankers = {"a": self.rankers["b"], "b": self.rankers["a"]}
        self.load()

    async def action_interleave(self) -> None:
        self.interleaved = not self.interleaved
        self.query_one("#col-a").display = not self.interleaved
        self.query_one("#col-b").display = not self.interleaved
        self.query_one("#col-mixed").display = self.interleaved
        if self.interleaved:
            await self._show_interleaved()
            self.query_one("#list-mixed", ResultsList).focus()
        else:
            self.query_one("#list-a", ResultsList).focus()
        self.refresh_heads()

    async def _show_interleaved(self) -> None:
        kind, text = self.key or ("", "")
        a, b = ([h.id for h in self.hits[s]] for s in ("a", "b"))
        self.teams = team_draft(a, b, INTERLEAVE_K, seeded(kind, text, self.rankers["a"], self.rankers["b"]))
        by_id = {h.id: h for side in ("b", "a") for h in self.hits[side]}
        # blind: no score or signal, which would tell the rankers apart
        mixed = [replace(by_id[pid], rank=i, score=0.0, signals={}, shares={})
                 for i, (pid, _) in enumerate(self.teams, start=1)]
        await self.query_one("#list-mixed", ResultsList).set_hits(mixed, None, self.grades)

    # ---------------------------------------------------------------- judging (JudgeActions)
    def judge_target(self) -> tuple[ResultsList, str, str, str] | None:
        if self.key is None:
            return None
        if self.interleaved:
            results = self.query_one("#list-mixed", ResultsList)
            mode = f"interleave:{self.rankers['a']}|{self.rankers['b']}"
        else:
            focused = self.focused
            side = "b" if isinstance(focused, ResultsList) and focused.id == "list-b" else "a"
            results = self.query_one(f"#list-{side}", ResultsList)
            mode = self.rankers[side]
        return results, self.key[0], self.key[1], mode

    def judgements_changed(self, kind: str, text: str, grades: dict[str, int]) -> None:
        self.grades = grades
        self.refresh_heads()
        if self.interleaved:
            ca, cb, judged = credit(self.teams, grades)
            self.record(kind, text, ca, cb, judged)

    @work(group="interleave-record", exit_on_error=False)
    async def record(self, kind: str, text: str, ca: float, cb: float, judged: int) -> None:
        try:
            await asyncio.to_thread(self.app.judging.store.record_interleaving, kind, text, self.rankers["a"],
                                    self.rankers["b"], ca, cb, judged)
        except Exception as exc:
            self.app.show_error(exc, title="The interleaving outcome was not saved")

    @on(ListView.Selected)
    def _selected(self, event: ListView.Selected) -> None:
        event.stop()  # Enter in a comparison does not open the product: the lists stay side by side
