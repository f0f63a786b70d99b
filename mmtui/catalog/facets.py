"""A catalog's facets as arrays: for every product, the index of its kind, person, colour and brand value.

The same code serves every catalog: the "kind" of a product is its article type when the catalog has one, else its
category, else the last step of an "A > B" category path; the "person" is the gender column where it is filled.
A facet with fewer than two values (every IKEA product is brand "IKEA") tells products apart by nothing and is left
out. Read once per generation of the products table (SQLite's data_version and the row count).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FACETS = ("kind", "person", "colour", "brand")
FILTER_FIELD = {"kind": "article_type", "person": "gender", "colour": "colour", "brand": "brand"}  # --where names
LABELS = {"kind": "kind", "person": "for", "colour": "colour", "brand": "brand", "price": "price"}


def kind_of(article_type: str | None, category: str | None) -> str:
    """The article type, else the last step of the category path ("Fruit > Apple" -> "Apple")."""
    if article_type and str(article_type).strip():
        return str(article_type).strip()
    return str(category or "").split(">")[-1].strip()


@dataclass
class Facets:
    """values[f]: the facet's distinct values (as the catalog spells them); codes[f][rowid]: index into values[f],
    -1 where the product has none. counts[f][i]: products with value i. kind_column: the column "kind" reads."""
    values: dict[str, list[str]]
    codes: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    kind_column: str
    titles: dict[int, str] = field(default_factory=dict, repr=False)
    prices: np.ndarray | None = None  # price by rowid (nan: none)
    category_values: frozenset[str] = frozenset()  # the raw category column's values (to tell "A > B" paths)

    def value_index(self, facet: str) -> dict[str, int]:
        return {v.lower(): i for i, v in enumerate(self.values.get(facet, []))}


def load_facets(store: Any) -> Facets:
    """Every product's facet values, from the products table."""
    rows = store.db.execute(
        "SELECT rowid, article_type, category, gender, colour, brand, price, title FROM products").fetchall()
    n = (max(r[0] for r in rows) + 1) if rows else 1
    has_article = any(r[1] and str(r[1]).strip() for r in rows)
    raw = {"kind": [kind_of(r[1], r[2]) for r in rows], "person": [str(r[3] or "").strip() for r in rows],
           "colour": [str(r[4] or "").strip() for r in rows], "brand": [str(r[5] or "").strip() for r in rows]}
    values: dict[str, list[str]] = {}
    codes: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for facet in FACETS:
        spelled: dict[str, str] = {}
        for v in raw[facet]:
            if v:
                spelled.setdefault(v.lower(), v)
        if len(spelled) < 2:
            continue
        names = sorted(spelled.values(), key=str.lower)
        index = {v.lower(): i for i, v in enumerate(names)}
        code = np.full(n, -1, np.int32)
        for (rowid, *_), v in zip(rows, raw[facet]):
            if v:
                code[rowid] = index[v.lower()]
        values[facet], codes[facet] = names, code
        counts[facet] = np.bincount(code[code >= 0], minlength=len(names))
    prices = np.full(n, np.nan, np.float64)
    for r in rows:
        if r[6] is not None:
            prices[r[0]] = float(r[6])
    return Facets(values, codes, counts, "article_type" if has_article else "category",
                  titles={r[0]: str(r[7] or "") for r in rows}, prices=prices,
                  category_values=frozenset(str(r[2]) for r in rows if r[2]))


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
