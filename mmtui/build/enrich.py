"""Zero-shot attribute enrichment (no extra models): tag each product image against
attribute vocabularies with the active model, and keep the tags as derived text lexical search can see.

Each vocabulary term is encoded once with the model's text tower through a prompt ("a photo of a {term}
product"); each product's cached image vector (no image is encoded again) is compared with every term, and the
top tags per vocabulary are stored with their cosine scores in product_tags(product_rowid, vocab, tag, score,
rank). The best tag of each vocabulary goes into products.tags ("black, solid, leather, casual, casual shoes"),
which products_fts indexes. A product whose stated colour (colour field, else a colour word in its title) is
far from what its image shows (the top colour tag is of another colour family and beats the stated colour by
`margin`) is flagged with a product_tags row of vocab "conflict".
"""

from __future__ import annotations

import json

import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from mmtui.build import vocab as V
from mmtui.store.datadir import writes
from mmtui.encoders.for_index import open_encoder
from mmtui.errors import MmtuiError
from mmtui.index.lexical import refresh_lexical_index
from mmtui.progress import ProgressCallback, ProgressEvent, null_progress
from mmtui.encoders.projection import search_space
from mmtui.store.db import Store
from mmtui.store.tags import CONFLICT, conflicts, product_tags  # noqa: F401 (old names)

TOP = 3  # tags kept per vocabulary and product
MARGIN = 0.2  # how far the picture's top colour must beat the stated one (cosine) to flag a conflict
MIN_ARTICLE_COUNT = 3  # catalog article types with fewer products are left out of the vocabulary


@dataclass
class EnrichReport:
    products: int = 0  # products with an image vector, all tagged
    vocab_sizes: dict[str, int] = field(default_factory=dict)
    conflicts: int = 0
    seconds: float = 0.0
    accuracy: dict[str, dict[str, float]] = field(default_factory=dict)  # vocab -> tag_accuracy()

    def to_json(self) -> dict:
        return asdict(self)


def vocabularies(store: Any) -> dict[str, list[str]]:
    """vocab -> terms (lower case). Article types: the catalog's own (>= MIN_ARTICLE_COUNT products), else the
    curated list; colours: the curated list plus the catalog's own frequent colour values."""
    def frequent(column: str) -> list[str]:
        rows = store.db.execute(
            f"SELECT lower(trim({column})), count(*) FROM products WHERE coalesce({column}, '') NOT IN ('', 'NA') "
            f"GROUP BY 1 HAVING count(*) >= ? ORDER BY 2 DESC", [MIN_ARTICLE_COUNT]).fetchall()
        return [v for v, _ in rows if v and v != "na"]

    articles = frequent("article_type") or list(V.ARTICLE_TYPES)
    colours = list(dict.fromkeys([*V.COLOURS, *(c for c in frequent("colour") if c != "multi")]))
    return {"colour": colours, "pattern": list(V.PATTERNS), "material": list(V.MATERIALS), "style": list(V.STYLES),
            "article_type": articles}


def term_vectors(encoder: Any, projector: Any, vocabs: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Each vocabulary's prompts encoded with the text tower and projected into the search space."""
    out = {}
    for name, terms in vocabs.items():
        prompts = [V.PROMPTS.get(name, "a photo of a {term} product").format(term=t) for t in terms]
        out[name] = projector.text(encoder.encode_texts(prompts))
    return out


def tag_scores(image_vectors: np.ndarray, terms: np.ndarray, top: int = TOP) -> tuple[np.ndarray, np.ndarray]:
    """(indices (n, top), cosines (n, top)) of each image's best terms, best first."""
    scores = np.asarray(image_vectors, np.float32) @ np.asarray(terms, np.float32).T
    top = min(top, scores.shape[1])
    idx = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    return idx, np.take_along_axis(scores, idx, axis=1)


@writes("enrich")
def enrich(settings: Any, store: Any = None, encoder: Any = None, *, top: int = TOP, margin: float = MARGIN,
           progress: ProgressCallback | None = None) -> EnrichReport:
    """Tag every product with an image vector (replacing earlier tags), write products.tags, flag conflicts.

    `encoder`: the base model (loaded from the store's build when None). Returns counts and tag accuracy."""
    progress = progress or null_progress
    started = time.perf_counter()
    own = store is None
    store = store or Store.open(settings.db_path)
    try:
        base = store.get_meta("base_fingerprint")
        if not base:
            raise MmtuiError("this data directory has no built index", "run `mmtui build-index CATALOG`")
        _, projector = search_space(store, settings)
        if encoder is None:
            progress(ProgressEvent("model", 0, None, "loading the model for the vocabulary prompts"))
            encoder = open_encoder(settings, store)
        vocabs = vocabularies(store)
        terms = term_vectors(encoder, projector, vocabs)
        rowids, images = store.vectors(base, "image")
        if not len(rowids):
            raise MmtuiError("no product has an image vector to tag", "build the index from a catalog with images")
        images = projector.image(images)
        progress(ProgressEvent("enrich", 0, len(rowids), "tagging images"))
        tag_rows: list[tuple] = []
        best: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name, vecs in terms.items():
            idx, scores = tag_scores(images, vecs, top)
            best[name] = (idx, scores)
            for i, rowid in enumerate(rowids.tolist()):
                for rank in range(idx.shape[1]):
                    tag_rows.append((rowid, name, vocabs[name][idx[i, rank]], round(float(scores[i, rank]), 4),
                                     rank + 1))
        stated = stated_colours(store, rowids, vocabs["colour"])
        colour_scores = images @ terms["colour"].T
        conflict_rows = find_conflicts(rowids, stated, colour_scores, vocabs["colour"], margin)
        tag_rows += conflict_rows
        tags_text = {int(r): ", ".join(dict.fromkeys(vocabs[name][best[name][0][i, 0]] for name in vocabs))
                     for i, r in enumerate(rowids.tolist())}
        with store.db.conn:
            store.db.execute("DELETE FROM product_tags")
            store.db.conn.executemany(
                "INSERT OR REPLACE INTO product_tags (product_rowid, vocab, tag, score, rank) VALUES (?, ?, ?, ?, ?)",
                tag_rows)
            store.db.execute("UPDATE products SET tags = NULL WHERE tags IS NOT NULL")
            store.db.conn.executemany("UPDATE products SET tags = ? WHERE rowid = ?",
                                      [(t, r) for r, t in tags_text.items()])
        progress(ProgressEvent("enrich", len(rowids), len(rowids), f"{len(conflict_rows)} conflicts"))
        refresh_lexical_index(settings, store.db.conn)  # tags are in the lexical index: rebuild it
        report = EnrichReport(products=len(rowids), vocab_sizes={k: len(v) for k, v in vocabs.items()},
                              conflicts=len(conflict_rows))
        for name, field_name in (("colour", "colour"), ("article_type", "article_type")):
            acc = tag_accuracy(store, name, field_name)
            if acc["n"]:
                report.accuracy[name] = acc
        report.seconds = round(time.perf_counter() - started, 2)
        store.set_meta("enrich", json.dumps(report.to_json()))
        return report
    finally:
        if own:
            store.close()


def stated_colours(store: Any, rowids: np.ndarray, colours: Sequence[str]) -> dict[int, str]:
    """rowid -> the colour the product's text states: its colour field when that is a known colour, else the
    longest known colour phrase in its title."""
    known = set(colours)
    by_length = sorted(colours, key=len, reverse=True)
    patterns = [(c, re.compile(r"\b" + re.escape(c) + r"\b")) for c in by_length]
    out: dict[int, str] = {}
    for row in store.rows(rowids.tolist()):
        colour = (row.get("colour") or "").strip().lower()
        if colour in known:
            out[row["rowid"]] = colour
            continue
        title = (row.get("title") or "").lower()
        for c, pattern in patterns:
            if pattern.search(title):
                out[row["rowid"]] = c
                break
    return out


def find_conflicts(rowids: np.ndarray, stated: dict[int, str], colour_scores: np.ndarray, colours: Sequence[str],
                   margin: float) -> list[tuple]:
    """product_tags rows (rowid, "conflict", "colour: says X, looks Y", margin, 1) for products whose top image
    colour is of another family than the stated one and beats it by more than `margin`."""
    position = {c: i for i, c in enumerate(colours)}
    out = []
    for i, rowid in enumerate(rowids.tolist()):
        says = stated.get(int(rowid))
        if not says or says not in position or says == "multicoloured":
            continue
        j = int(np.argmax(colour_scores[i]))
        looks = colours[j]
        gap = float(colour_scores[i, j] - colour_scores[i, position[says]])
        if gap > margin and not V.same_family(says, looks) and looks != "multicoloured":
            out.append((int(rowid), CONFLICT, f"colour: says {says}, looks {looks}", round(gap, 4), 1))
    return out


def tag_accuracy(store: Any, vocab: str = "colour", field_name: str | None = None) -> dict[str, float]:
    """How often the image's top tag (top 3) is the catalog's own value of `field_name`, over the tagged products
    whose value is in the vocabulary, next to chance: uniform (1/|V|, 3/|V|) and always guessing the most common
    value(s). Colours also get a lenient figure (same colour family)."""
    field_name = field_name or vocab
    if field_name not in ("colour", "article_type"):
        raise MmtuiError(f"cannot measure tags against the field {field_name!r}", "use colour or article_type")
    terms = {t for (t,) in store.db.execute("SELECT DISTINCT tag FROM product_tags WHERE vocab = ?", [vocab])}
    vocab_size = len(vocabularies(store).get(vocab, [])) or len(terms)
    rows = store.db.execute(
        f"SELECT p.rowid, lower(trim(p.{field_name})), t.tag, t.rank FROM products p JOIN product_tags t "
        f"ON t.product_rowid = p.rowid AND t.vocab = ? WHERE t.rank <= 3 ORDER BY p.rowid, t.rank", [vocab]).fetchall()
    truth: dict[int, str] = {}
    tags: dict[int, list[str]] = {}
    vocab_terms = set(vocabularies(store).get(vocab, terms))
    for rowid, value, tag, _ in rows:
        if value in vocab_terms:
            truth[rowid] = value
            tags.setdefault(rowid, []).append(tag)
    n = len(truth)
    out = {"n": n, "vocab_size": vocab_size, "acc@1": 0.0, "acc@3": 0.0,
           "chance@1": round(1 / vocab_size, 4) if vocab_size else 0.0,
           "chance@3": round(min(3, vocab_size) / vocab_size, 4) if vocab_size else 0.0,
           "majority@1": 0.0, "majority@3": 0.0}
    if not n:
        return out
    out["acc@1"] = round(sum(tags[r][0] == v for r, v in truth.items()) / n, 4)
    out["acc@3"] = round(sum(v in tags[r][:3] for r, v in truth.items()) / n, 4)
    common = [v for v, _ in Counter(truth.values()).most_common(3)]
    out["majority@1"] = round(sum(v == common[0] for v in truth.values()) / n, 4)
    out["majority@3"] = round(sum(v in common for v in truth.values()) / n, 4)
    if vocab == "colour":
        out["family@1"] = round(sum(V.same_family(tags[r][0], v) for r, v in truth.items()) / n, 4)
    return out
