"""The one text per product that text encoders and lexical search see."""

from __future__ import annotations

import html
import re

from mmtui.catalog.records import Product

# Attributes that read as prose, in this order, after the standard fields.
_TEXT_ATTRIBUTES = ("season", "usage")
_PROSE_ATTRIBUTES = ("bullets", "features", "bullet_points", "highlights")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_ODD_SPACE = re.compile(r"\s\s|[^\S ]")  # whitespace that _SPACE would change: runs, tabs, newlines


def clean_text(value: str) -> str:
    """Strip HTML tags and entities, collapse whitespace, trim trailing separators."""
    if not value:
        return ""
    if "<" in value or "&" in value:  # most values have neither: skip the tag and entity passes (a rebuild's hot loop)
        value = html.unescape(_TAG.sub(" ", value))
    if _ODD_SPACE.search(value):
        value = _SPACE.sub(" ", value)
    return value.strip().rstrip(" .;,")


def combined_text(product: Product) -> str:
    """Title, category path, colour, gender, season, usage, brand, description and bullet-like
    attributes, cleaned and joined with ". ". A part equal (ignoring case) to an earlier one is
    left out. Deterministic: depends only on the product's fields."""
    attrs = {k.lower(): v for k, v in product.attributes.items()}
    parts = [product.title, product.category, product.colour, product.gender]
    parts += [attrs.get(name, "") for name in _TEXT_ATTRIBUTES]
    parts += [product.brand, product.description]
    parts += [attrs.get(name, "") for name in _PROSE_ATTRIBUTES]
    out: list[str] = []
    seen: set[str] = set()
    for part in parts:
        cleaned = clean_text(part or "")
        key = cleaned.lower()
        if cleaned and key not in seen:
            seen.add(key)
            out.append(cleaned)
    return ". ".join(out)
