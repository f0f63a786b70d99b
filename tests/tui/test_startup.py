"""Start-up order: the service opened before Textual starts is used as is; the model loads after the first results."""

from __future__ import annotations

import threading
import time

import pytest
from conftest import FakeSearchService, fake_build, fake_train
from textual.widgets import Input

from mmtui.errors import StoreError
from mmtui.tui.app import make_app
from mmtui.tui.lane import ServiceLane
from mmtui.tui.widgets.results import ResultItem

pytestmark = pytest.mark.anyio


async def _until(pilot, cond, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if cond():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")


async def test_prefetched_service_is_used_and_the_model_loads_after_the_first_results(settings, product_images):
    service = FakeSearchService(settings, product_images, ready=False)
    opened: list[str] = []

    def factory(s):
        opened.append("factory")
        return service

    def open_when_let(s):  # the data dir opens only once the test has typed its query: no race with the grace
        assert gate.wait(10)
        return service

    searched = service.search

    def slow_search(*args, **kw):  # slow enough that a model load started alongside would begin first
        time.sleep(0.3)
        hits = searched(*args, **kw)
        service.calls.append(("search_done",))
        return hits

    service.search = slow_search
    gate = threading.Event()
    lane = ServiceLane()
    opening = lane.submit(open_when_let, settings)
    app = make_app(settings, factory, build_fn=fake_build(), train_fn=fake_train(), lane=lane, opening=opening)
    async with app.run_test(size=(100, 30)) as pilot:
        app.search_screen.query_one("#query", Input).value = "shoes"  # typed before the data dir is open
        await pilot.pause(0.3)  # the debounce passes: "your search runs when it is open"
        assert app.service is None and service.calls == []
        gate.set()
        await _until(pilot, lambda: app.model_state == "ready")
        calls = [c[0] for c in service.calls]
        assert ("search", "shoes", "lexical") in [c[:3] for c in service.calls]
        assert calls.index("search_done") < calls.index("load_model")  # words first, then the model
        assert opened == []  # the service opened before the app started is the one used
        await _until(pilot, lambda: any(len(i.hit.signals) > 1 for i in app.search_screen.query(ResultItem)))


async def test_prefetched_open_that_fails_offers_a_build(settings, product_images):
    lane = ServiceLane()

    def fail(s):
        raise StoreError("no index yet", "build one")

    opening = lane.submit(fail, settings)
    app = make_app(settings, lambda s: FakeSearchService(settings, product_images), build_fn=fake_build(),
                   train_fn=fake_train(), lane=lane, opening=opening, sample_catalog=None)
    async with app.run_test(size=(100, 30)) as pilot:
        await _until(pilot, lambda: app.model_state == "no-data")
        assert app.service is None
