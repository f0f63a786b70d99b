"""A catalog file's text and lines, shared by the generic and the Fashion readers."""

from __future__ import annotations

from pathlib import Path

from ..errors import CatalogError


def read_text(path: Path) -> str:
    """A catalog file's text: UTF-8 (with or without BOM), else Latin-1 so no byte is lost."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CatalogError(f"cannot read {path}: {e.strerror or e}", "check the file exists and is readable") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def split_lines(text: str) -> list[str]:
    """Split on newlines only (str.splitlines also splits on U+2028 and friends, valid inside values)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
