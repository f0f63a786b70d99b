"""What a new user sees first in the TUI: a status line that shows all it understood, help that lists every key,
a detail view with nothing of the screen behind it at its edges, and tips whose example works on this catalog."""

from __future__ import annotations

import io

import pytest
from conftest import settle
from textual.widgets import Input

pytestmark = pytest.mark.anyio


def screen_lines(app) -> list[str]:
    """The characters on the terminal now, line by line (as a screenshot would show them)."""
    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, record=True,
                      legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text().splitlines()


async def search(pilot, app, text: str) -> None:
    box = app.search_screen.query_one("#query", Input)
    box.focus()
    box.value = ""
    await pilot.press(*list(text))
    await settle(pilot, app, 0.35)


async def test_the_status_line_shows_all_that_was_understood_at_140_columns(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(140, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "women watch")
        status = app.search_screen.query_one("#status")
        top = status.region.y
        shown = " ".join(line[status.region.x:status.region.right].strip()
                         for line in screen_lines(app)[top:top + status.region.height])
        assert "understood: kind: Watches · for: Women (ctrl+g)" in shown, shown
        await search(pilot, app, "shoes")  # a short status: one line again
        assert status.region.height == 1


async def test_help_lists_every_key_the_screens_offer(make_test_app):
    from mmtui.tui.app import MmtuiApp
    from mmtui.tui.screens.help import SECTIONS
    from mmtui.tui.screens.search import SearchScreen

    listed = " ".join(key.lower() for _, rows in SECTIONS for key, _ in rows)
    for binding in [*MmtuiApp.BINDINGS, *SearchScreen.BINDINGS]:
        if binding.show:
            assert binding.key in listed, binding


async def test_the_detail_view_hides_the_search_screen_at_its_edges(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(140, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "watch")
        await pilot.press("enter", "enter")
        await settle(pilot, app)
        pane = app.screen.query_one("#detail-full")
        lines = screen_lines(app)
        outside = [line[:pane.region.x] + line[pane.region.right:] for line in lines[:pane.region.bottom]]
        assert not "".join(outside).strip(), outside


async def test_the_tips_example_is_a_product_of_this_catalog_and_finds_it(make_test_app):
    app, service = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        tips = str(app.search_screen.query_one("#tips").render())
        assert "like:1003" in tips and "15970" not in tips
        await search(pilot, app, "like:1003")
        assert ("more_like_this", "1003") in service.calls
