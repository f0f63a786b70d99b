"""Snapshot tests of the main screens at 100x30 over the fake service (half-block thumbnails of fixed images).

Update after an intended change: `pytest tests/tui/test_snapshots.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FakeSearchService, fake_build, fake_train

from textual.widgets import Input

from mmtui.config import Settings
from mmtui.tui.app import make_app

SIZE = (100, 30)


async def settle(pilot) -> None:
    """Let workers finish; stop cursors blinking (the blink phase would make snapshots flaky)."""
    app = pilot.app
    await pilot.pause(0.1)
    for box in app.screen.query(Input):
        box.cursor_blink = False
    for _ in range(300):
        if not any(w.is_running for w in app.workers):
            break
        await pilot.pause(0.01)
    await pilot.pause()


@pytest.fixture
def snapshot_app(product_images, tmp_path):
    """An app whose visible paths do not depend on tmp_path (they appear on screen)."""

    def factory(data_dir: Path | None = None):
        settings = Settings(data_dir=data_dir or Path("data"), model="lite")
        service = FakeSearchService(settings, product_images, ready=True)
        return make_app(settings, lambda s: service, build_fn=fake_build(), train_fn=fake_train(),
                        images="halfcell", sample_catalog=Path("sample_catalog"))

    return factory


def test_search_with_results(snap_compare, snapshot_app):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press(*"running shoes")
        await pilot.pause(0.35)
        await settle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_search_with_filters_open(snap_compare, snapshot_app):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press(*"red")
        await pilot.pause(0.35)
        await settle(pilot)
        await pilot.press("ctrl+f")
        await settle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=(120, 30), run_before=run_before)


def test_help(snap_compare, snapshot_app):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("f1")
        await settle(pilot)

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_build_finished(snap_compare, snapshot_app, tmp_path):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("f4")
        await settle(pilot)
        pilot.app.screen.query_one("#catalog").value = "."
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.pause(0.2)
        # the elapsed time is the one thing that changes from run to run
        pilot.app.screen.query_one("#build-stage").update("done · Esc: back to search")
        await pilot.pause()

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)


def test_metrics(snap_compare, snapshot_app, tmp_path):
    data = tmp_path / "data"
    (data / "reports").mkdir(parents=True)
    (data / "reports" / "compare-test.json").write_text(json.dumps({"split": "test", "rows": [
        {"label": "base", "n_queries": 723, "recall@1": 0.12, "recall@5": 0.31, "recall@10": 0.42, "mrr": 0.22,
         "ndcg@10": 0.27},
        {"label": "adapter-001", "n_queries": 723, "recall@1": 0.18, "recall@5": 0.4, "recall@10": 0.52, "mrr": 0.29,
         "ndcg@10": 0.34}]}))
    (data / "checkpoints" / "adapter-001").mkdir(parents=True)
    (data / "checkpoints" / "adapter-001" / "history.json").write_text(json.dumps(
        [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e ** 0.8, "val_r10": 0.3 + 0.02 * e}
         for e in range(1, 11)]))

    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("f2")
        await settle(pilot)

    assert snap_compare(snapshot_app(data), terminal_size=SIZE, run_before=run_before)


def test_training_finished(snap_compare, snapshot_app):
    async def run_before(pilot) -> None:
        await settle(pilot)
        await pilot.press("f3")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.pause(0.2)

    assert snap_compare(snapshot_app(), terminal_size=SIZE, run_before=run_before)
