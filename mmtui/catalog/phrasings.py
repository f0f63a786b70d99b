"""Shopper-phrased queries generated from a catalog's products, with relevance from the catalog's facets.

One query per (kind, person, colour) group of a split's products. Relevance: grade 1 = the right kind for the
right person (a "unisex" product is right for men and for women), grade 2 = that and the right colour. The pool
the relevance is judged on is the whole catalog by default (every product of the kind, whatever its split): the
phrasing comes from held-out products, what the ranking learned (five weights) is not about any product.

Two disjoint phrasing sets (kept apart on purpose and written down here):
- TRAIN: what `mmtui train understanding` learns the ranking weights from: the catalog's own facet values as they
  are spelled ("casual shoes", "navy blue", "men"), the person as value or possessive ("men", "men's"), in
  TRAIN_TEMPLATES. Generated from the train split (fitting) and the validation split (choosing).
- HELDOUT: for measuring only, from the test split: the product's own title noun instead of the kind's name
  ("sneakers", "tee", "watch"), other words for the person (HELDOUT_PERSON: general English, not one catalog's:
  "ladies", "gents", "mens", ...), in HELDOUT_TEMPLATES (other word orders). Nothing in the ranking saw these.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from mmtui.catalog.facets import kind_of, load_facets, singular, words

TRAIN_TEMPLATES = ("{colour} {kind} for {person}", "{person} {colour} {kind}", "{colour} {kind}",
                   "{person} {kind}", "{kind} {colour} {person}")
TRAIN_TEMPLATES_NO_PERSON = ("{colour} {kind}", "{kind} {colour}", "{kind}")
HELDOUT_TEMPLATES = ("{person} {colour} {noun}", "{noun} in {colour} for {person}", "{colour} {noun} {person}",
                     "{noun} for {person} {colour}", "{colour} {person} {noun}")
HELDOUT_TEMPLATES_NO_PERSON = ("{noun} in {colour}", "{colour} {noun}", "{noun} {colour} colour")
# a catalog with no colour column (a marketplace's category paths): the (kind, person) groups, phrased without it
NO_COLOUR = {("train", True): ("{kind} for {person}", "{person} {kind}", "{kind}"), ("train", False): ("{kind}",),
             ("heldout", True): ("{person} {noun}", "{noun} for {person}"), ("heldout", False): ("{noun}",)}
TRAIN_PERSON = "{value}", "{value}'s"  # the catalog's value, or its possessive ("boys'" for a value ending in s)
HELDOUT_PERSON = {
    "men": ("mens", "gents", "male", "guys", "man"),
    "women": ("ladies", "womens", "female", "woman", "lady"),
    "boys": ("boy", "kids", "boy's"),
    "girls": ("girl", "kids", "girl's"),
}
UNISEX = "unisex"


@dataclass(frozen=True)
class Phrased:
    text: str
    relevant: dict[str, int]  # product id -> grade (1: kind + person, 2: + colour)
    kind: str
    person: str
    colour: str
    source: str  # the product the phrasing came from


def _products(store: Any) -> list[dict]:
    """The products' kind and person as the query understanding reads them (mmtui.catalog.facets): a catalog with
    no person column gets the person its titles say, so its generated queries name people too."""
    rows = store.db.execute("SELECT id, article_type, category, gender, colour, title, split, brand, rowid "
                            "FROM products").fetchall()
    brands = frozenset(" ".join(str(r[7]).lower().split()) for r in rows if r[7] and str(r[7]).strip())
    facets = load_facets(store)
    codes, values = facets.codes.get("person"), facets.values.get("person", [])
    return [{"id": str(r[0]), "kind": kind_of(r[1], r[2], brands),
             "person": values[codes[r[8]]] if codes is not None and codes[r[8]] >= 0 else "",
             "colour": str(r[4] or "").strip(), "title": str(r[5] or ""), "split": r[6]} for r in rows]


def _person_ok(product: str, wanted: str) -> bool:
    p, w = product.lower(), wanted.lower()
    return p == w or (p == UNISEX and w in ("men", "women"))


def _title_noun(title: str, kind: str, colour: str, person: str, kinds: set[str]) -> str | None:
    """The title's last word, a noun of the product ("Nike Men Black Sneakers" -> "sneakers"; "T-Shirts" stays
    one word), with the one before it when both are words of the kind's name ("casual shoes"). None when the title
    ends in a number or code, or in the name of another kind of the catalog ("... Sandals" on a product of kind
    Heels: the catalog's own labels disagree, a shopper could not be right)."""
    head = str(title).split(",")[0]  # "GRUNDTAL Wall shelf, stainless steel, 80 cm": what it is comes first
    ws = [w.strip("-") for w in re.findall(r"[a-z0-9][a-z0-9-]*", head.lower().replace("'s", ""))]
    skip = set(words(colour)) | set(words(person)) | {"kids", "boy", "girl", "men", "women", "unisex", "man", "woman"}
    ws = [w for w in ws if w and w not in skip and len(w) > 1]
    if not ws or any(ch.isdigit() for ch in ws[-1]):
        return None
    noun = ws[-1]
    kind_words = {singular(w) for w in words(kind)}
    if len(ws) > 1 and singular(ws[-2]) in kind_words and singular(noun) in kind_words:
        noun = f"{ws[-2]} {noun}"
    named = "".join(singular(w) for w in words(noun))
    own = "".join(singular(w) for w in words(kind))
    if named != own and named in kinds:
        return None
    return noun


def phrased_queries(store: Any, split: str, phrasing: str, *, pool: str = "catalog", limit: int | None = 300,
                    seed: int = 0, min_relevant: int = 1) -> list[Phrased]:
    """Queries for the (kind, person, colour) groups of `split`'s products, phrased with `phrasing` ("train" or
    "heldout"); relevance over `pool` ("catalog": every product; "split": the split's own products)."""
    if phrasing not in ("train", "heldout"):
        raise ValueError("phrasing is 'train' or 'heldout'")
    products = _products(store)
    has_colour = sum(1 for p in products if p["colour"]) >= len(products) // 2
    person_kinds = _person_kinds(products)
    judged = products if pool == "catalog" else [p for p in products if p["split"] == split]
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for p in products:
        has_person = p["kind"].lower() in person_kinds
        if p["split"] != split or not p["kind"] or (has_colour and not p["colour"]) or (has_person and not p["person"]):
            continue
        groups.setdefault((p["kind"].lower(), p["person"].lower() if has_person else "",
                           p["colour"].lower() if has_colour else ""),
                          []).append(p)
    rng = random.Random(f"{seed}-{split}-{phrasing}")
    kinds = {"".join(singular(w) for w in words(p["kind"])) for p in products if p["kind"]}
    out: list[Phrased] = []
    for (kind, person, colour), members in sorted(groups.items()):
        source = rng.choice(members)
        has_person = kind in person_kinds
        text = _phrase(source, phrasing, has_person, rng, kinds, has_colour)
        if not text:
            continue
        named_person = has_person and "{person}" in text  # _phrase marks a template that names the person
        text = text.replace("{person}", "").strip()
        relevant: dict[str, int] = {}
        for p in judged:
            if p["kind"].lower() != kind or (named_person and not _person_ok(p["person"], person)):
                continue
            relevant[p["id"]] = 2 if not has_colour or p["colour"].lower() == colour else 1
        if len(relevant) >= min_relevant:
            out.append(Phrased(text, relevant, source["kind"], source["person"] if named_person else "",
                               source["colour"], source["id"]))
    if limit is not None and len(out) > limit:
        out = sorted(random.Random(seed).sample(out, limit), key=lambda q: q.text)
    return out


def _person_kinds(products: list[dict]) -> set[str]:
    """The kinds (lower case) whose queries name a person: those most of whose products have one (with a person
    column, every kind; a marketplace's titles say "For Women" on its watches, nothing on its sofas)."""
    kinds = {p["kind"].lower() for p in products if p["kind"]}
    total, said = Counter(p["kind"].lower() for p in products), Counter(p["kind"].lower() for p in products
                                                                         if p["person"])
    return {k for k in kinds if 2 * said[k] >= total[k]}


def _phrase(p: dict, phrasing: str, has_person: bool, rng: random.Random, kinds: set[str], has_colour: bool = True
            ) -> str | None:
    kind, colour, person = p["kind"].lower(), p["colour"].lower(), p["person"].lower()
    if phrasing == "train":
        templates = TRAIN_TEMPLATES if has_person else TRAIN_TEMPLATES_NO_PERSON
        who = rng.choice(TRAIN_PERSON).format(value=person).replace("s's", "s'") if has_person else ""
        words_ = {"kind": kind, "colour": colour, "person": who}
    else:
        noun = _title_noun(p["title"], p["kind"], p["colour"], p["person"], kinds)
        if noun is None:
            return None
        templates = HELDOUT_TEMPLATES if has_person else HELDOUT_TEMPLATES_NO_PERSON
        who = rng.choice(HELDOUT_PERSON.get(person, (person,))) if has_person else ""
        words_ = {"noun": noun, "colour": colour, "person": who}
    template = rng.choice(templates if has_colour else NO_COLOUR[(phrasing, has_person)])
    text = " ".join(template.format(**words_).split())
    return text + (" {person}" if "{person}" in template else "")


def train_phrasing(group: dict, has_person: bool, rng: random.Random, kinds: set[str], has_colour: bool = True
                   ) -> str | None:
    """A TRAIN phrasing of one (kind, person, colour) group (`group`: its "kind", "person", "colour", "title"), as
    phrased_queries makes them, without its relevance (the ANN self-check's probes, mmtui.catalog.probes)."""
    text = _phrase(group, "train", has_person, rng, kinds, has_colour)
    return text.replace("{person}", "").strip() if text else None


def catalog_phrasing(q: Phrased) -> Phrased:
    """The same group in the catalog's own words: "black casual shoes for men" ("unisex black backpacks")."""
    colour, kind, person = q.colour.lower(), q.kind.lower(), q.person.lower()
    if person in HELDOUT_PERSON:
        text = f"{colour} {kind} for {person}"
    else:
        text = f"{person} {colour} {kind}"
    return Phrased(" ".join(text.split()), q.relevant, q.kind, q.person, q.colour, q.source)
