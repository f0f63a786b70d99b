"""Query-like probe texts for the ANN self-check: short texts a shopper might type, made from the catalog's own data.

A graph's recall on its own product texts says little about short queries far from every product (at 1M products
the text graph found product texts at ef 128 with recall 0.999 and shopper phrases at 0.965). So the build also
checks each graph on PROBES texts like these:
- the catalog's facet groups (kind, person, colour) in the TRAIN phrasings of mmtui.catalog.phrasings (never the
  HELDOUT ones, which measure), up to PHRASED_SHARE of them;
- 2-4 consecutive words of product titles, for the rest (all of them for a catalog without facets).
Deterministic for a given catalog (seeded), and cheap: one GROUP BY and PROBES title rows, whatever the size.
"""

from __future__ import annotations

import random
import re
from typing import Any

from mmtui.catalog.facets import kind_of, singular, words
from mmtui.catalog.phrasings import train_phrasing

PROBES = 200
PHRASED_SHARE = 0.75  # shoppers type both facet phrases and pieces of names: a quarter at least are title fragments
_WORD = re.compile(r"[^\W_][\w'&-]*")


def probe_texts(store: Any, n: int = PROBES, seed: int = 0) -> list[str]:
    """Up to `n` distinct probe texts for `store`'s products (fewer only for a catalog with fewer distinct ones)."""
    rng = random.Random(f"probes-{seed}")
    out = _facet_phrasings(store, int(n * PHRASED_SHARE), rng)
    seen = set(out)
    for text in _title_fragments(store, n, rng):
        if len(out) >= n:
            break
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _facet_phrasings(store: Any, n: int, rng: random.Random) -> list[str]:
    """One TRAIN phrasing for each of up to `n` (kind, person, colour) groups picked at random."""
    rows = store.db.execute("SELECT article_type, category, gender, colour, count(*) FROM products "
                            "GROUP BY 1, 2, 3, 4").fetchall()
    total = sum(r[4] for r in rows)
    if not total:
        return []
    has_person = sum(r[4] for r in rows if str(r[2] or "").strip()) >= total // 2
    has_colour = sum(r[4] for r in rows if str(r[3] or "").strip()) >= total // 2
    brands = frozenset(" ".join(str(b[0]).lower().split()) for b in store.db.execute(
        "SELECT DISTINCT brand FROM products WHERE brand IS NOT NULL AND trim(brand) != ''"))
    groups: set[tuple[str, str, str]] = set()
    for article_type, category, gender, colour, _ in rows:
        kind, person, colour = kind_of(article_type, category, brands), str(gender or "").strip(), \
            str(colour or "").strip()
        if kind and (person or not has_person) and (colour or not has_colour):
            groups.add((kind.lower(), person.lower() if has_person else "", colour.lower() if has_colour else ""))
    if not groups:
        return []
    kinds = {"".join(singular(w) for w in words(kind)) for kind, _, _ in groups}
    picked = rng.sample(sorted(groups), min(n, len(groups)))
    out: list[str] = []
    for kind, person, colour in picked:
        text = train_phrasing({"kind": kind, "person": person, "colour": colour, "title": ""}, has_person, rng,
                              kinds, has_colour)
        if text and text not in out:
            out.append(text)
    return out


def _title_fragments(store: Any, n: int, rng: random.Random) -> list[str]:
    """2-4 consecutive words (lower case) of the titles of up to `n` products picked at random by rowid."""
    top = store.db.execute("SELECT max(rowid) FROM products").fetchone()[0] or 0
    if not top:
        return []
    wanted = sorted(set(rng.sample(range(1, top + 1), min(top, 3 * n))))
    titles = [r[0] for r in store.db.execute(
        f"SELECT title FROM products WHERE rowid IN ({','.join('?' * len(wanted))})", wanted)]
    rng.shuffle(titles)
    out = []
    for title in titles:
        ws = [w for w in _WORD.findall(str(title or "").lower()) if not any(ch.isdigit() for ch in w)]
        if len(ws) < 2:
            continue
        size = rng.randint(2, min(4, len(ws)))
        start = rng.randint(0, len(ws) - size)
        out.append(" ".join(ws[start:start + size]))
    return out
