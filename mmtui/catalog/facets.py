"""A catalog's facets as arrays: for every product, the index of its kind, person, colour and brand value.

The same code serves every catalog: the "kind" of a product is its article type when the catalog has one, else its
category, else the deepest step of an "A > B" category path that is not one brand's or one person's shelf
("Watches > Wrist Watches > Maxima Wrist Watches" -> "Wrist Watches"); the "person" is the gender column where it
is filled, else (a catalog with no person column) what the title or category path says ("... - For Women",
"Men's Wrist Watches"), a derived facet (mmtui.catalog.people).
A facet with fewer than two values (every IKEA product is brand "IKEA") tells products apart by nothing and is left
out. Read once per generation of the products table (SQLite's data_version and the row count).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmtui.catalog.people import CANONICAL, LABEL_WORDS, person_in_text
from mmtui.catalog.words import singular, words

FACETS = ("kind", "person", "colour", "brand")
FILTER_FIELD = {"kind": "article_type", "person": "gender", "colour": "colour", "brand": "brand"}  # --where names
LABELS = {"kind": "kind", "person": "for", "colour": "colour", "brand": "brand", "price": "price"}


def kind_of(article_type: str | None, category: str | None, brands: frozenset[str] = frozenset()) -> str:
    """The article type, else the deepest step of the category path that is a kind ("Fruit > Apple" -> "Apple").
    A step that is a brand's or a person's shelf of its parent is not a kind of its own: "Wrist Watches > Maxima
    Wrist Watches" and "Wrist Watches > Men's Wrist Watches" are "Wrist Watches" (`brands`: the catalog's brand
    names, lower case); a step that only names a brand ("... > KASTRULL") is skipped."""
    if article_type and str(article_type).strip():
        return str(article_type).strip()
    steps = [s.strip() for s in str(category or "").split(">") if s.strip()]
    for depth in range(len(steps) - 1, -1, -1):
        step = steps[depth]
        rest = _without_brand(step, brands)
        if depth:
            rest = _without_person(rest)  # "Men's Wallets", "Unisex Duffel Bags": whom it is for is the person facet
        if not rest:
            continue  # the step only names a brand or a person
        if depth and _shelf_of(rest, step, _without_person(_without_brand(steps[depth - 1], brands)), brands):
            continue  # a brand's or a person's shelf of its parent: the parent says the kind
        return step if rest == step.lower() else _spelled_like(rest, step)
    return steps[-1] if steps else ""


def _shelf_of(rest: str, step: str, parent: str, brands: frozenset[str]) -> bool:
    """Whether a step is its parent's kind again. `rest` is the step without brand and person: when they were
    there ("Maxima Wrist Watches", "Men's Watches", "Clarks Shoes" under "Sneakers & Casual Shoes"), a rest that is
    the parent (or one of its parts) or its last words is the parent's kind; so is a step that puts a product
    line's name before the parent's ("OTTAVA Pendant Lamps" under "Pendant Lamps": capitals, digits or a brand).
    "Bags" under "Bags, Wallets & Belts" and "Coffee Tables" under "Tables" are kinds of their own."""
    if not parent:
        return False
    stripped = rest != " ".join(step.lower().split())
    mine = [singular(w) for w in words(rest)]
    for n, name in enumerate([parent] + [p.strip() for p in re.split(r",|&|\band\b", parent) if p.strip()]):
        theirs = [singular(w) for w in words(name)]
        if not theirs or not mine:
            continue
        if stripped and (mine == theirs or (len(mine) < len(theirs) and theirs[-len(mine):] == mine)):
            return True
        if len(mine) > len(theirs) and mine[-len(theirs):] == theirs:
            lead = [w for w in step.split() if words(w)]
            said = [w for w in lead if singular(words(w)[0]) in mine[:len(mine) - len(theirs)]]
            if said and all(_names_a_line(w, brands) for w in said):
                return True
    return False


def _names_a_line(word: str, brands: frozenset[str]) -> bool:
    """A word of a product line's or brand's name: in capitals ("OTTAVA", "PS"), with a digit ("2012"), or a brand."""
    letters = re.sub(r"[^A-Za-z0-9]", "", word)
    return (len(letters) >= 2 and letters.isupper()) or any(ch.isdigit() for ch in letters) or \
        letters.lower() in brands


def _without_brand(step: str, brands: frozenset[str]) -> str:
    """The step in lower case without a leading brand name ("Maxima Wrist Watches" -> "wrist watches")."""
    low = " ".join(step.lower().split())
    for brand in sorted((b for b in brands if low.startswith(b + " ") or low == b), key=len, reverse=True)[:1]:
        low = low[len(brand):].strip(" -&,")
    return low


def _without_person(step: str) -> str:
    """The (lower-case) step without the words that say whom it is for ("men's wrist watches" -> "wrist watches")."""
    kept = [w for w in step.split() if not words(w) or words(w)[0] not in LABEL_WORDS]
    if len(kept) < len(step.split()) and kept and kept[-1] == "for":
        kept = kept[:-1]
    return " ".join(w for w in kept if w != "-").strip(" -&,")


def _same_kind(a: str, b: str) -> bool:
    return bool(b) and [singular(w) for w in words(a)] == [singular(w) for w in words(b)]


def _spelled_like(rest: str, step: str) -> str:
    """`rest` (a lower-case tail of `step`) as the step spells it ("Maxima Wall Clocks" -> "Wall Clocks")."""
    at = step.lower().rfind(rest)
    return step[at:at + len(rest)] if at >= 0 else rest


class Texts(Mapping):
    """A read-only {rowid: text} of many products packed in two arrays (one UTF-8 buffer and its offsets) instead
    of a dict of Python strings: 1M product titles took ~390 MB as a dict in every searching process, ~60 MB here."""

    def __init__(self, items: Iterable[tuple[int, str]] = ()) -> None:
        pairs = sorted((int(r), str(t)) for r, t in items)
        encoded = [t.encode("utf-8") for _, t in pairs]
        self._rowids = np.fromiter((r for r, _ in pairs), np.int64, count=len(pairs))
        self._ends = np.cumsum(np.fromiter(map(len, encoded), np.int64, count=len(encoded)))
        self._blob = b"".join(encoded)

    def _at(self, i: int) -> str:
        start = int(self._ends[i - 1]) if i else 0
        return self._blob[start:int(self._ends[i])].decode("utf-8")

    def __getitem__(self, rowid: int) -> str:
        i = int(np.searchsorted(self._rowids, rowid))
        if i >= len(self._rowids) or self._rowids[i] != rowid:
            raise KeyError(rowid)
        return self._at(i)

    def __iter__(self) -> Iterator[int]:
        return iter(self._rowids.tolist())

    def __len__(self) -> int:
        return len(self._rowids)

    def items(self):
        return zip(self._rowids.tolist(), self.values())

    def values(self):
        return [self._at(i) for i in range(len(self._rowids))]


@dataclass
class Facets:
    """values[f]: the facet's distinct values (as the catalog spells them); codes[f][rowid]: index into values[f],
    -1 where the product has none. counts[f][i]: products with value i. kind_column: the column "kind" reads."""
    values: dict[str, list[str]]
    codes: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    kind_column: str
    titles: Mapping[int, str] = field(default_factory=dict, repr=False)  # Texts when loaded from a store
    descriptions: Mapping[int, str] = field(default_factory=dict, repr=False)  # where filled
    prices: np.ndarray | None = None  # price by rowid (nan: none)
    category_values: frozenset[str] = frozenset()  # the raw category column's values (to tell "A > B" paths)
    derived: frozenset[str] = frozenset()  # facets read from the products' words, not a column ("person")
    currency: str | None = None  # ISO code of the catalog's prices when its data says (an attributes column)
    narrower: dict[int, tuple[int, ...]] = field(default_factory=dict)  # kind -> kinds filed under it (paths)

    def value_index(self, facet: str) -> dict[str, int]:
        return {v.lower(): i for i, v in enumerate(self.values.get(facet, []))}


def load_facets(store: Any) -> Facets:
    """Every product's facet values, from the products table."""
    rows = store.db.execute("SELECT rowid, article_type, category, gender, colour, brand, price, title, description, "
                            "attributes FROM products").fetchall()
    n = (max(r[0] for r in rows) + 1) if rows else 1
    has_article = any(r[1] and str(r[1]).strip() for r in rows)
    brands = frozenset(" ".join(str(r[5]).lower().split()) for r in rows if r[5] and str(r[5]).strip())
    raw = {"kind": [kind_of(r[1], r[2], brands) for r in rows], "person": [str(r[3] or "").strip() for r in rows],
           "colour": [str(r[4] or "").strip() for r in rows], "brand": [str(r[5] or "").strip() for r in rows]}
    derived = set()
    if sum(1 for p in raw["person"] if p) < DERIVE_BELOW * len(rows):
        said = [derived_person(r[7], r[2], r[8]) for r in rows]
        if sum(1 for p in said if p) >= DERIVE_MIN * len(rows):
            raw["person"], derived = said, {"person"}
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
                  titles=Texts((r[0], str(r[7] or "")) for r in rows), prices=prices,
                  descriptions=Texts((r[0], str(r[8])) for r in rows if r[8]),
                  category_values=frozenset(str(r[2]) for r in rows if r[2]),
                  derived=frozenset(derived & set(values)), currency=_currency([r[9] for r in rows]),
                  narrower=narrower_kinds(raw["kind"], [r[2] for r in rows], values.get("kind", [])))


def narrower_kinds(kinds: list[str], categories: list, values: list[str]) -> dict[int, tuple[int, ...]]:
    """kind index -> the kinds of the products whose category path passes through a step that is that kind
    ("Watches > Wrist Watches > Guess Wrist Watches": Wrist Watches are filed under Watches). A shopper who asks
    for watches asks for those too. Pairs the paths give both ways are left out."""
    index = {v.lower(): i for i, v in enumerate(values)}
    pairs: set[tuple[int, int]] = set()
    for kind, category in zip(kinds, categories):
        own = index.get(str(kind or "").lower())
        if own is None or not category or ">" not in str(category):
            continue
        for step in (s.strip().lower() for s in str(category).split(">")):
            if step == values[own].lower():
                break  # the product's own shelf: what comes after it is narrower still
            for name in {step, _without_person(step)}:
                parent = index.get(name)
                if parent is not None and parent != own:
                    pairs.add((parent, own))
    out: dict[int, set[int]] = {}
    for parent, child in pairs:
        if (child, parent) not in pairs:
            out.setdefault(parent, set()).add(child)
    return {parent: tuple(sorted(children)) for parent, children in out.items()}


DERIVE_BELOW = 0.05  # a person column filled for fewer products than this share is no person column
DERIVE_MIN = 0.05  # ... and the words must name a person for at least this share for a derived facet


def derived_person(title: str | None, category: str | None, description: str | None) -> str:
    """The person a product's own words say it is for: its title, else its category path, else its description
    ("Puma Watch - For Women" -> "Women"), as mmtui.catalog.people.CANONICAL names it; "" when none says."""

    for text in (title, category, description):
        found = person_in_text(str(text or ""))
        if found is not None:
            return CANONICAL.get(found, "Unisex")
    return ""


def _currency(attributes: list) -> str | None:
    """The catalog's currency when its data names one (a "currency" column kept in attributes), else None."""
    import json
    from collections import Counter

    seen: Counter = Counter()
    for raw in attributes:
        if raw and "currency" in str(raw).lower():
            try:
                data = json.loads(raw)
            except (TypeError, ValueError):
                continue
            for key, value in (data.items() if isinstance(data, dict) else ()):
                if str(key).lower() == "currency" and value:
                    seen[str(value).strip().upper()] += 1
    return seen.most_common(1)[0][0] if seen else None
