"""Refining from a result in the TUI, over the real SearchService on tiny_catalog built with the fake model
(4 colours x Shirt/Shoes/Dress for men, product n priced 10 * n): r + "cheaper", and like / not like examples."""

from __future__ import annotations

import pytest
from conftest import settle
from textual.widgets import Input

from mmtui.tui.widgets.results import ResultItem

pytestmark = pytest.mark.anyio


@pytest.fixture
def real_app(tiny_catalog, fake_settings):
    from mmtui.build.pipeline import build_index
    from mmtui.encoders import FakeEncoder
    from mmtui.query.service import SearchService
    from mmtui.tui.app import make_app

    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    service = SearchService.open(fake_settings, encoder=FakeEncoder())
    service.load_model()  # ready before the app opens: no wait for a model in the test
    return make_app(fake_settings, lambda s: service, images="none")


def shown(app) -> list:
    return [item.hit for item in app.search_screen.query(ResultItem)]


async def ready(pilot, app) -> None:
    for _ in range(500):
        if app.model_state == "ready":
            break
        await pilot.pause(0.02)
    await settle(pilot, app)
    assert app.model_state == "ready"


async def type_query(pilot, app, text: str) -> None:
    box = app.search_screen.query_one("#query", Input)
    box.focus()
    box.value = text
    app.search_screen.search_now()  # past the debounce at once
    await settle(pilot, app)


async def highlight(pilot, app, product_id: str) -> None:
    results = app.search_screen.query_one("#results")
    results.focus()
    results.index = [h.id for h in shown(app)].index(product_id)
    await settle(pilot, app)


async def test_refining_a_product_with_cheaper_keeps_its_kind_below_its_price(real_app):
    app = real_app
    async with app.run_test(size=(140, 40)) as pilot:
        await ready(pilot, app)
        await type_query(pilot, app, "dress")
        assert any("+3 colours" in item.label for item in app.search_screen.query(ResultItem))  # collapsed
        app.search_screen.action_toggle_variants()  # one row per colour: the blue dress is a row of its own
        await settle(pilot, app, 0.1)
        dress = next(h for h in shown(app) if h.title == "Blue Dress for men")  # product 6, price 60
        await highlight(pilot, app, dress.id)
        await pilot.press("r")
        box = app.search_screen.query_one("#query", Input)
        assert box.value == f"like:{dress.id} + " and app.focused is box
        await pilot.press(*"cheaper")  # typed after what r put in the box
        app.search_screen.search_now()
        await settle(pilot, app)
        hits = shown(app)
        assert hits and all(h.price < dress.price for h in hits) and dress.id not in [h.id for h in hits]
        assert {"Red Dress for men", "Red Shoes for men"} <= {h.title for h in hits}  # cheaper, not only dresses
        assert "Dress" in hits[0].title  # the product's kind kept: the words name none
        assert "parts" in str(app.search_screen.query_one("#status").render())


async def test_like_and_not_like_rank_the_results_on_screen_again(real_app):
    app = real_app
    async with app.run_test(size=(140, 40)) as pilot:
        await ready(pilot, app)
        app.search_screen.action_toggle_variants()  # one row per colour
        await type_query(pilot, app, "for men")
        await settle(pilot, app, 0.1)
        before = {h.id for h in shown(app)}
        red_shirt = next(h for h in shown(app) if h.title == "Red Shirt for men")
        await highlight(pilot, app, red_shirt.id)
        await pilot.press("plus")
        await settle(pilot, app, 0.1)
        hits = shown(app)
        assert hits and {h.id for h in hits} <= before and red_shirt.id not in {h.id for h in hits}
        assert "recommending" in str(app.search_screen.query_one("#status").render())
        first = hits[0]
        await highlight(pilot, app, first.id)
        await pilot.press("minus")
        await settle(pilot, app, 0.1)
        assert first.id not in {h.id for h in shown(app)}
        await pilot.press("escape")
        await settle(pilot, app, 0.1)
        assert {h.id for h in shown(app)} == before
