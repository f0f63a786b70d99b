"""Pilot tests of the search screen over a fake service (no model, no terminal graphics)."""

from __future__ import annotations

import threading

import pytest
from conftest import fake_build, fake_train, settle
from textual.widgets import Input, Select

from mmtui.errors import QueryError, StoreError
from mmtui.store.filters import Filter
from mmtui.query.service import MODES
from mmtui.tui.screens.dialogs import ConfirmDialog
from mmtui.tui.screens.search import SearchScreen
from mmtui.tui.widgets.detail import DetailPane
from mmtui.tui.widgets.facets import FacetPanel
from mmtui.tui.widgets.results import ResultItem
from mmtui.tui.widgets.thumbnail import Thumbnail

pytestmark = pytest.mark.anyio


def hits(app) -> list:
    return [item.hit for item in app.search_screen.query(ResultItem)]


async def search(pilot, app, text: str) -> None:
    """Type like a user (one key at a time) and wait past the debounce."""
    box = app.search_screen.query_one("#query", Input)
    box.focus()
    box.value = ""
    await pilot.press(*list(text))
    await settle(pilot, app, 0.35)


async def test_typing_a_query_shows_ranked_results_with_signals(make_test_app):
    app, service = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "running shoes")
        got = hits(app)
        assert [h.id for h in got[:3]] == ["1001", "1002", "1011"]
        assert set(got[0].signals) == {"image", "text", "lexical"}
        # debounced: the whole phrase is searched last (words first, then hybrid), not one search per key
        # (a loaded CPU can stretch a gap between keys past the debounce, so a partial phrase may slip in)
        searches = [c for c in service.calls if c[0] == "search"]
        assert searches[-2:] == [("search", "running shoes", "lexical", ()), ("search", "running shoes", "hybrid", ())]
        assert len(searches) <= 4 < 2 * len("running shoes")
        status = str(app.search_screen.query_one("#status").render())
        assert "4 results" in status


async def test_thumbnails_are_drawn_for_products_with_images(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "socks shoes")
        await settle(pilot, app, 0.1)
        items = list(app.search_screen.query(ResultItem))
        with_image = [i for i in items if i.hit.image_path]
        without = [i for i in items if not i.hit.image_path]
        assert with_image and without
        assert all(i.thumbnail._image_widget is not None for i in with_image)
        assert all(i.thumbnail._image_widget is None for i in without)
        assert len(app.thumbnails) >= len(with_image)


async def test_image_path_gives_image_results(make_test_app, product_images):
    app, service = make_test_app()
    red = product_images["1005"]
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        app.search_screen.query_one("#query", Input).value = f"'file://{red}'"  # pasted, quoted, as a URL
        await settle(pilot, app, 0.35)
        got = hits(app)
        assert service.calls[-1][0] == "search_image" and service.calls[-1][1] == str(red)
        assert got[0].id == "1005" and set(got[0].signals) == {"image"}
        assert "image 1005.png" in str(app.search_screen.query_one("#status").render())


async def test_a_path_that_is_not_an_image_is_not_searched(make_test_app, tmp_path):
    app, service = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        app.search_screen.query_one("#query", Input).value = str(tmp_path / "missing.jpg")
        await settle(pilot, app, 0.35)
        assert not [c for c in service.calls if c[0].startswith("search")]
        assert "no image file there" in str(app.search_screen.query_one("#status").render())


async def test_a_facet_counts_the_results_and_narrows_them_in_place(make_test_app):
    app, service = make_test_app()
    async with app.run_test(size=(140, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "shoes")
        before = hits(app)
        assert {h.gender for h in before} == {"Men", "Women"}
        select = app.search_screen.query_one("#facet-person", Select)
        labels = [str(prompt) for prompt, _ in select._options]
        women = sum(1 for h in before if h.gender == "Women")
        assert f"Women ({women})" in labels and "Men (6)" not in labels  # the results' counts, not the catalog's
        calls = len(service.calls)
        select.value = "Women"
        await settle(pilot, app, 0.1)
        after = hits(app)
        assert after and {h.gender for h in after} == {"Women"} and len(after) == women
        assert len(service.calls) == calls  # narrowed in place: no search
        app.search_screen.query_one("#sort", Select).value = "-price"
        await settle(pilot, app, 0.1)
        prices = [h.price for h in hits(app) if h.price is not None]
        assert prices == sorted(prices, reverse=True) and len(service.calls) == calls


async def test_the_filter_panel_is_mounted_the_first_time_it_is_shown(make_test_app):
    """Under 130 columns the panel is hidden: it is not built before the first frame, only on ctrl+f, then
    with the facets and the mode chosen meanwhile."""
    app, service = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "shoes")
        assert not app.search_screen.query(FacetPanel)
        await pilot.press("ctrl+r")  # hybrid -> the next mode, with no panel to hold it
        await settle(pilot, app, 0.1)
        mode = app.search_screen.mode
        assert mode != "hybrid" and service.calls[-1][:3] == ("search", "shoes", mode)
        await pilot.press("ctrl+f")
        await settle(pilot, app, 0.1)
        panel = app.search_screen.query_one(FacetPanel)
        assert panel.display and app.focused is panel.query_one("#mode")
        assert panel.mode == mode
        labels = [str(prompt) for prompt, _ in panel.query_one("#facet-person", Select)._options]
        assert "Men (2)" in labels  # of the results for "shoes"
        await pilot.press("ctrl+f")
        await settle(pilot, app, 0.1)
        assert not panel.display and app.focused is app.search_screen.query_one("#query")


async def test_mode_switch_searches_in_that_mode(make_test_app):
    app, service = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "watch")
        for _ in range(MODES.index("image") - MODES.index("hybrid") + len(MODES)):  # cycle round to image
            await pilot.press("ctrl+r")
        await settle(pilot, app, 0.4)
        assert service.calls[-1][:3] == ("search", "watch", "image")
        assert set(hits(app)[0].signals) == {"image"}
        assert app.search_screen.query_one("#query", Input).border_subtitle == "mode: image"


async def test_more_like_this_searches_by_the_highlighted_product(make_test_app):
    app, service = make_test_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "red dress")
        await pilot.press("down")  # to the results
        assert app.focused is app.search_screen.query_one("#results")
        await pilot.press("m")
        await settle(pilot, app, 0.1)
        assert ("more_like_this", "1005") in service.calls
        assert hits(app)[0].id == "1005" and hits(app)[1].colour == "Red"
        assert app.search_screen.query_one("#query", Input).value == "like:1005"


async def test_detail_pane_shows_every_attribute(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "backpack")
        await settle(pilot, app, 0.1)
        pane = app.search_screen.query_one(DetailPane)
        text = " ".join(f"{k} {v}" for k, v in pane.rows)
        for value in ("1010", "Wildcraft", "Green", "usage", "Casual", "2012"):
            assert value in text
        assert pane.query_one("#detail-image", Thumbnail)._image_widget is not None


async def test_enter_opens_details_and_m_there_searches_more_like_it(make_test_app):
    app, service = make_test_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "watch")
        await pilot.press("enter")  # submit -> focus results
        await pilot.press("enter")  # open details
        await settle(pilot, app)
        assert type(app.screen).__name__ == "DetailScreen"
        await pilot.press("m")
        await settle(pilot, app, 0.1)
        assert isinstance(app.screen, SearchScreen)
        assert service.calls[-2][0] == "more_like_this" or ("more_like_this", "1006") in service.calls


async def test_slow_hybrid_shows_words_first_then_the_full_result(make_test_app):
    app, service = make_test_app()
    original = service.search
    hybrid_may_answer = threading.Event()  # the hybrid search waits for the test, not for a clock

    def slow_search(query, **kw):
        if kw.get("mode") == "hybrid":
            hybrid_may_answer.wait(30)
        return original(query, **kw)

    async def until(condition) -> None:
        for _ in range(3000):
            if condition():
                return
            await pilot.pause(0.01)
        raise AssertionError("the screen never got there")

    def status() -> str:
        return str(app.search_screen.query_one("#status").render())

    service.search = slow_search
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        app.search_screen.query_one("#query", Input).value = "watch"
        await until(lambda: app.search_screen.result is not None and "refining" in status())
        assert app.search_screen.result.mode == "lexical"  # words first, while hybrid is still working
        hybrid_may_answer.set()
        await until(lambda: app.search_screen.result.mode == "hybrid")
        await settle(pilot, app)
        assert "refining" not in status()
        assert len(hits(app)) == len(app.search_screen.result.hits)  # replaced, not appended


async def test_search_error_becomes_a_notification_and_the_app_stays_up(make_test_app):
    app, service = make_test_app(fail_search=QueryError("the query is too long", "use fewer words"))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "shoes")
        notes = list(app._notifications)
        assert any("the query is too long" in n.message and "use fewer words" in n.message for n in notes)
        assert all(n.severity == "error" for n in notes)
        service.fail_search = None
        await search(pilot, app, "shoes")
        assert hits(app)


async def test_lexical_results_before_the_model_is_ready_then_hybrid(make_test_app):
    release = threading.Event()
    app, service = make_test_app(ready=False, release=release)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.1)
        assert app.model_state == "loading"
        assert "loading model" in app.search_screen.query_one("#query", Input).border_title
        box = app.search_screen.query_one("#query", Input)
        box.focus()
        await pilot.press(*"shoes")

        async def until(condition) -> None:  # events, not a fixed pause: a busy machine may be slow to get there
            for _ in range(3000):
                if condition():
                    return
                await pilot.pause(0.01)
            raise AssertionError(f"the screen never got there: {service.calls[-3:]}, {app.model_state}")

        searched = lambda mode: ("search", "shoes", mode) in [c[:3] for c in service.calls]  # noqa: E731
        await until(lambda: searched("lexical"))
        assert app.model_state == "loading" and not searched("hybrid")
        release.set()
        await until(lambda: app.model_state == "ready" and searched("hybrid"))


async def test_missing_data_dir_offers_to_build_the_sample_catalog(make_test_app, tmp_path):
    sample = tmp_path / "sample_catalog"
    sample.mkdir()
    events: list = []
    app, _ = make_test_app(fail_open=StoreError("no index in data", "run mmtui build-index CATALOG"),
                           sample_catalog=sample, build_fn=fake_build(events))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        assert isinstance(app.screen, ConfirmDialog)
        assert "no index in data" in app.screen.message
        await pilot.press("y")
        await settle(pilot, app, 0.2)
        assert type(app.screen).__name__ == "BuildScreen"
        assert events == [("build", str(sample))]
        assert app.screen.report.products == 11 and not app.screen.running
        assert app.service is not None  # reopened after the build
        await pilot.press("escape")
        await search(pilot, app, "shoes")
        assert hits(app)


async def test_quitting_while_training_runs_cancels_it_and_exits(make_test_app):
    wait = threading.Event()
    events: list = []
    app, _ = make_test_app(train_fn=fake_train(events, wait=wait))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f3")
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert app.screen.running
        cancel = next(iter(app.cancel_events))
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        assert cancel.is_set()
    assert app.return_code == 0
    assert events == [("train", 10), ("cancelled",)]  # the training loop saw the cancel and stopped


async def test_quitting_while_the_model_loads_exits_at_once(make_test_app):
    release = threading.Event()  # never set: load_model blocks until the test ends
    app, _ = make_test_app(ready=False, release=release)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.1)
        assert app.model_state == "loading"
        await pilot.press("ctrl+q")
    assert app.return_code == 0
    release.set()


async def test_the_understood_parts_are_shown_and_can_be_dropped_or_pinned(make_test_app):
    from textual.widgets import OptionList

    from mmtui.tui.screens.understood import UnderstoodDialog

    app, service = make_test_app()
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "women watch")
        status = str(app.search_screen.query_one("#status").render())
        assert "understood: kind: Watches · for: Women" in status
        await pilot.press("ctrl+g")
        await settle(pilot, app, 0.1)
        dialog = app.screen
        assert isinstance(dialog, UnderstoodDialog)
        labels = [text for text, _ in dialog.items]
        assert labels[:3] == ["drop  kind: Watches", "only  kind = Watches", "drop  for: Women"]
        assert "only  for = Girls" not in labels  # a value the words came near but that does not fit them
        options = dialog.query_one("#parts", OptionList)
        options.highlighted = 0
        await pilot.press("enter")  # drop the kind
        await settle(pilot, app, 0.35)
        assert service.drops[-1] == ("kind",)
        assert "kind:" not in str(app.search_screen.query_one("#status").render())
        await pilot.press("ctrl+g")
        await settle(pilot, app, 0.1)
        dialog = app.screen
        pick = next(i for i, (text, _) in enumerate(dialog.items) if text == "only  for = Women")
        dialog.query_one("#parts", OptionList).highlighted = pick
        await pilot.press("enter")  # pin the person: a filter now, no longer a soft part
        await settle(pilot, app, 0.35)
        assert service.drops[-1] == ("kind", "person")
        assert ("search", "women watch", "hybrid", (Filter("gender", "=", "Women"),)) in service.calls
        await search(pilot, app, "women watches")  # a new query starts from what it says again
        assert service.drops[-1] == ()
