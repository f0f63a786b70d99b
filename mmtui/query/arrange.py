"""Arranging a list of results as a shopper does: count its facets, sort it, collapse the variants of one product.

- `count_facets`: for the top N hits (default 100), how many have each kind, colour, person, brand (where the catalog
  has them) and price band; each value keeps the ids of its hits, so a front end can narrow the list in place.
- `sort_hits`: relevance (as ranked), price or -price (products without a price last), ranks renumbered.
- `collapse_variants`: hits whose titles are the same up to the catalog's colour and size words (and of one kind)
  are one row, the best-ranked one, with the others as its variants ("+3 colours").

Pure functions of the hits and of what the catalog says (mmtui.query.service gives them the catalog's kinds,
persons, colour words and price bands); no rendering here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

TOP = 100  # results counted by default
FACET_ORDER = ("kind", "colour", "person", "brand", "price")
SORTS = ("relevance", "price", "-price")
# sizes said in titles in general English shop usage: letter sizes, "size 9", a number with a unit of measure (a bare
# number is not one: "Air Max 90" and "Air Max 95" are two products)
SIZE = re.compile(r"^(?:xxs|xs|s|m|l|xl|xxl|xxxl|[2-5]xl|small|medium|large|petite|one ?size|free ?size"
                  r"|\d+(?:\.\d+)?(?:cm|mm|in|inch|inches|ml|l|ltr|g|gm|kg|oz|lb|pcs|pc|pack))$")
SIZE_LEAD = frozenset("size sz".split())


@dataclass
class FacetValue:
    value: str
    count: int
    ids: frozenset[str] = field(default_factory=frozenset, repr=False)
    bounds: tuple[float | None, float | None] | None = None  # a price band's [low, high)


@dataclass
class ResultFacets:
    """facet -> its values over the top `counted` hits, most frequent first (price bands in price order)."""
    counted: int
    facets: dict[str, list[FacetValue]]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"counted": self.counted}
        for name, values in self.facets.items():
            out[name] = [{"value": v.value, "count": v.count, **({"low": v.bounds[0], "high": v.bounds[1]}
                                                                  if v.bounds is not None else {})} for v in values]
        return out

    def ids(self, facet: str, value: str) -> frozenset[str]:
        for v in self.facets.get(facet, []):
            if v.value == value:
                return v.ids
        return frozenset()

    def only(self, hits: Sequence, chosen: Mapping[str, str]) -> list:
        """The hits that have every chosen facet value, in their order, ranks renumbered."""
        keep = [h for h in hits if all(h.id in self.ids(f, v) for f, v in chosen.items() if v)]
        return renumbered(keep)


def renumbered(hits: Iterable) -> list:
    return [replace(h, rank=i) for i, h in enumerate(hits, start=1)]


def price_bands(prices: Iterable[float], n: int = 4) -> list[tuple[float | None, float | None]]:
    """About n price bands [low, high) from the quantiles of these prices, their edges rounded to two significant
    figures (500, 1,000, 2,500); the first band has no low edge, the last no high one. [] without prices."""
    values = sorted(p for p in prices if p is not None and math.isfinite(p))
    if not values:
        return []
    edges: list[float] = []
    for i in range(1, n):
        edge = _round2(values[int(len(values) * i / n)])
        if edge > values[0] and (not edges or edge > edges[-1]):
            edges.append(edge)
    bounds = [None, *edges, None]
    return list(zip(bounds[:-1], bounds[1:]))


def _round2(x: float) -> float:
    if x <= 0:
        return 0.0
    digits = 1 - int(math.floor(math.log10(x)))
    return round(x, digits)


def band_label(low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "any price"
    if low is None:
        return f"< {high:,g}"
    if high is None:
        return f"{low:,g}+"
    return f"{low:,g}–{high:,g}"


def _in_band(price: float | None, low: float | None, high: float | None) -> bool:
    return price is not None and (low is None or price >= low) and (high is None or price < high)


def count_facets(hits: Sequence, *, top: int = TOP, kinds: Mapping[str, str] | None = None,
                 persons: Mapping[str, str] | None = None, bands: Sequence[tuple] | None = None) -> ResultFacets:
    """Count each facet over the first `top` hits. `kinds` / `persons`: product id -> its kind / person as the
    catalog's facets read them (default: the last step of the hit's category / its gender); `bands`: price bands
    (default: price_bands of these hits' prices). A facet no counted hit has is left out."""
    counted = list(hits)[:top]
    facets: dict[str, list[FacetValue]] = {}
    readers = {"kind": (lambda h: (kinds or {}).get(h.id) if kinds is not None else _last_step(h.category)),
               "colour": lambda h: h.colour, "person": (lambda h: (persons or {}).get(h.id) if persons is not None
                                                        else h.gender), "brand": lambda h: h.brand}
    for name, read in readers.items():
        groups: dict[str, list[str]] = {}
        spelled: dict[str, str] = {}
        for hit in counted:
            value = str(read(hit) or "").strip()
            if value:
                key = value.lower()
                spelled.setdefault(key, value)
                groups.setdefault(key, []).append(hit.id)
        if groups:
            values = [FacetValue(spelled[k], len(ids), frozenset(ids)) for k, ids in groups.items()]
            facets[name] = sorted(values, key=lambda v: (-v.count, v.value.lower()))
    bands = list(bands) if bands is not None else price_bands(h.price for h in counted)
    priced = [FacetValue(band_label(lo, hi), 0, frozenset(h.id for h in counted if _in_band(h.price, lo, hi)),
                         (lo, hi)) for lo, hi in bands]
    priced = [replace(v, count=len(v.ids)) for v in priced if v.ids]
    if priced:
        facets["price"] = priced
    return ResultFacets(len(counted), facets)


def _last_step(category: str | None) -> str:
    return str(category or "").split(">")[-1].strip()


def sort_hits(hits: Sequence, order: str = "relevance") -> list:
    """Hits as ranked ("relevance"), by price ascending ("price") or descending ("-price"), products without a
    price after those with one (in their ranked order); ranks renumbered."""
    if order not in SORTS:
        from mmtui.errors import QueryError

        raise QueryError(f"cannot sort by {order!r}", "sort by relevance, price or -price")
    if order == "relevance":
        return list(hits)
    priced = [h for h in hits if h.price is not None]
    rest = [h for h in hits if h.price is None]
    priced.sort(key=lambda h: h.price, reverse=order == "-price")  # stable: equal prices keep their rank order
    return renumbered(priced + rest)


# -- variants ------------------------------------------------------------------------------------------------------
def variant_key(title: str, colour_words: frozenset[str], kind: str = "") -> str:
    """A title without its colour and size words (and the kind it is of): products with the same key are variants
    of one product ("Nike Men Red Tshirt, Size M" and "Nike Men Blue Tshirt" -> "tshirt|nike men tshirt")."""
    from mmtui.catalog.facets import words

    out: list[str] = []
    said = words(title)
    for i, word in enumerate(said):
        if word in colour_words or SIZE.match(word) or word in SIZE_LEAD:
            continue
        if i > 0 and said[i - 1] in SIZE_LEAD:
            continue  # "size 9", "size eu"
        out.append(word)
    return f"{kind.lower()}|{' '.join(out)}"


def colour_words(colours: Iterable[str]) -> frozenset[str]:
    """The words of a catalog's colour values ("Navy Blue" -> navy, blue) and "multi"/"multicolour"."""
    from mmtui.catalog.facets import words

    return frozenset(w for c in colours for w in words(c)) | {"multi", "multicolour", "multicolor", "coloured"}


@dataclass
class Collapsed:
    """One row of a collapsed list: the best-ranked hit and the other hits of the same product."""
    hit: Any
    variants: list = field(default_factory=list)

    @property
    def label(self) -> str:
        """"+3 colours" (the variants' distinct colours other than the row's), else "+3 variants"."""
        if not self.variants:
            return ""
        colours = {str(v.colour or "").lower() for v in self.variants} - {str(self.hit.colour or "").lower(), ""}
        if len(colours) == len(self.variants):
            return f"+{len(colours)} colour{'s' if len(colours) != 1 else ''}"
        return f"+{len(self.variants)} variant{'s' if len(self.variants) != 1 else ''}"

    def to_json(self) -> dict[str, Any]:
        return {**self.hit.to_json(), "variants": [{"id": v.id, "title": v.title, "colour": v.colour,
                                                   "price": v.price} for v in self.variants]}


def collapse_variants(hits: Sequence, keys: Mapping[str, str]) -> list[Collapsed]:
    """Hits with the same variant key (`keys`: id -> variant_key) as one row at the best one's place; ranks
    renumbered. Hits without a key stay rows of their own."""
    rows: list[Collapsed] = []
    at: dict[str, Collapsed] = {}
    for hit in hits:
        key = keys.get(hit.id)
        if key is not None and key in at:
            at[key].variants.append(hit)
            continue
        row = Collapsed(hit)
        rows.append(row)
        if key is not None:
            at[key] = row
    return [replace(row, hit=replace(row.hit, rank=i)) for i, row in enumerate(rows, start=1)]
