"""The mmtui Textual app: `make_app()` builds it (tests inject fakes), `run()` starts it in the terminal.

Everything slow runs off the UI thread: the service (SQLite + indexes) lives on one lane thread, the model
loads on a daemon thread, builds and training run on daemon threads with a cancel event.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from mmtui.config import Settings
from mmtui.errors import MmtuiError, StoreError
from mmtui.query.service import MODES
from mmtui.tui.lane import ServiceLane, in_daemon_thread
from mmtui.tui.screens.dialogs import ConfirmDialog, ErrorDialog
from mmtui.tui.screens.search import SearchScreen
from mmtui.tui.thumbnails import ThumbnailCache, detect_graphics, image_widget_class
from mmtui.tui.trace import trace

DEFAULT_K = 20
MODEL_GRACE_S = 0.6  # the model starts loading this long after the service opens (or once the first search shows)
ServiceFactory = Callable[[Settings], Any]


def default_service_factory(settings: Settings) -> Any:
    from mmtui.query.service import SearchService  # the lead's service; imported late so the app starts fast

    return SearchService.open(settings)


def default_build(settings: Settings, catalog: Any, **kwargs: Any) -> Any:
    try:
        from mmtui.build.pipeline import build_index
    except ImportError as exc:
        raise MmtuiError("building is not available in this install", f"reinstall mmtui ({exc})") from None
    return build_index(settings, catalog, **kwargs)


def default_train(settings: Settings, **kwargs: Any) -> Any:
    try:
        from mmtui.train.adapter import train_adapter
    except ImportError as exc:
        raise MmtuiError("training is not available in this install", f"reinstall mmtui ({exc})") from None
    return train_adapter(settings, **kwargs)


def default_use_model(settings: Settings, name: str) -> Any:
    """Make `name` (a checkpoint or "base") the active model: a write to the data dir, on its own connection.
    The open service then re-reads it with reload()."""
    from mmtui.store.db import Store
    from mmtui.train.promote import use_model  # the write path (build, training): imported when a model is switched
    from mmtui.build.reencode import reindex_for

    store = Store.open(settings.db_path)
    try:
        return use_model(settings, name, store=store, reindex=reindex_for(settings, name, store))
    finally:
        store.close()


def find_sample_catalog() -> Path | None:
    """The repo's sample_catalog/: next to the package (source checkout) or in the current directory."""
    here = Path(__file__).resolve()
    for candidate in (Path.cwd() / "sample_catalog", here.parents[2] / "sample_catalog"):
        if candidate.is_dir() and any(candidate.iterdir()):
            return candidate
    return None


def error_text(exc: BaseException) -> tuple[str, str]:
    """(message, hint) for any exception; unexpected ones get a hint too."""
    if isinstance(exc, MmtuiError):
        return exc.message, exc.hint
    return f"{type(exc).__name__}: {exc}", "this is unexpected: please report it with the steps that led to it"


class MmtuiApp(App):
    """Search, look, compare and train from the terminal."""

    CSS_PATH = "app.tcss"
    TITLE = "mmtui"
    ENABLE_COMMAND_PALETTE = True
    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("question_mark", "help", "Help", show=False),
        Binding("f2", "metrics", "Metrics"),
        Binding("f3", "train", "Train"),
        Binding("f4", "build", "Build"),
        Binding("f5", "models", "Models"),
        Binding("f6", "compare", "Compare"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    model_state: reactive[str] = reactive("opening")  # opening | loading | ready | failed | no-data | building

    def __init__(
        self,
        settings: Settings,
        *,
        service_factory: ServiceFactory | None = None,
        build_fn: Callable[..., Any] | None = None,
        train_fn: Callable[..., Any] | None = None,
        use_model_fn: Callable[[Settings, str], Any] | None = None,
        images: str = "halfcell",
        image_reason: str = "",
        k: int = DEFAULT_K,
        mode: str = "hybrid",
        sample_catalog: Path | None = None,
        lane: ServiceLane | None = None,
        opening: Future | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.service_factory = service_factory or default_service_factory
        self.build_fn = build_fn or default_build
        self.train_fn = train_fn or default_train
        self.use_model_fn = use_model_fn or default_use_model
        self.image_protocol = images
        self.image_reason = image_reason or "chosen by the caller"  # why this protocol (F1, mmtui doctor)
        self.image_class = image_widget_class(images)
        self.k = k
        self.default_mode = mode if mode in MODES else "hybrid"
        self.sample_catalog = sample_catalog if sample_catalog is not None else find_sample_catalog()
        self.thumbnails = ThumbnailCache()
        self.lane = lane or ServiceLane()
        self._opening = opening  # the service already being opened on the lane (run() starts it before Textual)
        self.service: Any | None = None
        self.stats: dict[str, Any] = {}
        self.facets: dict[str, Any] = {}
        self.models: list[dict[str, Any]] = []
        self.cancel_events: set[threading.Event] = set()
        self.long_work: set[asyncio.Future] = set()
        self.search_screen = SearchScreen()
        from mmtui.tui.judging import Judging

        self.judging = Judging(settings)

    # ---------------------------------------------------------------- start up
    def on_mount(self) -> None:
        self.push_screen(self.search_screen)
        self.open_service()

    @work(exclusive=True, group="service", exit_on_error=False)
    async def open_service(self, quiet: bool = False) -> None:
        """Open the store and indexes on the lane, then load the model on its own thread.

        quiet: after a cancelled or failed build, a data dir that cannot be opened is only a notification."""
        self.model_state = "opening"
        await self.release_service()
        opening, self._opening = self._opening, None
        try:
            service = await (asyncio.wrap_future(opening) if opening is not None
                             else self.lane.call(self.service_factory, self.settings))
            stats = await self.lane.call(service.stats)
            facets = await self.lane.call(service.facets)
        except Exception as exc:
            self.model_state = "no-data"
            self.search_screen.refresh_header()
            if quiet:
                self.show_error(exc, title="The index is not usable yet")
            elif isinstance(exc, StoreError):
                self.offer_build(exc)
            else:
                self.show_error(exc, title="Cannot open the data dir", dialog=True)
            return
        self.service, self.stats, self.facets = service, stats or {}, facets or {}
        trace("service_open")
        await self.refresh_models()
        self.search_screen.on_service_ready()
        if getattr(service, "model_ready", False):
            self.model_state = "ready"
        else:
            # Loading the model holds the GIL for seconds (imports, weights): let the first frame and the first
            # search typed (lexical while the model loads) show first.
            self.model_state = "loading"
            # a torch-free query model loads in a fraction of a second: no need to let the first frame go first
            light = await self.lane.call(lambda: getattr(service, "light_model", False))
            await self.search_screen.first_results_shown(grace=0.0 if light else MODEL_GRACE_S)
            self.load_model()

    @work(exclusive=True, group="model", exit_on_error=False)
    async def load_model(self) -> None:
        service = self.service
        if service is None:
            return
        self.model_state = "loading"
        try:
            await in_daemon_thread(service.load_model)
        except Exception as exc:
            if service is self.service:
                self.model_state = "failed"
                self.show_error(exc, title="The model could not be loaded")
            return
        if service is self.service:
            self.model_state = "ready"
            trace("model_ready")
            for note in list(getattr(service, "notes", [])):  # e.g. why the query model loaded torch
                self.notify(note, title="Query model", severity="warning", timeout=8)

    async def release_service(self) -> None:
        """Forget (and close, when it can) the current service, e.g. before a rebuild."""
        service, self.service = self.service, None
        close = getattr(service, "close", None)
        if callable(close):
            try:
                await self.lane.call(close)
            except Exception:
                pass

    async def refresh_models(self) -> None:
        if self.service is None:
            return
        try:
            self.models = list(await self.lane.call(self.service.models))
        except Exception:
            self.models = []

    def data_changed(self, quiet: bool = False) -> None:
        """A build or a promotion changed the data dir: reopen everything."""
        self.open_service(quiet)

    def watch_model_state(self, state: str) -> None:
        self.sub_title = state

    # ---------------------------------------------------------------- errors
    def show_error(self, exc: BaseException, *, title: str = "Error", dialog: bool = False) -> None:
        """Every failure ends here: a notification (or a dialog) with what went wrong and what to do."""
        message, hint = error_text(exc)
        if dialog:
            self.push_screen(ErrorDialog(title, message, hint))
        else:
            self.notify(f"{message}\n→ {hint}" if hint else message, title=title, severity="error", timeout=10,
                        markup=False)

    def offer_build(self, exc: MmtuiError) -> None:
        """No index yet: offer to build the sample catalog on the build screen."""
        if self.sample_catalog is None:
            self.push_screen(ErrorDialog("No index yet", exc.message,
                                         exc.hint or "press F4 to build one from a catalog folder or file"))
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.action_build(catalog=str(self.sample_catalog), autostart=True)

        self.push_screen(ConfirmDialog(
            "No index yet", f"{exc.message}\n\nBuild one from the sample catalog ({self.sample_catalog})?",
            exc.hint, yes="Build sample catalog", no="Not now"), answered)

    # ---------------------------------------------------------------- actions
    # Screens other than search are imported when first opened: the app starts without building them.
    def action_help(self) -> None:
        from mmtui.tui.screens.help import HelpScreen
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def _push_once(self, screen_type: type[Screen], factory: Callable[[], Screen]) -> None:
        """Show a work screen: go back to it if it is open, else open it in place of an idle work screen."""
        if isinstance(self.screen, screen_type):
            return
        for screen in self.screen_stack:
            if isinstance(screen, screen_type):
                while not isinstance(self.screen, screen_type):
                    self.pop_screen()
                return
        while (len(self.screen_stack) > 2 and self.screen is not self.search_screen
               and not getattr(self.screen, "running", False)):
            self.pop_screen()  # F-keys switch between screens instead of piling them up
        self.push_screen(factory())

    def action_metrics(self) -> None:
        from mmtui.tui.screens.metrics import MetricsScreen
        self._push_once(MetricsScreen, MetricsScreen)

    def action_train(self) -> None:
        from mmtui.tui.screens.training import TrainingScreen
        self._push_once(TrainingScreen, TrainingScreen)

    def action_build(self, catalog: str | None = None, autostart: bool = False) -> None:
        from mmtui.tui.screens.build import BuildScreen
        self._push_once(BuildScreen, lambda: BuildScreen(catalog=catalog, autostart=autostart))

    def action_search(self) -> None:
        while self.screen is not self.search_screen and len(self.screen_stack) > 1:
            self.pop_screen()

    def action_compare(self) -> None:
        """The query on the search screen ranked two ways, side by side (and interleaved with i)."""
        from mmtui.tui.judging import identity
        from mmtui.tui.screens.compare import CompareScreen

        if isinstance(self.screen, CompareScreen):
            return
        query = self.search_screen.shown_query
        if self.service is None or identity(query) is None:
            self.notify("Search for something first, then F6 compares two rankings of it.", title="Compare",
                        severity="warning")
            return
        self.action_search()
        self.push_screen(CompareScreen(query))

    async def action_models(self) -> None:
        from mmtui.tui.screens.models import ModelScreen
        if self.service is None:
            self.notify("No index is open yet.", title="Models", severity="warning")
            return
        await self.refresh_models()

        def chosen(name: str | None) -> None:
            active = [m.get("name") for m in self.models if m.get("active")]
            if name and name not in active:
                self.switch_model(name)

        self.push_screen(ModelScreen(self.models), chosen)

    @work(exclusive=True, group="model", exit_on_error=False)
    async def switch_model(self, name: str) -> None:
        service = self.service
        if service is None:
            return
        self.model_state = "loading"
        try:
            await self.lane.call(self.use_model_fn, self.settings, name)
            await self.lane.call(service.reload)
            self.stats = await self.lane.call(service.stats) or {}
        except Exception as exc:
            self.model_state = "ready" if getattr(service, "model_ready", False) else "failed"
            self.show_error(exc, title=f"Cannot switch to {name}")
            return
        await self.refresh_models()
        self.notify(f"Now searching with {name}.", title="Model switched", timeout=3)
        if getattr(service, "model_ready", True):
            self.model_state = "ready"
            self.search_screen.search_now(force=True)
        else:
            self.load_model()

    def set_mode(self, mode: str) -> None:
        self.action_search()
        self.search_screen.set_mode(mode)

    def run_long(self, fn: Callable[..., Any], *args: Any, cancel: threading.Event | None = None,
                 **kwargs: Any) -> "asyncio.Future[Any]":
        """Start build/training on a daemon thread; quitting sets its cancel event and waits briefly."""
        future = asyncio.ensure_future(in_daemon_thread(fn, *args, cancel=cancel, **kwargs))
        self.long_work.add(future)
        if cancel is not None:
            self.cancel_events.add(cancel)
        future.add_done_callback(lambda f: (self.long_work.discard(f), self.cancel_events.discard(cancel)))
        return future

    async def action_quit(self) -> None:
        for event in list(self.cancel_events):
            event.set()
        if self.long_work:
            await asyncio.wait(list(self.long_work), timeout=3)
        self.lane.close()
        self.judging.close()
        self.exit()

    # ---------------------------------------------------------------- command palette
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Search", "Back to the search screen", self.action_search)
        for mode in MODES:
            yield SystemCommand(f"Mode: {mode}", f"Search in {mode} mode", lambda m=mode: self.set_mode(m))
        yield SystemCommand("Filters: show or hide", "Category, colour, gender, price range",
                            lambda: (self.action_search(), self.call_later(self.search_screen.action_toggle_facets)))
        yield SystemCommand("Filters: clear", "Remove every filter",
                            self.search_screen.clear_filters)
        yield SystemCommand("Switch model", "The base model or a trained checkpoint (F5)", self.action_models)
        for model in self.models:
            name = str(model.get("name"))
            if not model.get("active"):
                yield SystemCommand(f"Use model: {name}", f"{model.get('kind', '')} model",
                                    lambda n=name: self.switch_model(n))
        yield SystemCommand("Compare rankings", "The query ranked two ways side by side, or interleaved (F6)",
                            self.action_compare)
        yield SystemCommand("Metrics", "Eval reports and training curves (F2)", self.action_metrics)
        yield SystemCommand("Train adapter", "Train with a live loss curve (F3)", self.action_train)
        yield SystemCommand("Build index", "Build from a catalog with progress (F4)", self.action_build)
        yield SystemCommand("Help", "Keys and tips (F1)", self.action_help)


def make_app(settings: Settings, service_factory: ServiceFactory | None = None, **options: Any) -> MmtuiApp:
    """The app over `settings`; tests pass fakes for the service and for build_fn, train_fn, use_model_fn
    (the options are MmtuiApp's: images, k, mode, sample_catalog, lane, opening)."""
    return MmtuiApp(settings, service_factory=service_factory, **options)


def run(settings: Settings, *, images: str | Callable[[], Any] | None = None, mode: str = "hybrid") -> None:
    """Start the TUI in this terminal (`mmtui tui`). The image protocol is known before the app starts.

    images: a protocol name, None to ask the terminal, or a pending answer from `thumbnails.start_detecting()`."""
    trace("run")  # imports done
    lane = ServiceLane()
    opening = lane.submit(default_service_factory, settings)  # SQLite and indexes open while Textual starts
    choice = images() if callable(images) else detect_graphics(images)
    trace("protocol", protocol=choice.protocol, reason=choice.reason)
    make_app(settings, images=choice.protocol, image_reason=choice.reason, mode=mode, lane=lane,
             opening=opening).run()
