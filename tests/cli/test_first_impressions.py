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
