"""Words of a text as facets and the query understanding compare them: lower-case, possessives dropped,
a rough singular."""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-case words; a possessive "'s" and the apostrophe of "mens'" are dropped ("men's" -> "men")."""
    text = str(text).lower().replace("\u2019", "'")
    text = re.sub(r"'s\b", "", text).replace("'", "")
    return _WORD.findall(text)


def singular(word: str) -> str:
    """A rough English singular, the same for a value and a query word: "watches" -> "watch", "dresses" ->
    "dress", "tops" -> "top", "accessories" -> "accessory", "kurtis" -> "kurti"; short words and "-ss" words stay."""
    if len(word) <= 3 or word.endswith("ss"):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word
