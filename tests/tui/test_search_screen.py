"""Pilot tests of the search screen over a fake service."""

from __future__ import annotations

import pytest

from mmtui.errors import QueryError
from mmtui.tui.widgets.results import ResultItem, ResultsList


async def wait_idle(pilot, app) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def titles(app) -> list[str]:
    return [item.hit.title for item in app.screen.query(ResultItem)]


async def type_query(pilot, app, text: str) -> None:
    app.screen.query_one("#query").focus()
    await pilot.press(*list(text))
    await pilot.pause(0.35)
    await wait_idle(pilot, app)


async def test_typing_a_query_shows_results(make_test_app):
    app, service = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_idle(pilot, app)
        await type_query(pilot, app, "running shoes")
        got = titles(app)
        assert got and all("Running Shoes" in t for t in got[:3])
        assert ("search", "running shoes", "hybrid", ()) in service.calls
