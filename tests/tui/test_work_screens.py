"""Pilot tests of the build, training, metrics, model and help screens."""

from __future__ import annotations

import json
import os

import pytest
from conftest import fake_build, fake_train, settle
from textual.widgets import DataTable, OptionList

from mmtui.errors import TrainingError
from mmtui.tui.screens.models import ModelScreen

pytestmark = pytest.mark.anyio


async def test_build_screen_shows_progress_and_rejects_by_reason(make_test_app, tmp_path):
    events: list = []
    catalog = tmp_path / "catalog.csv"
    catalog.write_text("id,title\n1,x\n")
    app, _ = make_test_app(build_fn=fake_build(events))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f4")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#catalog").value = str(catalog)
        await pilot.press("ctrl+s")
        await settle(pilot, app, 0.2)
        assert events == [("build", str(catalog))]
        assert screen.report.rejects_by_reason == {"missing_image": 1, "empty_title": 2}
        assert screen.stage == "index"
        assert app.service is not None and app.model_state == "ready"
        await pilot.press("escape")
        assert app.screen is app.search_screen


async def test_build_of_a_missing_catalog_is_refused_with_a_hint(make_test_app, tmp_path):
    events: list = []
    app, _ = make_test_app(build_fn=fake_build(events))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f4")
        await pilot.pause()
        app.screen.query_one("#catalog").value = str(tmp_path / "nope")
        await pilot.press("ctrl+s")
        await settle(pilot, app)
        assert events == []
        assert any("does not exist" in n.message for n in app._notifications)


async def test_build_can_be_cancelled(make_test_app, tmp_path):
    app, _ = make_test_app(build_fn=fake_build(block=True))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f4")
        await pilot.pause()
        app.screen.query_one("#catalog").value = str(tmp_path)
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        assert app.screen.running
        await pilot.press("escape")  # refused while running
        assert type(app.screen).__name__ == "BuildScreen"
        await pilot.press("ctrl+x")
        await settle(pilot, app, 0.3)
        assert not app.screen.running and app.screen.report is None
        assert "Cancelled" in str(app.screen.query_one("#build-result").render())


async def test_training_draws_the_curve_and_shows_promotion(make_test_app):
    app, _ = make_test_app(train_fn=fake_train(epochs_delay=0.01))
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f3")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#epochs").value = "5"
        await pilot.press("ctrl+s")
        await settle(pilot, app, 0.3)
        assert [row["epoch"] for row in screen.history] == [1, 2, 3, 4, 5]
        result = str(screen.query_one("#train-result").render())
        assert "adapter-2 was promoted" in result and "0.400" in result


async def test_training_failure_is_a_dialog_with_a_hint(make_test_app):
    def failing(settings, **kwargs):
        raise TrainingError("no training pairs", "build the index with images first")

    app, _ = make_test_app(train_fn=failing)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f3")
        await pilot.press("ctrl+s")
        await settle(pilot, app, 0.2)
        assert type(app.screen).__name__ == "ErrorDialog"
        assert app.screen.message == "no training pairs" and "images first" in app.screen.hint
        await pilot.press("enter")
        assert type(app.screen).__name__ == "TrainingScreen"


async def test_metrics_screen_lists_reports_and_checkpoint_curves(make_test_app, settings):
    settings.reports_dir.mkdir(parents=True)
    (settings.reports_dir / "eval-q.json").write_text(json.dumps(
        {"n_queries": 50, "recall@1": 0.2, "recall@5": 0.4, "recall@10": 0.5, "mrr": 0.3, "ndcg@10": 0.35,
         "latency_ms_p50": 12.5, "mode": "hybrid", "model": "lite"}))
    (settings.checkpoints_dir / "adapter-001").mkdir(parents=True)
    (settings.checkpoints_dir / "adapter-001" / "history.json").write_text(json.dumps(
        [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_r10": 0.3 + e / 100} for e in range(1, 6)]))
    app, _ = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f2")
        await settle(pilot, app, 0.1)
        table = app.screen.query_one("#metrics-table", DataTable)
        assert table.row_count == 1
        assert "0.500" in str(table.get_row_at(0))
        options = app.screen.query_one("#checkpoints", OptionList)
        assert options.get_option_at_index(0).id == "adapter-001"
        assert "adapter-001" in app.screen.histories


async def test_model_switch_marks_the_active_model_and_searches_again(make_test_app):
    app, service = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f5")
        await settle(pilot, app)
        assert isinstance(app.screen, ModelScreen)
        labels = [str(app.screen.query_one(OptionList).get_option_at_index(i).prompt) for i in range(2)]
        assert labels[0].startswith("● lite") and labels[1].startswith("  adapter-1")
        await pilot.press("down", "enter")
        await settle(pilot, app, 0.1)
        assert ("use_model", "adapter-1") in service.calls
        assert service.calls.index(("reload",)) > service.calls.index(("use_model", "adapter-1"))
        assert "lite+adapter-1" in app.search_screen.query_one("#query").border_title


async def test_help_opens_with_f1_and_question_mark_and_closes(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("f1")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        app.search_screen.query_one("#results").focus()
        await pilot.press("question_mark")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("q")
        assert app.screen is app.search_screen


async def test_help_says_which_image_protocol_is_in_use_and_why(settings, product_images):
    from conftest import FakeSearchService

    from mmtui.tui.app import make_app
    from mmtui.tui.terminal import choose, parse_answers

    choice = choose(parse_answers("\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.26.5)\x1b\\\x1b[?62;c"), {})
    service = FakeSearchService(settings, product_images, ready=True)
    app = make_app(settings, lambda s: service, images=choice.protocol, image_reason=choice.reason)
    async with app.run_test(size=(160, 50)) as pilot:
        await settle(pilot, app)
        await pilot.press("f1")
        await settle(pilot, app)
        from rich.console import Console

        console = Console(width=300, record=True, file=open(os.devnull, "w"))
        for widget in app.screen.query("Static"):
            console.print(widget.content)
        shown = console.export_text()
        assert "Images: half-blocks (halfcell)" in shown
        assert "kitty 0.26.5 speaks Kitty graphics but not its Unicode placeholders" in " ".join(shown.split())


async def test_question_mark_in_the_search_box_is_text(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("w", "h", "y", "question_mark")
        assert app.screen is app.search_screen
        assert app.search_screen.query_one("#query").value == "why?"


async def test_palette_offers_modes_models_and_screens(make_test_app):
    app, _ = make_test_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Mode: image", "Mode: lexical", "Use model: adapter-1", "Metrics", "Train adapter",
                      "Build index", "Filters: clear"):
            assert title in titles
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Mode: lexical")
        command.callback()
        await pilot.pause()
        assert app.search_screen.mode == "lexical"
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Filters: show or hide")
        command.callback()
        await settle(pilot, app, 0.1)
        panel = app.search_screen.query_one("#facets")
        assert panel.display and panel.mode == "lexical"  # mounted on demand, in the mode chosen before
