"""A catalog file's bytes -> text, with the encoding it was read as (shown in the build summary).

Tried in order: a byte-order mark (UTF-8, UTF-16), then UTF-8, then Windows-1252 (what Excel and most
Western shop systems write: curly quotes and the euro sign live in 0x80-0x9F, which Latin-1 would turn into
control characters), then Latin-1 for the five bytes Windows-1252 leaves undefined, so no byte is ever lost.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from mmtui.errors import CatalogError

UTF8, UTF8_BOM, UTF16, CP1252, LATIN1 = "utf-8", "utf-8 (with BOM)", "utf-16", "windows-1252", "latin-1"


def decode(data: bytes) -> tuple[str, str]:
    """(text, the encoding's name as shown to users)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace"), UTF8_BOM
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), UTF16
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8"), UTF8
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), CP1252
    except UnicodeDecodeError:
        return data.decode("latin-1"), LATIN1


def read_text(path: Path) -> tuple[str, str]:
    """A catalog file's text and encoding; CatalogError when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CatalogError(f"cannot read {path}: {e.strerror or e}", "check the file exists and is readable") from e
    return decode(data)


def split_lines(text: str) -> list[str]:
    """Split on newlines only (str.splitlines also splits on U+2028 and friends, valid inside values).
    A file with carriage returns and no newline at all (old Mac exports) is split on the carriage returns."""
    if "\n" not in text and "\r" in text:
        text = text.replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def physical_lines(text: str) -> list[str]:
    """The file's lines with their line ends kept (what a csv.reader needs to see newlines inside quotes)."""
    if "\n" not in text and "\r" in text:
        text = text.replace("\r", "\n")
    lines = text.split("\n")
    last = lines.pop()
    out = [line + "\n" for line in lines]
    if last:
        out.append(last)
    return out


def check_unique_header(file_name: str, header: list[str]) -> None:
    """A header naming one column twice is an error: reading it would silently keep one of the two columns."""
    seen: dict[str, int] = {}
    for i, name in enumerate(header, start=1):
        key = name.strip().lower()
        if not key:
            continue  # unnamed columns (a trailing comma) hold nothing we read
        if key in seen:
            raise CatalogError(f"{file_name} names the column {name.strip()!r} twice (columns {seen[key]} and {i})",
                               "rename or remove one of them, so no value is silently dropped")
        seen[key] = i
