"""Unit tests of the TUI's pure parts: query parsing, the service lane, thumbnails, report readers."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from mmtui.tui.lane import ServiceLane, Skipped, in_daemon_thread
from mmtui.tui.query import parse_query
from mmtui.tui.screens.metrics import read_histories, read_reports
from mmtui.tui.thumbnails import ThumbnailCache, detect_protocol


def test_image_paths_are_detected_however_they_are_pasted(product_images, monkeypatch):
    path = product_images["1001"]
    monkeypatch.setenv("HOME", str(path.parent.parent))
    for raw in (str(path), f"'{path}'", f'"{path}"', f"file://{path}", f"  {path}  ",
                f"~/{path.parent.name}/{path.name}"):
        q = parse_query(raw)
        assert q.kind == "image" and q.path == path, raw


def test_text_and_paths_without_an_image_are_not_image_queries(tmp_path):
    assert parse_query("navy blue running shoes").kind == "text"
    assert parse_query("shoes.jpg").kind == "text"  # no such file here, and it does not start like a path
    assert parse_query(str(tmp_path / "nope.jpg")).kind == "path"
    assert parse_query(f"'{tmp_path}/partly-typ").kind == "path"  # half-typed: not searched as text
    not_image = tmp_path / "notes.txt"
    not_image.write_text("x")
    assert parse_query(str(not_image)).kind == "path"
    assert parse_query("   ").kind == "empty"
    assert parse_query("like:1005").kind == "like" and parse_query("like:1005").text == "1005"


def test_compound_queries_are_told_from_words_paths_and_products(tmp_path):
    for raw in ("like:1005 + red", '"summer dress" - floral', "2:red + ./photo.jpg", "shoes without laces",
                "like:1005 cheaper"):
        assert parse_query(raw).kind == "compound", raw
    for raw in ("t-shirt for men", "kids 2 - 3 years", "like:1005"):
        assert parse_query(raw).kind != "compound", raw
    beach = tmp_path / "Beach - 2020.png"
    beach.write_bytes(b"not really a png")
    assert parse_query(str(beach)).kind != "compound"  # one file, though its name has " - "


def test_file_url_with_escaped_space(tmp_path, product_images):
    target = tmp_path / "my photo.png"
    target.write_bytes(product_images["1001"].read_bytes())
    assert parse_query(f"file://{str(target).replace(' ', '%20')}").path == target
    assert parse_query(str(target).replace(" ", "\\ ")).path == target


def test_lane_runs_jobs_in_order_on_one_thread_and_skips_stale_ones():
    lane = ServiceLane()
    gate = threading.Event()
    threads: list[str] = []
    first = lane.submit(lambda: (gate.wait(5), threads.append(threading.current_thread().name)))
    stale = lane.submit(lambda: threads.append("stale"), still_wanted=lambda: False)
    last = lane.submit(lambda: threads.append(threading.current_thread().name) or 42)
    gate.set()
    assert last.result(5) == 42
    first.result(5)
    with pytest.raises(Skipped):
        stale.result(5)
    assert threads == ["mmtui-service", "mmtui-service"]
    lane.close()


def test_a_stale_job_its_caller_cancelled_leaves_the_lane_running():
    lane = ServiceLane()
    gate = threading.Event()
    lane.submit(gate.wait, 5)
    stale = lane.submit(lambda: None, still_wanted=lambda: False)
    assert stale.cancel()  # the caller gave up on it while it waited (a newer query replaced it)
    gate.set()
    assert lane.submit(lambda: 42).result(5) == 42  # the lane's thread is still there
    lane.close()


def test_lane_passes_errors_to_the_caller():
    lane = ServiceLane()

    async def main() -> None:
        with pytest.raises(ZeroDivisionError):
            await lane.call(lambda: 1 / 0)
        assert await in_daemon_thread(lambda: threading.current_thread().daemon)

    asyncio.run(main())
    lane.close()


def test_thumbnails_are_fitted_cached_and_missing_files_are_none(product_images, tmp_path):
    cache = ThumbnailCache(capacity=2)
    image = cache.get(product_images["1001"], (6, 6))
    assert image.size == (6, 6) and image.mode == "RGB"
    assert cache.get(product_images["1001"], (6, 6)) is image
    assert cache.get(tmp_path / "missing.jpg", (6, 6)) is None
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    assert cache.get(broken, (6, 6)) is None
    cache.get(product_images["1002"], (6, 6))
    cache.get(product_images["1003"], (6, 6))
    assert len(cache) == 2


def test_protocol_is_half_blocks_in_tmux_and_can_be_forced(monkeypatch):
    from mmtui.tui.terminal import parse_answers
    from mmtui.tui.thumbnails import detect_graphics

    tmux_3_3 = lambda: parse_answers("\x1bP>|tmux 3.3a\x1b\\\x1b[?1;2c")  # noqa: E731
    monkeypatch.setenv("TMUX", "/tmp/tmux-0/default,1,0")
    monkeypatch.delenv("MMTUI_IMAGES", raising=False)
    assert detect_graphics(ask=tmux_3_3).protocol == "halfcell"
    assert detect_protocol("none") == "none"
    monkeypatch.setenv("MMTUI_IMAGES", "sixel")
    assert detect_protocol() == "sixel"


def test_protocol_detected_on_a_thread_while_the_caller_goes_on(monkeypatch):
    from mmtui.tui import thumbnails
    from mmtui.tui.terminal import Choice

    asked = threading.Event()

    def slow_terminal(requested=None):  # a terminal that takes its time to answer
        assert asked.wait(5)
        return Choice("tgp", "kitty 0.35.2 speaks Kitty graphics with Unicode placeholders")

    monkeypatch.setattr(thumbnails, "detect_graphics", slow_terminal)
    answer = thumbnails.start_detecting()  # returns at once: the caller imports meanwhile
    asked.set()
    assert answer().protocol == "tgp" and answer().protocol == "tgp"

    def broken_terminal(requested=None):
        raise OSError("the terminal went away")

    monkeypatch.setattr(thumbnails, "detect_graphics", broken_terminal)
    choice = thumbnails.start_detecting()()
    assert choice.protocol == "halfcell" and "the terminal went away" in choice.reason


def test_reports_and_histories_are_read_best_first(tmp_path: Path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "eval-a.json").write_text(json.dumps({"recall@10": 0.4, "mrr": 0.2, "mode": "image", "model": "lite"}))
    (reports / "compare-test.json").write_text(json.dumps(
        {"split": "test", "rows": [{"label": "base", "recall@10": 0.3}, {"label": "adapter-1", "recall@10": 0.5},
                                   {"label": "broken", "note": "cannot score"}]}))
    (reports / "compare-test-20260101-101010.json").write_text("{}")
    (reports / "junk.json").write_text("{not json")
    rows = read_reports(reports)
    assert [r["model"] for r in rows] == ["adapter-1", "lite", "base"]
    ckpts = tmp_path / "checkpoints"
    (ckpts / "adapter-1").mkdir(parents=True)
    (ckpts / "adapter-1" / "history.json").write_text(json.dumps([{"epoch": 1, "train_loss": 1.0}]))
    assert read_histories(ckpts) == {"adapter-1": [{"epoch": 1, "train_loss": 1.0}]}
    assert read_reports(tmp_path / "none") == [] and read_histories(tmp_path / "none") == {}


def test_build_report_table_names_each_file_encoding():
    from rich.console import Console

    from mmtui.build.pipeline import BuildReport
    from mmtui.tui.screens.build import report_table

    console = Console(width=60, record=True)
    console.print(report_table(BuildReport(catalog="x", model="m", encodings={"p.csv": "windows-1252"})))
    line = next(line for line in console.export_text().splitlines() if "read p.csv as" in line)
    assert line.split()[-1] == "windows-1252"
