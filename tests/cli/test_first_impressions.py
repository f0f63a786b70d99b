"""What a new user sees first on the command line: help that can be pasted into a shell, build output that reads
well in a log file, counts in the right number."""

from __future__ import annotations

import re

import click
from click.testing import CliRunner

from mmtui.cli.main import cli

# price<50 outside quotes: the shell reads "<50" as a redirection from a file named 50
UNQUOTED_COMPARISON = re.compile(r"""(?<![\w"'<=])[a-z_]{2,}(<=?|>=?)\d""")


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from all_commands(command, (*prefix, name))


def test_no_help_shows_a_comparison_the_shell_would_take_for_a_redirection():
    runner = CliRunner()
    for path in [(), *all_commands(cli)]:
        result = runner.invoke(cli, [*path, "--help"], terminal_width=100)
        assert result.exit_code == 0, (path, result.output)
        for line in result.output.splitlines():
            assert not UNQUOTED_COMPARISON.search(line), (path, line)


def test_an_unchanged_reindex_does_not_say_it_builds_the_indexes(tiny_catalog, fake_settings):
    """A build reindexes up to three times (after encoding, with the learned fused weight, for the report): only
    an index that is built again is announced, so a log shows "building the image index" once."""
    from mmtui.build.pipeline import build_index
    from mmtui.index.writer import reindex

    first = []
    build_index(fake_settings, tiny_catalog, progress=first.append)
    said = [e.message for e in first if e.message.startswith("building the")]
    assert sorted(said) == ["building the fused index (image weight 0.50)", "building the image index",
                            "building the lexical index", "building the text index"]
    again = []
    reindex(fake_settings, progress=again.append)
    assert not [e.message for e in again if e.message.startswith("building the")]
    assert {e.message for e in again if e.total} >= {"image index unchanged", "lexical index unchanged"}


def test_a_stage_that_stops_early_does_not_leave_a_half_bar_in_a_log(monkeypatch):
    """Adapting stops when validation stops improving (epoch 14 of at most 40): written to a file, the bar ends
    finished, not as a frozen spinner at 14/40."""
    import io

    from rich.console import Console

    from mmtui.cli import render
    from mmtui.progress import ProgressEvent

    log = io.StringIO()
    monkeypatch.setattr(render, "err", Console(file=log, width=100))
    with render.progress_printer() as progress:
        for epoch in range(15):
            progress(ProgressEvent("adapt", epoch, 40))
        progress(ProgressEvent("images", 10, 10))
    shown = log.getvalue()
    assert "adapting the model" in shown and "14/14" in shown and "14/40" not in shown
    assert "10/10" in shown


def test_counts_of_one_are_singular(tiny_catalog, tmp_path):
    """tiny_catalog has exactly one row without an id: "1 row is not in the index", never "1 rows"."""
    result = CliRunner().invoke(cli, ["build-index", str(tiny_catalog), "--data-dir", str(tmp_path / "idx"),
                                      "--model", "fake"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "1 row is not in the index" in result.output
    counts_of_one = r"(?<![\w.,])1 (row|product|image|text|file|vector|querie|result)s\b"  # not "at 20.1 texts/s"
    assert not re.search(counts_of_one, result.output), result.output


def test_counted_says_one_thing_or_many():
    from mmtui.progress import counted

    assert [counted(0, "row"), counted(1, "row"), counted(1_200, "query", "queries")] == \
        ["0 rows", "1 row", "1,200 queries"]


def test_check_lists_a_damaged_word_cache_and_a_build_makes_it_again(data_dir, tiny_catalog):
    """The word-vector cache of query understanding gets the index files' treatment."""
    import json

    import numpy as np

    cache = data_dir / "understand" / "words-test.npz"
    cache.parent.mkdir(exist_ok=True)
    np.savez(cache, words=np.array(["blue", "shirt"]), vectors=np.ones((2, 4), np.float32))
    runner = CliRunner()
    assert runner.invoke(cli, ["check", "--data-dir", str(data_dir)]).exit_code == 0
    cache.write_bytes(cache.read_bytes()[:100])  # truncated
    result = runner.invoke(cli, ["check", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 1
    assert "understand/words-test.npz" in json.loads(result.output)["derived_problems"]
    shown = runner.invoke(cli, ["check", "--data-dir", str(data_dir)], terminal_width=200)
    assert shown.exit_code != 0 and "damaged: understand/words-test.npz: unreadable" in shown.output
    build = runner.invoke(cli, ["build-index", str(tiny_catalog), "--data-dir", str(data_dir), "--model", "fake"])
    assert build.exit_code == 0, build.output
    assert "understand/words-test.npz was damaged" in build.output
    assert runner.invoke(cli, ["check", "--data-dir", str(data_dir)]).exit_code == 0
