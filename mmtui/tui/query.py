"""Reading the search box: is it an image path (typed, pasted or dropped) or text to search?"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

LIKE_PREFIX = "like:"  # "like:12345" = more like product 12345
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class Query:
    kind: str  # "text" | "image" | "like" | "compound" | "path" (a path, but no image file there) | "empty"
    text: str  # the text to search, the image path as a string, or the product id for "like"
    path: Path | None = None


def _clean_path(raw: str) -> str:
    s = raw.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        s = s[1:-1].strip()
    if s.startswith("file://"):
        s = unquote(urlparse(s).path)
    s = s.replace("\\ ", " ")  # terminals escape spaces when a file is dropped
    return os.path.expanduser(s)


PATH_PREFIXES = ("/", "~", "./", "../", "file://")


def starts_like_path(raw: str) -> bool:
    """Typed or pasted text that can only be a path (never worth a text search)."""
    return raw.strip().lstrip("'\"").startswith(PATH_PREFIXES)


def looks_like_path(raw: str) -> bool:
    s = raw.strip().strip("'\"")
    return s.startswith(PATH_PREFIXES) or Path(s).suffix.lower() in IMAGE_SUFFIXES


def _is_file(text: str) -> bool:
    try:
        return Path(_clean_path(text)).is_file()
    except OSError:
        return False


def is_combined(text: str) -> bool:
    """Whether the text says more than one part, a weight or a negative ("shoes without laces" too: the service
    reads whether the catalog has laces). A lone path is not: it is an image query, checked below."""
    from mmtui.query.compound import parse_compound

    if starts_like_path(text) and (" + " not in text and " - " not in text or _is_file(text)):
        return False  # "~/Photos/Beach - 2020.jpg" is one picture
    return parse_compound(text).combined


def parse_query(raw: str) -> Query:
    """Parts joined by + / - (mmtui.query.compound: "red dress - floral", "like:12 + cheaper") are a compound
    query; `like:ID` is more-like-this; an existing image file (quotes and file:// stripped, ~ expanded) is an image query; anything else is text."""
    text = (raw or "").strip()
    if not text:
        return Query("empty", "")
    if is_combined(text):
        return Query("compound", text)
    if text.lower().startswith(LIKE_PREFIX) and text[len(LIKE_PREFIX):].strip():
        return Query("like", text[len(LIKE_PREFIX):].strip())
    if looks_like_path(text):
        candidate = Path(_clean_path(text))
        try:
            if candidate.suffix.lower() in IMAGE_SUFFIXES and candidate.is_file():
                return Query("image", str(candidate), candidate)
        except OSError:
            pass
        if starts_like_path(text):
            return Query("path", str(candidate), candidate)  # not an image file (yet): do not search it as text
    return Query("text", text)
