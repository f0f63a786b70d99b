"""The main screen: one search box (text or image path), facets, results with thumbnails, and details."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, ListView, Static

from mmtui.progress import counted
from mmtui.store.filters import Filter
from mmtui.query.arrange import SORTS, TOP, collapse_variants, sort_hits
from mmtui.query.service import MODES, Hit, SearchResult
from mmtui.tui.host import AppHost
from mmtui.tui.judging import JudgeActions, figures_text, identity
from mmtui.tui.lane import Skipped
from mmtui.tui.query import LIKE_PREFIX, Query, parse_query
from mmtui.tui.thumbnails import pixels_for
from mmtui.tui.trace import trace
from mmtui.tui.widgets.detail import DetailPane
from mmtui.tui.widgets.facets import FacetPanel
from mmtui.tui.widgets.results import ResultItem, ResultsList, SearchResultsList, load_thumbnails

DEBOUNCE_S = 0.25
QUICK_S = 0.15  # show lexical results first when hybrid takes longer than this
def tips(example_id: str | None = None) -> str:
    """The tips under an empty search box; `example_id`: a product of this catalog with a picture."""
    like = f"like:{example_id}" if example_id else "like:ID"
    what = f"more like product {example_id}" if example_id else "more like the product with that id"
    return ("[b]Type to search[/b] — results appear as you type.\n\n"
            "  navy blue running shoes\n"
            "  /path/to/photo.jpg   [dim](an image path searches by image; paste or drop a file)[/dim]\n"
            f"  {like:<20} [dim]({what})[/dim]\n\n"
            "[dim]↓ or Enter: go to the results · m: more like this · r: refine it (\"in red\", \"cheaper\") · "
            "+/-: like / not like · ctrl+f: filters · ctrl+r: mode · F1: help[/dim]")


class SearchInput(Input):
    """The search box; ↓ moves to the results."""

    BINDINGS = [Binding("down", "screen.focus_results", "Results", show=False)]


class SearchScreen(JudgeActions, Screen):
    """Search as you type (debounced), stale results dropped by a sequence number. Results are judged here
    (2/1/0 on a result, JudgeActions); a judged query shows its P@10 and nDCG@10 in the status line."""

    BINDINGS = [
        Binding("ctrl+f", "toggle_facets", "Filters"),
        Binding("ctrl+r", "cycle_mode", "Mode"),
        Binding("ctrl+g", "understood", "Understood"),
        Binding("ctrl+o", "regions", "Regions", show=False),  # listed on F1
        Binding("slash", "focus_search", "Search", show=False),
        Binding("escape", "escape", "Back to search", show=False),
    ]

    app: AppHost

    def __init__(self) -> None:
        super().__init__()
        self._seq = 0
        self._timer: Timer | None = None
        self._last_signature: tuple | None = None
        self._waiting_for_model = False
        self._degraded = False
        self.result: SearchResult | None = None
        self._show_lock = asyncio.Lock()
        self._final_seq: int | None = None
        self._quick_pending: tuple[int, SearchResult] | None = None
        self._refining = False
        self._facets_chosen = False  # once the user toggles the filters, resizing no longer decides
        self._mode: str | None = None  # the mode while the filter panel is not mounted (then the panel holds it)
        self._search_worker: Any | None = None
        self._focus_seq: int | None = None  # Enter started this search: its results take the focus when shown
        self._dropped: set[str] = set()  # parts of the understanding the user dropped (ctrl+g), for this query
        self._pinned: dict[str, Filter] = {}  # parts the user pinned to one value: facet filters, for this query
        self.shown_query: Query | None = None  # the query whose results are on screen
        self._grades: dict[str, int] = {}  # the user's judgements of that query
        self._status_lines = 1
        self._counted: Any = None  # the results' facet counts (mmtui.query.arrange.ResultFacets)
        self._keys: dict[str, str] = {}  # product id -> variant key, for collapsing variants
        self._collapse = True  # variants of one product as one row ("+3 colours")
        self._sort = "relevance"  # while the filter panel is not mounted
        self._shown: list[Hit] = []  # the rows on screen: the results narrowed, sorted, collapsed
        self._examples: dict[str, bool] = {}  # product id -> liked (True) / not liked: a recommendation
        self._pool: tuple[str, ...] = ()  # the results the recommendation ranks

    # ---------------------------------------------------------------- layout
    def compose(self) -> ComposeResult:
        yield SearchInput(placeholder="Search products, or paste an image path…", id="query")
        with Horizontal(id="body"):
            # the filter panel (FacetPanel, id "facets") is mounted here the first time it is shown: hidden on
            # terminals under 130 columns, its selects cost ~0.2 s before the first frame and again at the first
            # results (filling them)
            with Vertical(id="results-column"):
                yield Static(id="status")
                yield Static(tips(), id="tips")
                yield SearchResultsList(id="results")
            yield DetailPane(self.app.image_class, id="detail")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#results").display = False
        self.query_one("#query").focus()
        self._layout_for(self.size.width)
        self.refresh_header()
        self.watch(self.app, "model_state", lambda _: self._model_state_changed(), init=False)
        self.call_after_refresh(trace, "interactive", focused=getattr(self.app.focused, "id", None))

    def on_resize(self, event: Any) -> None:
        self._layout_for(event.size.width)

    def _layout_for(self, width: int) -> None:
        self.set_class(width < 100, "-narrow")
        self.set_class(width >= 160, "-wide")
        if not self._facets_chosen:
            self._show_facets(width >= 130)

    # ---------------------------------------------------------------- header and status
    def refresh_header(self) -> None:
        app = self.app
        states = {"opening": "opening the data dir…", "loading": "loading model…", "ready": "model ready",
                  "failed": "model failed (lexical only)", "no-data": "no data: F4 to build",
                  "building": "building the index…"}
        state = states.get(app.model_state, app.model_state)
        parts = ["mmtui"]
        stats = app.stats or {}
        if stats.get("products") is not None:
            parts.append(counted(stats["products"], "product"))
        model = str(stats.get("model") or app.settings.model or "lite")
        active = stats.get("active")
        if active and active not in ("base", model):
            model = f"{model}+{active}"
        parts.append(f"{model}: {state}")
        query = self.query_one("#query", Input)
        query.border_title = " · ".join(parts)
        query.border_subtitle = f"mode: {self.mode}"

    def set_status(self, text: str | Text) -> None:
        status = self.query_one("#status", Static)
        width = status.content_size.width
        rich_text = Text(text) if isinstance(text, str) else text
        lines = len(rich_text.wrap(self.app.console, width)) if width else 1
        status.update(text, layout=lines != self._status_lines)  # a layout pass only when its height changes
        self._status_lines = lines

    @property
    def mode(self) -> str:
        panel = self.facet_panel
        return panel.mode if panel is not None else (self._mode or self.app.default_mode)

    @property
    def filters(self) -> list[Filter]:
        panel = self.facet_panel
        return (panel.filters() if panel is not None else []) + list(self._pinned.values())

    @property
    def dropped(self) -> tuple[str, ...]:
        """The parts of the understanding left out: dropped, or pinned (a filter says it instead)."""
        return tuple(sorted(self._dropped | set(self._pinned)))

    @property
    def facet_panel(self) -> FacetPanel | None:
        """The filter panel, once it has been shown and mounted (None before)."""
        panels = self.query(FacetPanel)
        return panels.first() if panels and panels.first().is_mounted else None

    def _show_facets(self, show: bool) -> Any:
        """Show or hide the filter panel, mounting it the first time it is shown; returns the mount to await."""
        panels = self.query(FacetPanel)
        if panels:
            panels.first().display = show
            return None
        if not show:
            return None
        return self.query_one("#body").mount(FacetPanel(mode=self.mode, id="facets"), before="#results-column")

    @on(FacetPanel.Ready)
    def _facets_ready(self, event: FacetPanel.Ready) -> None:
        event.stop()
        panel = self.query_one(FacetPanel)
        panel.set_facets(self.app.facets or {})
        panel.set_result_facets(self._counted)
        panel.mode = self._mode or self.app.default_mode  # a mode chosen while it was mounting
        panel.sort = self._sort

    def clear_filters(self) -> None:
        panel = self.facet_panel
        if panel is not None:
            panel.clear()

    # ---------------------------------------------------------------- app events
    def on_service_ready(self) -> None:
        """Called by the app once the service is open (facets and stats loaded)."""
        panel = self.facet_panel
        if panel is not None:
            panel.set_facets(self.app.facets or {})
        self.query_one("#tips", Static).update(tips((self.app.stats or {}).get("example_id")))
        self.refresh_header()
        self.search_now(force=True)

    async def first_results_shown(self, grace: float = 0.0, timeout: float = 3.0) -> None:
        """Wait `grace` s (a query typed meanwhile starts its search), then until the search running now, if any,
        has drawn its results: at most `timeout` s in all."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await asyncio.sleep(grace)
        worker = self._search_worker
        while worker is not None and not worker.is_finished and loop.time() < deadline:
            await asyncio.sleep(0.02)  # polled: cancelling a wait on the worker would cancel the search itself
        shown = loop.create_future()
        self.call_after_refresh(lambda: shown.done() or shown.set_result(None))
        try:
            await asyncio.wait_for(shown, max(deadline - loop.time(), 0.05))
        except asyncio.TimeoutError:
            pass

    def _model_state_changed(self) -> None:
        self.refresh_header()
        if self.app.model_state == "ready" and (self._waiting_for_model or self._degraded):
            self.search_now(force=True)

    # ---------------------------------------------------------------- searching
    @on(Input.Changed, "#query")
    def _query_changed(self) -> None:
        self._dropped.clear()
        self._pinned.clear()
        self._examples.clear()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(DEBOUNCE_S, self.search_now)

    @on(Input.Submitted, "#query")
    def _query_submitted(self) -> None:
        self.search_now()
        current = self._search_worker
        if current is not None and not current.is_finished:
            # Focus the results together with the rows on their way (also the first ones, before any is shown):
            # moving the focus now would restyle and redraw the old rows once more before the new ones are drawn.
            self._focus_seq = self._seq
        else:
            self.action_focus_results()

    @on(FacetPanel.Changed)
    def _facets_changed(self) -> None:
        """A mode or a price range searches again; a facet value or an order only rearranges the results."""
        self.refresh_header()
        if not self.search_now() and self.result is not None:
            self.call_later(self._redraw)

    def search_now(self, force: bool = False) -> bool:
        """Run the current query now (debounce timer cancelled); unchanged queries are not re-run (False)."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        query = parse_query(self.query_one("#query", Input).value)
        if self._examples and query.kind != "empty":
            query = Query("recommend", self._recommendation(query))
        mode, filters = self.mode, self.filters
        signature = (query, mode, tuple(filters), self.dropped)
        if signature == self._last_signature and not force:
            return False
        self._last_signature = signature
        self._seq += 1
        self._waiting_for_model = False
        self._degraded = False
        if query.kind == "empty":
            self.show_tips()
            return True
        if query.kind == "path":
            what = "a folder, not an image" if query.path and query.path.is_dir() else "no image file there (yet)"
            self.set_status(Text(f"{query.text}: {what}. Give a .jpg/.png/.webp file to search by image.",
                                 style="italic yellow"))
            return True
        if self.app.service is None:
            self.set_status(Text("Opening the data dir… your search runs when it is open.", style="italic"))
            return True
        ready = self.app.model_state == "ready"
        if not ready and (query.kind in ("image", "like", "compound", "recommend")
                          or mode not in ("lexical", "hybrid")):
            self._waiting_for_model = True
            what = "image search" if query.kind == "image" else f"{mode} search"
            self.set_status(Text(f"Loading model… the {what} runs as soon as it is ready.", style="italic"))
            return True
        if not ready and mode == "hybrid":
            mode = "lexical"
            self._degraded = True
        self.set_status(Text("searching…", style="dim italic"))
        self._search_worker = self._run_search(self._seq, query, mode, filters)
        return True

    def _recommendation(self, query: Query) -> str:
        """The liked products added and the not liked ones subtracted (the typed query when none is liked)."""
        liked = [f"like:{pid}" for pid, good in self._examples.items() if good]
        text = " + ".join(liked) if liked else (f'"{query.text}"' if query.kind == "image" else query.text)
        return text + "".join(f" - like:{pid}" for pid, good in self._examples.items() if not good)

    @work(exclusive=True, group="search", exit_on_error=False)
    async def _run_search(self, seq: int, query: Query, mode: str, filters: list[Filter]) -> None:
        service, k = self.app.service, max(self.app.k, TOP)  # the top TOP are counted; app.k are shown
        if service is None:
            return
        try:
            if query.kind == "image":
                call = (service.search_image, query.text)
                kwargs: dict[str, Any] = {"k": k, "filters": filters}
            elif query.kind == "like":
                call = (service.more_like_this, query.text)
                kwargs = {"k": k, "filters": filters}
            else:
                call = (service.search, query.text)
                kwargs = {"k": k, "mode": mode, "filters": filters}
                if self.dropped:
                    kwargs["drop"] = self.dropped
                if query.kind in ("compound", "recommend"):
                    kwargs["compound"] = True
                    if query.kind == "recommend":
                        kwargs["within"] = list(self._pool)
                elif mode == "hybrid":
                    await self._quick_lexical(seq, query, filters)
            result = await self.app.lane.call(*call, still_wanted=lambda: seq == self._seq, **kwargs)
            counted = await self.app.lane.call(_counted, service, result, still_wanted=lambda: seq == self._seq)
        except Skipped:
            return
        except Exception as exc:  # every failure becomes a notification; the app stays up
            if seq == self._seq:
                self._last_signature = None  # the same query may be tried again
                self.set_status(Text("The search failed: see the notification.", style="italic"))
                self.app.show_error(exc, title="Search failed")
            return
        if seq != self._seq:
            return  # a newer query is on its way: drop this stale result
        await self.show_result(result, query, seq=seq, counted=counted)

    async def _quick_lexical(self, seq: int, query: Query, filters: list[Filter]) -> None:
        """Hybrid needs the text encoder (slow on a busy CPU); words alone answer in a few ms. Run them first and
        show them if the hybrid result is not there within QUICK_S, so results follow typing at once."""
        app, wanted = self.app, (lambda: seq == self._seq)
        try:
            quick = await app.lane.call(app.service.search, query.text, k=app.k, mode="lexical", filters=filters,
                                        still_wanted=wanted)
        except Exception:  # the full search reports its own errors
            return
        self._quick_pending = (seq, quick)
        self.set_timer(QUICK_S, lambda: self._show_quick(seq, query))

    async def _show_quick(self, seq: int, query: Query) -> None:
        pending = self._quick_pending
        if pending is None or pending[0] != seq or not pending[1].hits:
            return
        await self.show_result(pending[1], query, seq=seq, quick=True)

    def show_tips(self) -> None:
        self.result = None
        self.query_one("#results").display = False  # its rows stay mounted: the next results reuse them
        self.query_one("#tips").display = True
        self.query_one(DetailPane).show(None)
        self.set_status("")

    async def show_result(self, result: SearchResult, query: Query, *, seq: int | None = None,
                          quick: bool = False, counted: tuple | None = None) -> None:
        """Replace the results; a quick (lexical-first) result never overwrites the full one of its query."""
        async with self._show_lock:
            if quick and (seq != self._seq or self._final_seq == seq):
                return
            if not quick:
                self._final_seq = seq
            self._refining = quick
            focus = seq is not None and seq == self._focus_seq
            if focus:
                self._focus_seq = None
            await self._show(result, query, focus=focus, counted=counted)

    async def _show(self, result: SearchResult, query: Query, *, focus: bool = False,
                    counted: tuple | None = None) -> None:
        self.result = result
        self.shown_query = query
        self._counted, self._keys = counted or (None, {})
        panel = self.facet_panel
        if panel is not None:
            panel.set_result_facets(self._counted)
        self._grades = self._read_grades(query)
        await self._draw(focus=focus)

    def _arranged(self) -> tuple[list[Hit], dict[str, str]]:
        """The result's hits narrowed to the chosen facet values, sorted, variants collapsed, app.k of them; and
        each row's label ("+3 colours")."""
        hits = list(self.result.hits) if self.result is not None else []
        panel = self.facet_panel
        chosen = panel.chosen() if panel is not None else {}
        if chosen and self._counted is not None:
            hits = self._counted.only(hits, chosen)
        hits = sort_hits(hits, self.sort)
        labels: dict[str, str] = {}
        if self._collapse and self._keys:
            rows = collapse_variants(hits, self._keys)
            hits = [row.hit for row in rows]
            labels = {row.hit.id: row.label for row in rows if row.label}
        return hits[:self.app.k], labels

    async def _redraw(self) -> None:
        async with self._show_lock:
            await self._draw()

    async def _draw(self, focus: bool = False) -> None:
        result, query = self.result, self.shown_query
        if result is None or query is None:
            return
        self._shown, labels = self._arranged()
        results = self.query_one("#results", ResultsList)
        await results.set_hits(self._shown, self.app.image_class, self._grades, labels)
        self.query_one("#tips").display = False
        results.display = True
        if focus:
            self.action_focus_results()
        self.set_status(self._status_text(result, query))
        if self._shown:
            self._show_detail(self._shown[0])
        else:
            self.query_one(DetailPane).show(None)
        self._load_thumbnails(self._draw_cached_thumbnails())
        self.call_after_refresh(trace, "results", query=query.text, n=len(self._shown), mode=result.mode,
                                quick=self._refining, took_ms=result.took_ms,
                                focused=getattr(self.app.focused, "id", None))

    def _read_grades(self, query: Query) -> dict[str, int]:
        """The query's judgements (one indexed SQLite read); none when they cannot be read (said once, elsewhere)."""
        key = identity(query)
        judging = getattr(self.app, "judging", None)
        if key is None or judging is None:
            return {}
        try:
            return judging.grades(*key)
        except Exception:  # an unreadable judgements file must not stop searching; judging reports it
            return {}

    # ---------------------------------------------------------------- judging (JudgeActions)
    def judge_target(self) -> tuple[ResultsList, str, str, str] | None:
        results = self.query_one("#results", ResultsList)
        key = identity(self.shown_query)
        if not results.display or key is None or self.result is None:
            return None
        return results, key[0], key[1], self.result.mode

    def judgements_changed(self, kind: str, text: str, grades: dict[str, int]) -> None:
        if identity(self.shown_query) != (kind, text) or self.result is None:
            return
        self._grades = grades
        self.set_status(self._status_text(self.result, self.shown_query))

    def _status_text(self, result: SearchResult, query: Query) -> Text:
        n = len(self._shown)
        text = Text()
        if self._grades and n:
            text.append_text(figures_text([h.id for h in self._shown], self._grades))
            text.append(" · ")
        if self._examples:
            liked = sum(1 for good in self._examples.values() if good)
            text.append("recommending ", style="bold")
            text.append(f"{liked} liked, {len(self._examples) - liked} not liked, among {len(self._pool)} results"
                        " (esc: back) · ")
        if query.kind == "image":
            text.append("image ", style="bold")
            text.append(query.path.name if query.path else query.text)
            text.append(" (ctrl+o: its regions)", style="dim")
            text.append(" · ")
        elif query.kind == "like":
            text.append("more like ", style="bold")
            text.append(query.text)
            text.append(" · ")
        parts = getattr(result, "parts", None)
        if parts is not None and parts.combined:
            text.append("parts ", style="bold")
            text.append("  ".join(f"{p['sign']}{p['kind']}:{p['value']}" + (f" x{p['weight']:g}" if p["weight"] != 1
                                                                         else "") for p in parts.to_json()))
            text.append(" · ")
        text.append(f"{n} result{'s' if n != 1 else ''}" if n else "no results")
        text.append(f" in {result.took_ms:.0f} ms · {result.mode}", style="dim")
        filters = self.filters
        if filters:
            text.append(" · " + ", ".join(str(f) for f in filters), style="italic")
        if self._degraded:
            text.append(" · lexical until the model is loaded", style="italic yellow")
        elif self._refining:
            text.append(" · words first, refining with the model…", style="italic yellow")
        if not n and filters:
            text.append(" · try clearing filters (ctrl+f)", style="dim")
        panel = self.facet_panel
        narrowed = ", ".join(f"{k} {v}" for k, v in (panel.chosen() if panel is not None else {}).items())
        if narrowed:
            text.append(f" · only {narrowed}", style="italic")
        if self.sort != "relevance":
            text.append(f" · sorted by {self.sort}", style="italic")
        understood = getattr(result, "understood", None)
        if understood is not None and not understood.empty:
            text.append(f" · understood: {understood.label()}", style="cyan")
            text.append(" (ctrl+g)", style="dim")
        elif self.dropped:
            text.append(" · understanding changed (ctrl+g)", style="dim")
        for note in getattr(result, "notes", None) or []:  # a part left out, a filter that matched nothing
            text.append(f" · {note}", style="yellow")
        return text

    # ---------------------------------------------------------------- thumbnails and details
    def _draw_cached_thumbnails(self) -> list[ResultItem]:
        """Draw the thumbnails already in the cache at once (same frame as the text); return the rows still to load."""
        app = self.app
        if app.image_class is None:
            return []
        size = pixels_for(app.image_protocol, 6, 3)
        missing = []
        for item in self.query_one("#results", ResultsList).items:
            if item.thumbnail is None or not item.hit.image_path:
                continue
            image = app.thumbnails.peek(item.hit.image_path, size)
            if image is not None:
                item.thumbnail.show(image)
            else:
                missing.append(item)
        return missing

    @work(exclusive=True, group="thumbs", exit_on_error=False)
    async def _load_thumbnails(self, items: list[ResultItem]) -> None:
        await load_thumbnails(self.app, items)

    @on(ListView.Highlighted, "#results")
    def _highlighted(self, event: ListView.Highlighted) -> None:
        if isinstance(event.item, ResultItem):
            self._show_detail(event.item.hit)

    @on(ListView.Selected, "#results")
    def _selected(self, event: ListView.Selected) -> None:
        self.action_open_detail()

    def _show_detail(self, hit: Hit) -> None:
        pane = self.query_one(DetailPane)
        pane.show(hit)
        if pane.display:
            self._load_detail(hit)

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def _load_detail(self, hit: Hit) -> None:
        app = self.app
        pane = self.query_one(DetailPane)
        product = None
        if app.service is not None:
            try:
                product = await app.lane.call(app.service.product, hit.id, still_wanted=lambda: pane.hit is hit)
            except Skipped:
                return
            except Exception:  # the hit itself still shows; a missing record is not worth a dialog
                product = None
        if pane.hit is not hit:
            return
        pane.show(hit, product)
        if app.image_class is not None and hit.image_path:
            box = pane.query_one("#detail-image").size
            cols, rows = (box.width, box.height) if box.width and box.height else (28, 14)
            image = await asyncio.to_thread(app.thumbnails.get, hit.image_path, pixels_for(app.image_protocol, cols, rows))
            if pane.hit is hit:
                pane.show_image(image)
        else:
            pane.show_image(None)

    # ---------------------------------------------------------------- actions
    def current_hit(self) -> Hit | None:
        results = self.query_one("#results", ResultsList)
        return results.current_hit if results.display else None

    def action_more_like_this(self, hit: Hit | None = None) -> None:
        hit = hit or self.current_hit()
        if hit is None:
            self.app.notify("Highlight a result first.", severity="warning")
            return
        query = self.query_one("#query", Input)
        query.value = f"{LIKE_PREFIX}{hit.id}"
        self.search_now()
        self.action_focus_results()

    def action_refine(self) -> None:
        """Start a refinement of the highlighted product: the box holds it as a like: part, then what is typed
        ("in red", "cheaper", "for men", "without the logo")."""
        hit = self.current_hit()
        if hit is None:
            self.app.notify("Highlight a result first.", severity="warning")
            return
        box = self.query_one("#query", Input)
        box.value = f"{LIKE_PREFIX}{hit.id} + "
        box.focus()
        self.call_after_refresh(box.action_end)  # after the focus selected it all: typing adds to it

    def action_example(self, liked: bool) -> None:
        """Mark the highlighted product liked / not liked: the results are ranked again by the examples."""
        hit = self.current_hit()
        if hit is None or self.result is None:
            return
        if not self._examples:
            self._pool = tuple(h.id for h in self.result.hits)
        self._examples[hit.id] = liked
        self.search_now()

    def action_toggle_variants(self) -> None:
        self._collapse = not self._collapse
        self.app.notify("Variants " + ("collapsed" if self._collapse else "shown one per row"), timeout=1.5)
        if self.result is not None:
            self.call_later(self._redraw)

    @property
    def sort(self) -> str:
        panel = self.facet_panel
        return panel.sort if panel is not None else self._sort

    def action_cycle_sort(self) -> None:
        order = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        panel = self.facet_panel
        if panel is not None:
            panel.sort = order  # the panel reports the change (FacetPanel.Changed)
        else:
            self._sort = order
            if self.result is not None:
                self.call_later(self._redraw)
        self.app.notify(f"Sorted by {order}", timeout=1.5)

    def action_open_detail(self) -> None:
        hit = self.current_hit()
        if hit is None:
            return
        from mmtui.tui.screens.detail import DetailScreen  # built on first use, like the app's other screens
        self.app.push_screen(DetailScreen(hit), self._detail_closed)

    def _detail_closed(self, result: Any) -> None:
        if isinstance(result, Hit):
            self.action_more_like_this(result)

    def action_focus_results(self) -> None:
        results = self.query_one("#results", ResultsList)
        if results.display:
            results.focus()

    def action_focus_search(self) -> None:
        self.query_one("#query").focus()

    def action_escape(self) -> None:
        if self._examples:  # back from the recommendation to the results it ranked
            self._examples.clear()
            self.search_now()
            return
        query = self.query_one("#query", Input)
        if self.focused is not query:
            query.focus()
        elif query.value:
            query.value = ""
            self.search_now()

    async def action_toggle_facets(self) -> None:
        self._facets_chosen = True
        panels = self.query(FacetPanel)
        show = not panels or not panels.first().display
        mounting = self._show_facets(show)
        if mounting is not None:
            await mounting
        if show:
            self.query_one("#facets").query_one("#mode").focus()
        else:
            self.query_one("#query").focus()

    def action_understood(self) -> None:
        """Show what the query was understood to ask for; drop a part or pin it to one value (a facet filter)."""
        from mmtui.tui.screens.understood import UnderstoodDialog

        result = self.result
        understood = getattr(result, "understood", None) if result is not None and result.kind in ("text", "compound") else None
        self.app.push_screen(UnderstoodDialog(understood, changed=bool(self.dropped)), self._understood_changed)

    def _understood_changed(self, action: tuple | None) -> None:
        if not action:
            return
        what, facet, value = action
        if what == "reset":
            self._dropped.clear()
            self._pinned.clear()
        elif what == "drop":
            self._dropped.add(facet)
        elif what == "pin":
            self._pinned[facet] = self.result.understood.filter_for(facet, value)
        self.search_now()

    def action_regions(self) -> None:
        """The regions of the query photo (mmtui.tui.screens.regions): proposed ones, or a box the user moves."""
        query = parse_query(self.query_one("#query", Input).value)
        if query.kind != "image":
            self.app.notify("Search by a photo first (type or paste its path), then ctrl+o shows its regions.",
                            severity="warning")
            return
        from mmtui.tui.screens.regions import RegionScreen

        self.app.push_screen(RegionScreen(query.path or query.text, self.filters), self._regions_closed)

    def _regions_closed(self, chosen: Any) -> None:
        if isinstance(chosen, tuple) and chosen[0] == "like":
            self.query_one("#query", Input).value = f"{LIKE_PREFIX}{chosen[1]}"
            self.search_now()
            self.action_focus_results()

    def action_cycle_mode(self) -> None:
        mode = self.mode
        self.set_mode(MODES[(MODES.index(mode) + 1) % len(MODES)] if mode in MODES else "hybrid")
        self.app.notify(f"Mode: {self.mode}", timeout=1.5)

    def set_mode(self, mode: str) -> None:
        panel = self.facet_panel
        if panel is not None:
            panel.mode = mode  # the panel reports the change (FacetPanel.Changed)
        elif mode != self.mode:
            self._mode = mode
            self._facets_changed()

    def set_query(self, text: str) -> None:
        self.query_one("#query", Input).value = text
        self.search_now()


def _counted(service: Any, result: SearchResult) -> tuple[Any, dict[str, str]]:
    """(the result's facet counts, its variant keys), on the service lane."""
    return service.result_facets(result.hits), service.variant_keys(result.hits)
