"""Result rows are updated in place from one query to the next (no remount), and still show exactly the new hits."""

from __future__ import annotations

import pytest
from conftest import settle
from textual.widgets import Input

from mmtui.tui.thumbnails import ThumbnailCache
from mmtui.tui.widgets.results import ResultItem, ResultsList, hit_text

pytestmark = pytest.mark.anyio


async def search(pilot, app, text: str, enter: bool = False) -> None:
    box = app.search_screen.query_one("#query", Input)
    box.focus()
    box.value = text
    if enter:
        await pilot.press("enter")
    await settle(pilot, app, 0.35)


def rows(app) -> list[ResultItem]:
    return list(app.search_screen.query(ResultItem))


async def test_rows_are_reused_and_show_the_new_hits_and_thumbnails(make_test_app):
    app, service = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "shoes")
        first = rows(app)
        assert len(first) == 4
        await search(pilot, app, "watch socks handbag")  # 1012 (socks) has no image
        second = rows(app)
        expected = service.search("watch socks handbag", mode="hybrid").hits
        assert [r.hit.id for r in second] == [h.id for h in expected]
        assert second[:len(first)] == first[:len(second)]  # the same widgets, not new ones
        for row in second:
            assert row._text.content.plain == hit_text(row.hit).plain
            thumb = row.thumbnail
            if row.hit.image_path:
                widget = thumb._image_widget
                assert widget is not None and widget.display
                assert widget.image is app.thumbnails.peek(row.hit.image_path, (6, 6))
            else:
                assert thumb._image_widget is None and not thumb.has_image
        await search(pilot, app, "shoes")  # the no-image row goes back to an image
        assert all(r.thumbnail._image_widget is not None and r.thumbnail.has_image for r in rows(app))
        assert rows(app) == first


async def test_fewer_hits_remove_rows_and_more_add_them(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "men")
        many = len(rows(app))
        await search(pilot, app, "backpack")
        assert [r.hit.id for r in rows(app)] == ["1010"]
        results = app.search_screen.query_one("#results", ResultsList)
        assert results.index == 0 and results.current_hit.id == "1010"
        await search(pilot, app, "men")
        assert len(rows(app)) == many


async def test_tips_hide_the_rows_and_nothing_is_highlighted(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "shoes")
        await search(pilot, app, "")
        screen = app.search_screen
        assert not screen.query_one("#results").display and screen.query_one("#tips").display
        assert screen.current_hit() is None and screen.result is None


async def test_enter_moves_the_focus_with_the_new_results_not_before(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "shoes")
        box = app.search_screen.query_one("#query", Input)
        box.focus()
        box.value = "watch"
        await pilot.press("enter")
        await settle(pilot, app, 0.1)
        assert app.focused is app.search_screen.query_one("#results")
        assert app.search_screen.current_hit().id in ("1006", "1007")


def test_peek_never_reads_a_file(product_images):
    cache = ThumbnailCache()
    path = product_images["1001"]
    assert cache.peek(path, (6, 6)) is None and len(cache) == 0
    image = cache.get(path, (6, 6))
    assert cache.peek(path, (6, 6)) is image
