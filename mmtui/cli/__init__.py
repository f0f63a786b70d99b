"""The `mmtui` command line: one module per command group, rendering in render.py."""

from mmtui.cli.main import cli

__all__ = ["cli"]
