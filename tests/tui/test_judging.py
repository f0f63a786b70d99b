"""Pilot tests of judging in the TUI: keys pressed on results, grades shown on rows and in the status line, the
judgements file written; the side-by-side comparison and team-draft interleaving; export from the command line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from conftest import settle
from textual.widgets import Input

from mmtui.store.judgements import JudgementStore
from mmtui.tui.screens.compare import CompareScreen
from mmtui.tui.widgets.results import ResultItem, ResultsList

pytestmark = pytest.mark.anyio


async def search(pilot, app, text: str) -> None:
    box = app.search_screen.query_one("#query", Input)
    box.focus()
    box.value = text
    await settle(pilot, app, 0.35)


def rows(screen, selector: str = "#results") -> list[ResultItem]:
    return screen.query_one(selector, ResultsList).items


def status(app) -> str:
    return str(app.search_screen.query_one("#status").render())


async def test_keys_judge_the_highlighted_result_and_the_status_line_shows_its_metrics(make_test_app, settings):
    app, _ = make_test_app()
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "running shoes")
        ids = [r.hit.id for r in rows(app.search_screen)]
        assert ids[:3] == ["1001", "1002", "1011"]
        await pilot.press("down")  # to the results
        await pilot.press("2", "1", "0")  # each judgement moves the cursor to the next result
        await settle(pilot, app)
        store = JudgementStore(settings)
        assert store.grades("text", "running shoes") == {"1001": 2, "1002": 1, "1011": 0}
        row = next(r for r in store.rows() if r["product_id"] == "1001")
        assert row["mode"] == "hybrid" and row["model"] == "lite" and row["judge"] and row["judged_at"]
        assert [r.grade for r in rows(app.search_screen)][:4] == [2, 1, 0, None]
        assert "✔2" in str(rows(app.search_screen)[0]._text.render())
        # P@10 = 2 relevant of 10; nDCG@10 = (3 + 1/log2 3) / (3 + 1/log2 3) = 1: the ideal order
        assert "judged 3 · P@10 0.20 · nDCG@10 1.00" in status(app)
        assert "judged@10 75%" in status(app)  # 3 of the 4 results shown are judged
        results = app.search_screen.query_one("#results", ResultsList)
        results.index = 0
        await pilot.press("n")  # the next unjudged result
        assert results.index == 3
        await pilot.press("up", "x")  # forget 1011's judgement
        await settle(pilot, app)
        assert store.grades("text", "running shoes") == {"1001": 2, "1002": 1}
        assert rows(app.search_screen)[2].grade is None
        assert store.shown()[("text", "running shoes")][0]["ids"] == ids


async def test_judgements_show_again_in_a_new_session(make_test_app, settings):
    JudgementStore(settings).set("text", "black watch", "1006", 2)
    app, _ = make_test_app()
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "black watch")
        grades = {r.hit.id: r.grade for r in rows(app.search_screen)}
        assert grades["1006"] == 2 and grades["1002"] is None
        assert "judged 1 · P@10 0.10" in status(app)


async def test_more_like_this_and_image_results_are_judged_under_their_own_kind(make_test_app, settings,
                                                                                  product_images):
    app, _ = make_test_app()
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "like:1005")
        await pilot.press("down", "2")
        await search(pilot, app, str(product_images["1003"]))
        await pilot.press("down", "1")
        await settle(pilot, app)
    judged = JudgementStore(settings).all()
    assert judged[("like", "1005")] == {"1005": 2}
    assert judged[("image", str(product_images["1003"].resolve()))] == {"1003": 1}


async def test_twenty_queries_judged_in_one_session_then_exported_and_listed(make_test_app, settings, tmp_path):
    from mmtui.cli.main import cli

    words = ["shoes", "running", "watch", "red", "black", "blue", "navy", "women", "men", "dress", "jeans",
             "handbag", "backpack", "socks", "t-shirt", "white", "silver", "green", "sports", "slim"]
    app, _ = make_test_app()
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot, app)
        for word in words:
            await search(pilot, app, word)
            await pilot.press("down", "0", "up", "2")  # the second result not relevant, the first relevant
            await settle(pilot, app)
            assert "judged" in status(app)
    store = JudgementStore(settings)
    assert len(store.all()) == 20
    runner = CliRunner()
    out = tmp_path / "judged.jsonl"
    qrels = tmp_path / "judged.qrels"
    result = runner.invoke(cli, ["judgements", "export", "--data-dir", str(settings.data_dir), "--jsonl", str(out),
                                 "--qrels", str(qrels)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 20 and lines[0]["query"] == "shoes" and 2 in lines[0]["relevant"].values()
    assert len({line.split()[0] for line in qrels.read_text().splitlines()}) == 20
    listed = runner.invoke(cli, ["judgements", "--data-dir", str(settings.data_dir), "--json"])
    body = json.loads(listed.output)
    assert len(body["queries"]) == 20 and body["judgements"] == store.count()
    assert all(q["coverage@10"] is not None for q in body["queries"])


async def test_compare_shows_two_rankings_side_by_side_and_interleaving_records_the_winner(make_test_app, settings):
    app, _ = make_test_app()
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "running shoes")
        await pilot.press("f6")
        await settle(pilot, app)
        screen = app.screen
        assert isinstance(screen, CompareScreen) and screen.rankers == {"a": "hybrid", "b": "lexical"}
        left = [r.hit.id for r in rows(screen, "#list-a")]
        right = [r.hit.id for r in rows(screen, "#list-b")]
        assert sorted(left) == sorted(right) and left != right  # the same products, ranked two ways
        assert left[:3] == ["1001", "1002", "1011"] and right[:3] == ["1011", "1002", "1001"]
        await pilot.press("2")  # judged in list A: 1001
        await settle(pilot, app)
        assert [r.grade for r in rows(screen, "#list-b")][2] == 2  # shown in B as well
        head_b = str(screen.query_one("#head-b").render())
        assert "B: lexical" in head_b and "nDCG@10 0.50" in head_b  # 1001 at rank 3: 1/log2(4)
        await pilot.press("b")  # next ranker for B
        await settle(pilot, app)
        assert screen.rankers["b"] == "text"
        await pilot.press("i")  # interleave hybrid vs text, blind
        await settle(pilot, app)
        mixed = rows(screen, "#list-mixed")
        assert screen.query_one("#col-mixed").display and not screen.query_one("#col-a").display
        assert {r.hit.id for r in mixed} == set(left) and len(mixed) == len(left)
        assert [r.hit.rank for r in mixed] == list(range(1, len(mixed) + 1))
        assert all(not r.hit.signals and not r.hit.score for r in mixed)  # blind: nothing tells the sides apart
        assert "lex" not in str(mixed[0]._text.render())
        mixed_list = screen.query_one("#list-mixed", ResultsList)
        mixed_list.index = [r.hit.id for r in mixed].index("1002")
        await pilot.press("2")
        await settle(pilot, app)
        (outcome,) = JudgementStore(settings).interleavings()
        team = dict(screen.teams)
        assert (outcome["ranker_a"], outcome["ranker_b"], outcome["judged"]) == ("hybrid", "text", 2)
        expected_a = sum(2 for pid in ("1001", "1002") if team[pid] == "A")
        assert (outcome["credit_a"], outcome["credit_b"]) == (expected_a, 4 - expected_a)
        row = next(r for r in JudgementStore(settings).rows() if r["product_id"] == "1002")
        assert row["mode"] == "interleave:hybrid|text"
        await pilot.press("escape")
        assert app.screen is app.search_screen


async def test_compare_without_a_query_says_what_to_do(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f6")
        await settle(pilot, app)
        assert app.screen is app.search_screen
        assert any("Search for something first" in str(n.message) for n in app._notifications)


async def test_a_judgement_that_cannot_be_saved_is_reported_and_the_app_goes_on(make_test_app, settings):
    app, _ = make_test_app()
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot, app)
        await search(pilot, app, "watch")
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        (settings.data_dir / "judgements.db").mkdir()  # not a database: opening it fails
        await pilot.press("down", "2")
        await settle(pilot, app)
        assert any("judgements" in str(n.message) for n in app._notifications)
        assert rows(app.search_screen)[0].grade is None  # nothing claimed that was not saved


def test_compare_snapshot(snap_compare, product_images, tmp_path):
    from pathlib import Path

    from conftest import FakeSearchService, fake_build, fake_train

    from mmtui.config import Settings
    from mmtui.tui.app import make_app

    settings = Settings(data_dir=tmp_path / "data", model="lite")
    JudgementStore(settings).set("text", "running shoes", "1001", 2)
    JudgementStore(settings).set("text", "running shoes", "1011", 0)
    service = FakeSearchService(settings, product_images, ready=True)
    app = make_app(settings, lambda s: service, build_fn=fake_build(), train_fn=fake_train(), images="halfcell",
                   sample_catalog=Path("sample_catalog"))

    async def run_before(pilot) -> None:
        await settle(pilot, pilot.app, 0.1)
        for box in pilot.app.screen.query(Input):
            box.cursor_blink = False
        await pilot.press(*"running shoes")
        await settle(pilot, pilot.app, 0.35)
        await pilot.press("f6")
        await settle(pilot, pilot.app, 0.1)

    assert snap_compare(app, terminal_size=(110, 30), run_before=run_before)


async def test_enter_right_after_typing_takes_the_focus_to_the_results_so_keys_judge(make_test_app, settings):
    """Type, Enter at once (the first search still running), then judge: digits must not land in the search box."""
    app, _ = make_test_app()
    async with app.run_test(size=(110, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press(*"watch", "enter")
        await settle(pilot, app, 0.35)
        await pilot.press("2")
        await settle(pilot, app)
        assert app.search_screen.query_one("#query", Input).value == "watch"
        assert JudgementStore(settings).grades("text", "watch") == {rows(app.search_screen)[0].hit.id: 2}
