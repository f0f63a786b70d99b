"""Queries generated from a catalog's own fields in the store, for evaluation and for learning weights.

- `split_queries`: the title protocol, each product of a split -> its title as the query, itself as relevant.
- `attribute_queries`: "black casual shoes for men", one per (article type, colour, gender) in the pool; its
  relevant products are those of the pool (one split, or the whole catalog) with exactly that article type,
  colour and gender. They test what titles-as-queries cannot: whether a search finds products by what they are
  and look like, not by their own words. Relevance comes from the fields of the store the queries are generated
  from, so queries made on the full catalog can judge an index of a copy whose text lost its colours (the ids
  are the same).
- `EvalQuery`: one query (text or image) and its graded relevant ids, as read from an eval file.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from mmtui.errors import EvalFileError


@dataclass(frozen=True)
class EvalQuery:
    relevant: dict[str, int]  # id (string) -> grade
    text: str | None = None
    image: Path | None = None  # resolved path
    line: int | None = None  # 1-based line in the queries file; None for generated queries
    like: str | None = None  # "more like this" product id
    region: str | None = None  # image queries: only this part of the picture, "x,y,w,h" (mmtui.catalog.regions)

    @property
    def kind(self) -> str:
        return "image" if self.image is not None else "like" if self.like is not None else "text"

    @property
    def label(self) -> str:
        if self.image is not None:
            return f"{self.image}@{self.region}" if self.region else str(self.image)
        return f"like:{self.like}" if self.like is not None else (self.text or "")


# -- the title protocol: each product's title finds its own picture -------------------------------------------------

def split_queries(store: Any, split: str = "test") -> list[EvalQuery]:
    """The title protocol: each product of `split` with a usable image gives one query, its title, whose one
    relevant item is the product itself (run in mode "image": title vs image vectors)."""
    sql = ("SELECT id, title FROM products WHERE split = ? AND image_status = 'ok' AND image_path IS NOT NULL "
           "AND trim(coalesce(title, '')) != '' ORDER BY rowid")
    queries = [EvalQuery(relevant={str(pid): 1}, text=str(title).strip())
               for pid, title in store.db.execute(sql, [split]).fetchall()]
    if not queries:
        raise EvalFileError(f"no product with an image in the {split!r} split",
                            "build the index from a catalog with images (mmtui build-index CATALOG)")
    return queries


# -- attribute queries ----------------------------------------------------------------------------------------------

GENDER_WORDS = {"men": "for men", "women": "for women", "boys": "for boys", "girls": "for girls"}


def attribute_query_text(colour: str, article_type: str, gender: str) -> str:
    """'Black', 'Casual Shoes', 'Men' -> 'black casual shoes for men' ('unisex black backpacks' for Unisex)."""
    colour, article, gender = colour.strip().lower(), article_type.strip().lower(), gender.strip().lower()
    if gender in GENDER_WORDS:
        return f"{colour} {article} {GENDER_WORDS[gender]}"
    return f"{gender} {colour} {article}".strip()


def article_of(article_type: str | None, category: str | None) -> str:
    """The article type, else the last step of the category path ("Apparel > Shirts" -> "Shirts")."""
    if article_type and article_type.strip():
        return article_type.strip()
    return (category or "").split(">")[-1].strip()


def attribute_queries(store: Any, split: str | None = "test", *, min_relevant: int = 1, max_relevant: int | None = None,
                      limit: int | None = None, seed: int = 0) -> list[EvalQuery]:
    """One query per (article type, colour, gender) present in the pool, relevant = the pool's products with all
    three. `split` None: the whole catalog is the pool. Groups outside [min_relevant, max_relevant] are left out;
    `limit` keeps a random (seeded) sample of that many queries. Ordered by query text."""
    sql = ("SELECT id, article_type, category, colour, gender FROM products WHERE "
           "(coalesce(article_type, '') != '' OR coalesce(category, '') != '') "
           "AND coalesce(colour, '') != '' AND coalesce(gender, '') != ''")
    params: list = []
    if split is not None:
        sql += " AND split = ?"
        params.append(split)
    groups: dict[tuple[str, str, str], list[str]] = {}
    for pid, article, category, colour, gender in store.db.execute(sql, params).fetchall():
        article = article_of(article, category)
        key = (article.lower(), str(colour).strip().lower(), str(gender).strip().lower())
        groups.setdefault(key, []).append(str(pid))
    out = []
    for (article, colour, gender), ids in sorted(groups.items()):
        if len(ids) < min_relevant or (max_relevant is not None and len(ids) > max_relevant):
            continue
        out.append(EvalQuery(relevant={pid: 1 for pid in sorted(ids)},
                             text=attribute_query_text(colour, article, gender)))
    if limit is not None and len(out) > limit:
        out = sorted(random.Random(seed).sample(out, limit), key=lambda q: q.text or "")
    return out


def category_queries(store: Any, split: str | None = "test", *, min_relevant: int = 2) -> list[EvalQuery]:
    """One query per kind of product in the pool, named as the catalog names it ("rug, flatwoven", "apple",
    "casual shoes": the article type, else the last step of the category), relevant = the pool's products of that
    kind; kinds with fewer than `min_relevant` products there are left out. What a shopper types more often than
    a title, and what pictures must answer when words are sparse."""
    sql = ("SELECT id, article_type, category FROM products WHERE "
           "(coalesce(article_type, '') != '' OR coalesce(category, '') != '')")
    params: list = []
    if split is not None:
        sql += " AND split = ?"
        params.append(split)
    groups: dict[str, list[str]] = {}
    for pid, article, category in store.db.execute(sql, params).fetchall():
        kind = article_of(article, category).lower()
        if kind:
            groups.setdefault(kind, []).append(str(pid))
    return [EvalQuery(relevant={pid: 1 for pid in sorted(ids)}, text=kind)
            for kind, ids in sorted(groups.items()) if len(ids) >= min_relevant]


def write_queries(queries: Sequence[EvalQuery], path: Path) -> Path:
    """Write queries as the eval contract's JSONL ({"query": ..., "relevant": {...}}) so `mmtui eval` can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for q in queries:
            f.write(json.dumps({"query": q.text, "relevant": q.relevant}, ensure_ascii=False) + "\n")
    return path
