"""The regions screen (ctrl+o on a photo search): proposed regions with their products, a box to move and search."""

from __future__ import annotations

import pytest
from conftest import settle
from PIL import Image
from textual.widgets import Input

from mmtui.catalog.regions import Box
from mmtui.tui.screens.regions import RegionScreen, draw_boxes
from mmtui.tui.widgets.results import ResultItem

pytestmark = pytest.mark.anyio


def shelf(product_images, tmp_path):
    """A 96x32 'shelf': the Red Dress (1005), the Green Backpack (1010) and the Navy Shoes (1001) side by side."""
    picture = Image.new("RGB", (96, 32), (255, 255, 255))
    for n, pid in enumerate(("1005", "1010", "1001")):
        with Image.open(product_images[pid]) as im:
            picture.paste(im.convert("RGB"), (32 * n, 0))
    path = tmp_path / "shelf.png"
    picture.save(path)
    return path


def shown(screen) -> list[str]:
    return [item.hit.id for item in screen.query_one("#region-results").query(ResultItem)]


async def test_regions_of_a_photo_show_each_region_s_products_and_a_box_can_be_searched(make_test_app,
                                                                                        product_images, tmp_path):
    app, service = make_test_app()
    photo = shelf(product_images, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, app)
        app.search_screen.query_one("#query", Input).value = str(photo)
        await settle(pilot, app, 0.35)
        await pilot.press("ctrl+o")
        await settle(pilot, app, 0.1)
        screen = app.screen
        assert isinstance(screen, RegionScreen)
        assert ("search_regions", str(photo)) in service.calls
        assert [r.box for r in screen.result.regions] == [Box(0, 0, 32, 32), Box(32, 0, 32, 32), Box(64, 0, 32, 32)]
        assert screen.selected == 0 and shown(screen)[0] == "1005"
        await pilot.press("n")
        await settle(pilot, app)
        assert screen.selected == 1 and shown(screen)[0] == "1010"
        await pilot.press("p", "p")
        await settle(pilot, app)
        assert screen.selected == 2 and shown(screen)[0] == "1001"
        assert "region 3 of 3" in str(screen.query_one("#region-status").render())
        # a box of the user's own: from region 1, moved right by a third of the shelf, searched with Enter
        await pilot.press("n")
        await settle(pilot, app)
        screen.query_one("#region-canvas").focus()
        for _ in range(6):  # 6 steps of 5% of the picture's 32 px side (2 px) = 12 px
            await pilot.press("right")
        assert "your box 12,0,32,32 · Enter: search it" in str(screen.query_one("#region-status").render())
        await pilot.press("enter")
        await settle(pilot, app, 0.1)
        assert screen.edited == Box(12, 0, 32, 32)
        assert service.calls[-1][:2] == ("search_image", str(photo)) and service.calls[-1][-1] == "12,0,32,32"
        assert "your box 12,0,32,32" in str(screen.query_one("#region-status").render())
        await pilot.press("escape")
        await settle(pilot, app)
        assert app.screen is app.search_screen


async def test_more_like_a_region_s_product_goes_back_to_the_search(make_test_app, product_images, tmp_path):
    app, service = make_test_app()
    photo = shelf(product_images, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, app)
        app.search_screen.query_one("#query", Input).value = str(photo)
        await settle(pilot, app, 0.35)
        await pilot.press("ctrl+o")
        await settle(pilot, app, 0.1)
        app.screen.query_one("#region-results").focus()
        await pilot.press("m")
        await settle(pilot, app, 0.1)
        assert app.screen is app.search_screen
        assert app.search_screen.query_one("#query", Input).value == "like:1005"
        assert ("more_like_this", "1005") in service.calls


async def test_ctrl_o_without_a_photo_says_what_to_do(make_test_app):
    app, service = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        app.search_screen.query_one("#query", Input).value = "red dress"
        await settle(pilot, app, 0.35)
        await pilot.press("ctrl+o")
        await settle(pilot, app)
        assert app.screen is app.search_screen
        assert not any(c[0] == "search_regions" for c in service.calls)


def test_boxes_are_drawn_where_they_are_in_the_picture():
    picture = Image.new("RGB", (200, 100), (255, 255, 255))
    canvas = draw_boxes(picture, (100, 100), [Box(0, 0, 100, 100), Box(100, 0, 100, 100)], 1, None, (200, 100))
    assert canvas.size == (100, 100)
    # the picture is letterboxed (50 px tall, from y=25); box 2 (selected) is the right half, drawn in red
    assert canvas.getpixel((50, 10)) == (0, 0, 0)
    assert canvas.getpixel((99, 50))[0] > 200 and canvas.getpixel((99, 50))[1] < 100
    assert canvas.getpixel((75, 50)) == (255, 255, 255)
    moved = draw_boxes(picture, (100, 100), [Box(0, 0, 100, 100)], 0, Box(50, 25, 50, 50), (200, 100))
    assert moved.getpixel((25, 37))[0] > 200 and moved.getpixel((25, 37))[1] < 100  # the edited box's left edge
