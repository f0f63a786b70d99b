"""Searching a compound query (mmtui.query.compound): how each signal combines the parts.

- vector signals (image, text, fused): each part has a vector in each index (words: the query vector; a picture:
  its image vector; like:ID: the product's own vector in that index). The candidates are the nearest products of
  every positive part and of their weighted sum; each candidate's cosine to each part is standardised over the
  candidates (a z-score, so a picture's and a phrase's cosines weigh alike) and

      score(p) = sum over positives  w * z(p)  -  sum over negatives  w * max(0, z(p))

  i.e. the positives' vectors added with their weights, and a negative's subtracted where a product is nearer to
  it than the candidates are on average (products unlike the negative gain nothing from it).
- lexical (BM25): each positive part's words (a product: its title) searched, the lists fused by weighted RRF; a
  product whose title or description says every word of a negative is moved below those that do not.
- understanding: the positive words together are understood as any query (kind, person, colour, brand, price); a
  product part lends its kind when the words name none ("like:123 in red" stays that product's kind); a negative
  whose words spell a facet value ("- red", "not for men") moves products of that value down.
- "cheaper" / "more expensive" next to a product: a price filter below / above that product's price.
The example products themselves (like:ID, positive or negative) are not listed again.

CompoundSearch is mixed into SearchService (mmtui.query.service): it uses the service's indexes, filters and rows.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from mmtui.errors import MmtuiError, QueryError
from mmtui.index.backends.base import VECTOR_INDEXES, vector_hits
from mmtui.query.compound import IMAGE, LIKE, TEXT, Compound, Part, parse_compound
from mmtui.query.results import MODES, SearchResult, _check_k

POOL = 100  # more candidates than asked for, per part, so that subtracting a negative has products to promote
NEGATIVE_FIT = 0.5  # a negative's facet values weighing at least this share of its best one are moved down


@dataclasses.dataclass
class Resolved:
    """A compound query's parts with what searching them needs: each part's vector (words, pictures) and the rows of
    the example products, whose own vectors are read per index when an index is searched (`vectors`)."""
    compound: Compound
    base: list[tuple[Part, np.ndarray | None]]  # words' and pictures' vectors (None for like:ID parts)
    like_rows: dict[str, dict]  # product id -> its row (rowid, title, price, ...)
    words: str  # the positive words together ("" when there are none)
    indexes: Any = None
    _per_index: dict = dataclasses.field(default_factory=dict)

    def vectors(self, name: str) -> list[tuple[np.ndarray, float, bool]]:
        """[(vector, weight, negative)] of every part in index `name`."""
        found = self._per_index.get(name)
        if found is None:
            found = self._per_index[name] = [
                (vector if part.kind != LIKE else
                 _product_vector(self.indexes, name, self.like_rows[part.value]["rowid"], part.value),
                 part.weight, part.negative) for part, vector in self.base]
        return found


class CompoundSearch:
    """The compound-query half of SearchService."""

    def search_compound(self, query: str, *, k: int = 20, mode: str = "hybrid", filters=None, understand: bool = True,
                        drop=(), weights=None, within=None):
        """Search a query in the compound syntax (mmtui.query.compound): an ordinary query (one text part) is
        SearchService.search's, a lone like:ID more_like_this's, a lone picture search_image's; anything more
        is combined here. The result's `parts` are the parsed parts. `within`: product ids to rank (a
        recommendation over the results on screen); none other is returned."""
        started = time.perf_counter()
        text = " ".join((query or "").split())
        if not text:
            raise QueryError("the query is empty", 'type some words, e.g. mmtui search "black running shoes"')
        _check_k(k)
        compound = parse_compound(text, self.negation_support if understand else (lambda words, said: False))
        notes = [f"{said!r} was searched as words: this catalog's products do not say {_content(said)!r}"
                 for said in compound.kept]
        result = self._simple_compound(compound, k, mode, filters, understand, drop, weights) if within is None \
            else None
        if result is None:
            result = self._search_parts(compound, k, mode, filters, understand, drop, weights, within)
        result.parts = compound
        result.notes = notes + list(result.notes)
        result.took_ms = (time.perf_counter() - started) * 1000
        return result

    def _simple_compound(self, compound: Compound, k, mode, filters, understand, drop, weights):
        """The result of a query with one positive part and nothing else, by the ordinary searches; else None."""
        if not compound.positives:
            raise QueryError("the query only says what to leave out",
                             'add something to look for, e.g. "summer dress - floral"')
        if compound.simple:
            return self.search(compound.parts[0].value, k=k, mode=mode, filters=filters, understand=understand,
                               drop=drop, weights=weights)
        if len(compound.parts) != 1 or compound.relative_price is not None:
            return None
        part = compound.parts[0]
        if part.kind == LIKE:
            return self.more_like_this(part.value, k=k, filters=filters)
        if part.kind == IMAGE:
            return self.search_image(part.value, k=k, mode=mode if mode != "lexical" else "image", filters=filters)
        return None

    # -- plain-word negations --------------------------------------------------------------------------------------
    def negation_support(self, phrase: str, said: str) -> bool:
        """Whether the catalog can subtract `phrase` (said as `said`, e.g. "without laces"): one of its words is in
        the products' titles or descriptions, and the whole saying is not a name the catalog uses ("no show")."""
        from mmtui.catalog.facets import singular, words

        vocabulary, text = self._catalog_words()
        said_words = words(said)
        if len(said_words) >= 2 and f" {' '.join(said_words[:2])} " in text:
            return False
        return any(singular(w) in vocabulary for w in _content_words(phrase))

    def _catalog_words(self) -> tuple[frozenset[str], str]:
        """(every word of the products' titles and descriptions, singular; the same words as one text with each
        product between spaces), made once per generation of the products."""
        from mmtui.catalog.facets import singular, words

        facets = self.understanding.state().facets
        cached = getattr(self, "_catalog_words_cache", None)
        if cached is None or cached[0] is not facets:
            texts = [" ".join(words(t)) for t in list(facets.titles.values()) + list(facets.descriptions.values())]
            vocabulary = frozenset(singular(w) for t in texts for w in t.split())
            cached = (facets, vocabulary, " | " + " | ".join(texts) + " | ")
            self._catalog_words_cache = cached
        return cached[1], cached[2]

    # -- the parts' vectors ----------------------------------------------------------------------------------------
    def _like_rows(self, compound: Compound) -> dict[str, dict]:
        """The example products' rows, by id."""
        like_rows: dict[str, dict] = {}
        for part in compound.parts:
            if part.kind == LIKE and part.value not in like_rows:
                rowid = self.store.rowid_of([part.value]).get(str(part.value))
                if rowid is None:
                    raise QueryError(f"no product with id {part.value!r} (like:{part.value})",
                                     "use the id of a product in the results")
                like_rows[part.value] = self.store.rows([rowid])[0]
        return like_rows

    def _resolve(self, compound: Compound, like_rows: dict[str, dict], indexes, encode: bool,
                 understood=None) -> Resolved:
        """The words' and pictures' vectors (when `encode`: a vector index is searched), without the price phrase
        the understanding made a filter of."""
        said = understood.price_words if understood is not None and understood.price is not None else ""
        base: list[tuple[Part, np.ndarray | None]] = []
        for part in compound.parts:
            vector = None
            if encode and part.kind == TEXT:
                text = " ".join(part.value.replace(said, " ").split()) if said and not part.negative else part.value
                vector = self.query_vector(text or part.value)
            elif encode and part.kind == IMAGE:
                vector = self._picture_vector(part.value)
            base.append((part, vector))
        return Resolved(compound, base, like_rows, _words(compound), indexes)

    def _picture_vector(self, path: str) -> np.ndarray:
        from pathlib import Path

        from mmtui.catalog.images import load_image

        try:
            picture = load_image(Path(path).expanduser(), getattr(self.encoder, "image_size", None))
        except MmtuiError as exc:
            raise QueryError(f"cannot use {path} as a query image: {exc.message}",
                             exc.hint or "give the path of a JPEG, PNG or WEBP file") from None
        except OSError as exc:
            raise QueryError(f"cannot read the query image {path}: {exc}",
                             "give the path of a readable JPEG, PNG or WEBP file") from None
        return self.projector.image(self.encoder.encode_images([picture]))[0]

    # -- searching ------------------------------------------------------------------------------------------------
    def _search_parts(self, compound: Compound, k, mode, filters, understand, drop, weights, within=None):
        self._check_mode(mode, MODES)
        indexes = self._check_index(mode)
        if mode == "hybrid":
            weights = self._compound_weights(weights, indexes)
        signals = list(weights) if mode == "hybrid" else [mode]
        names = [s for s in signals if s in VECTOR_INDEXES]
        like_rows = self._like_rows(compound)
        if mode == "lexical" and not _words(compound) and not like_rows:
            raise QueryError("a lexical search needs words, and this query's parts are pictures",
                             "search it in another mode, e.g. --mode hybrid")
        notes: list[str] = []
        understood = self._compound_understood(compound, like_rows, understand, mode, drop)
        resolved = self._resolve(compound, like_rows, indexes, mode != "lexical", understood)
        filters = list(filters or []) + self._compound_price(resolved, understood, notes)
        allowed, where, params = self._filtered(filters)
        pool = None
        if within is not None:
            allowed, pool = self._within(within, allowed, filters)
        examples = {row["rowid"] for row in like_rows.values()}
        n = max(k, POOL) + len(examples)

        def fetch(m: int) -> dict[str, list[tuple[int, float]]]:
            ranked = {name: combined_hits(indexes[name], resolved.vectors(name), m, allowed) for name in names}
            if "lexical" in signals:
                ranked["lexical"] = self._compound_lexical(resolved, m, where, params, allowed)
            return {name: [(r, s) for r, s in hits if r not in examples and (pool is None or r in pool)]
                    for name, hits in ranked.items()}

        ranked = self._live(fetch, n)
        merged = self._compound_merge(resolved, understood, ranked, mode, weights, n, allowed, indexes)
        merged, moved = self._demote(merged, compound)
        notes += _negative_notes(compound, moved)
        return SearchResult(mode=mode, hits=self._hit_rows(merged[:k]), query=compound.text, kind="compound",
                            understood=understood, notes=notes)

    def _within(self, ids, allowed, filters):
        """(the rowids to search among: `ids`' within `allowed`, in the backend's form; the same as a set)."""
        rowids = np.array(sorted(self.store.rowid_of([str(i) for i in ids]).values()), np.int64)
        if allowed is not None:
            rowids = np.intersect1d(rowids, np.asarray(allowed, np.int64))
        return self.backend.allowed(rowids, filters or []), set(int(r) for r in rowids)

    def _compound_weights(self, weights, indexes) -> dict[str, float]:
        if weights is not None:
            weights = {s: float(w) for s, w in weights.items() if w > 0 and (s == "lexical" or s in indexes)}
        return weights or self.hybrid_weights(indexes)

    def _compound_understood(self, compound: Compound, like_rows: dict[str, dict], understand: bool, mode: str,
                             drop):
        """The positive words understood (lexical mode: once the understanding is made), with the kind of the first
        example product when the words name none; None when there is nothing to understand."""
        if not understand or (mode == "lexical" and not self.understanding.made):
            return None
        words = _words(compound)
        understood = self.understand(words, drop) if words else None
        first = next((p for p in compound.positives if p.kind == LIKE), None)
        if first is None or "kind" in drop:
            return understood
        kind = self._facet_value("kind", like_rows[first.value]["rowid"])
        if kind is None or (understood is not None and understood.parts.get("kind")):
            return understood
        if understood is None:
            from mmtui.query.understanding.parse import Understanding

            understood = Understanding(query="", text="")
        return dataclasses.replace(understood, parts={"kind": {kind: 1.0}, **understood.parts},
                                   words={**understood.words, "kind": [f"like:{first.value}"]})

    def _facet_value(self, facet: str, rowid: int) -> str | None:
        facets = self.understanding.state().facets
        codes = facets.codes.get(facet)
        if codes is None or rowid >= len(codes) or codes[rowid] < 0:
            return None
        return facets.values[facet][int(codes[rowid])]

    def _compound_price(self, resolved: Resolved, understood, notes: list[str]) -> list:
        """The price filters: the understood words' ("under 50"), and "cheaper" / "more expensive" than the first
        example product."""
        from mmtui.query.understanding.rank import price_filters
        from mmtui.store.filters import Filter

        out = price_filters(understood.price) if understood is not None and understood.price is not None else []
        relative = resolved.compound.relative_price
        if relative is None:
            return out
        first = next(p for p in resolved.compound.positives if p.kind == LIKE)
        price = resolved.like_rows[first.value].get("price")
        said = resolved.compound.price_words
        if not self._has_prices():
            notes.append(f"this catalog has no prices: {said!r} was left out")
        elif price is None:
            notes.append(f"product {first.value} has no price: {said!r} was left out")
        else:
            out.append(Filter("price", "<" if relative == "below" else ">", float(price)))
            notes.append(f"{said}: price {'<' if relative == 'below' else '>'} {price:g} (product {first.value})")
        return out

    def _compound_lexical(self, resolved: Resolved, n: int, where: str, params, allowed) -> list[tuple[int, float]]:
        """BM25 of each positive part's words (an example product: its title), fused by weighted RRF."""
        from mmtui.query.hybrid import fuse_ranked

        queries = [(p.value if p.kind == TEXT else resolved.like_rows[p.value]["title"] or "", p.weight)
                   for p in resolved.compound.positives if p.kind in (TEXT, LIKE)]
        lists = {str(i): self.lexical_hits(q, n, where, params, allowed) for i, (q, _) in enumerate(queries) if q}
        if len(lists) <= 1:
            return next(iter(lists.values()), [])
        fused = fuse_ranked(lists, n, {str(i): w for i, (_, w) in enumerate(queries)})
        return [(rowid, score) for rowid, score, *_ in fused]

    def _compound_merge(self, resolved: Resolved, understood, ranked, mode, weights, n, allowed, indexes) -> list:
        """The signals' lists as one ranking [(rowid, score, signals, shares)], as SearchService.search ranks them."""
        from mmtui.query.hybrid import RRF_K, fuse_ranked

        if mode != "hybrid":
            (name, hits), = ranked.items()
            return [(r, s, {name: round(float(s), 4)}, {name: 1.0}) for r, s in hits[:n]]
        if understood is None or not (understood.parts.get("kind") or understood.parts.get("person")):
            return fuse_ranked(ranked, n, weights)
        from mmtui.query.understanding.state import understood_hits

        self.backend.prepare(["fused"])
        name = "fused" if "fused" in indexes else "text"
        parts = resolved.vectors(name)
        examples = {row["rowid"] for row in resolved.like_rows.values()}

        def kind_search(pool, m=100):
            return [(r, s) for r, s in combined_hits(indexes[name], parts, m + len(examples), pool)
                    if r not in examples][:m]

        return understood_hits(self.understanding, resolved.words, understood, ranked, weights, n, allowed, RRF_K,
                               kind_search)

    def _demote(self, merged: list, compound: Compound) -> tuple[list, dict[Part, int]]:
        """Products that say every word of a negative, or have a facet value a negative spells, moved below the
        others (order kept within each group); (ranking, negative part -> how many it moved)."""
        facets = self.understanding.state().facets if compound.negatives else None
        tests = [(part, *self._negative_tests(part, facets)) for part in compound.negatives if part.kind == TEXT]
        if not tests:
            return merged, {}
        kept, moved, counts = [], [], {}
        for item in merged:
            rowid = item[0]
            hit = [part for part, needed, values in tests if _says(facets, rowid, needed) or
                   _has_value(facets, rowid, values)]
            for part in hit:
                counts[part] = counts.get(part, 0) + 1
            (moved if hit else kept).append(item)
        return kept + moved, counts

    def _negative_tests(self, part: Part, facets) -> tuple[set[str], dict[str, set[int]]]:
        """(the negative's content words, singular; facet -> the value indexes its words spell)."""
        from mmtui.catalog.facets import singular, words

        needed = {singular(w) for w in _content_words(part.value)}
        values: dict[str, set[int]] = {}
        understood = self.understand(part.value) if needed else None
        for facet, weighted in (understood.parts.items() if understood is not None else ()):
            best = max(weighted.values(), default=0.0)
            index = facets.value_index(facet)
            for value, w in weighted.items():
                spelled = {singular(x) for x in words(value)}
                named = facet == "person" and understood.words.get("person")
                if w >= NEGATIVE_FIT * best and (spelled <= needed or needed <= spelled or named):
                    values.setdefault(facet, set()).add(index[value.lower()])
        return needed, values


# -- helpers ---------------------------------------------------------------------------------------------------------
def combined_hits(index, parts: list[tuple[np.ndarray, float, bool]], n: int, allowed=None) -> list[tuple[int, float]]:
    """The n best products of one vector index for parts [(vector, weight, negative)] (the module doc's score)."""
    positives = [(v, w) for v, w, neg in parts if not neg and v is not None]
    negatives = [(v, w) for v, w, neg in parts if neg and v is not None]
    if not positives:
        return []
    lists = [_index_hits(index, v, n + POOL, allowed) for v, _ in positives]
    if len(positives) > 1:
        total = sum(w * v for v, w in positives)
        lists.append(_index_hits(index, total / max(float(np.linalg.norm(total)), 1e-12), n + POOL, allowed))
    pool = np.array(list(dict.fromkeys(r for hits in lists for r, _ in hits)), np.int64)
    if not len(pool):
        return []
    score = np.zeros(len(pool))
    for v, w in positives:
        score += w * _standard(_cosines(index, pool, v, lists))
    for v, w in negatives:
        score -= w * np.maximum(_standard(_cosines(index, pool, v, lists)), 0.0)
    order = np.argsort(-score, kind="stable")[:n]
    return [(int(pool[i]), round(float(score[i]), 6)) for i in order]


def _index_hits(index, vector, n: int, allowed) -> list[tuple[int, float]]:
    return vector_hits({"x": index}, "x", vector, n, allowed)


def _cosines(index, pool: np.ndarray, vector: np.ndarray, lists) -> np.ndarray:
    """Each pool product's cosine to `vector`: from the index's vectors when it holds them in memory (local files),
    else the scores its lists gave, the lowest seen for a product a list did not reach (a Qdrant collection)."""
    if hasattr(index, "positions") and hasattr(index, "vectors"):
        at = index.positions(pool)
        out = np.full(len(pool), -1.0)
        ok = at >= 0
        out[ok] = np.asarray(index.vectors[at[ok]], np.float32) @ np.asarray(vector, np.float32)
        return out
    seen = {r: s for r, s in _index_hits(index, vector, len(pool) + POOL, pool)}
    low = min(seen.values(), default=-1.0)
    return np.array([seen.get(int(r), low) for r in pool])


def _standard(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() + 1e-6)


def _product_vector(indexes, name: str, rowid: int, product_id: str) -> np.ndarray:
    """A product's vector in index `name`; a product with no picture lends its text vector to the image index."""
    for source in (name, "text", "fused", "image"):
        if source in indexes:
            vector = indexes[source].vector_of(rowid)
            if vector is not None:
                return vector
    raise QueryError(f"product {product_id} has no vector yet", "run `mmtui build-index CATALOG`")


def _content_words(text: str) -> list[str]:
    from mmtui.catalog.facets import words
    from mmtui.query.compound import CUES, LEADING
    from mmtui.query.understanding.parse import STOP_WORDS

    return [w for w in words(text) if w not in STOP_WORDS and w not in LEADING and w not in CUES]


def _words(compound: Compound) -> str:
    """The positive words of a query, together."""
    return " ".join(p.value for p in compound.positives if p.kind == TEXT)


def _content(said: str) -> str:
    return " ".join(_content_words(said)) or said


def _says(facets, rowid: int, needed: set[str]) -> bool:
    """Whether a product's title or description has every one of these (singular) words."""
    if not needed:
        return False
    from mmtui.catalog.facets import singular, words

    text = facets.titles.get(rowid, "") + " " + facets.descriptions.get(rowid, "")
    return needed <= {singular(w) for w in words(text)}


def _has_value(facets, rowid: int, values: dict[str, set[int]]) -> bool:
    for facet, wanted in values.items():
        codes = facets.codes[facet]
        if rowid < len(codes) and int(codes[rowid]) in wanted:
            return True
    return False


def _negative_notes(compound: Compound, moved: dict[Part, int]) -> list[str]:
    out = []
    for part in compound.negatives:
        what = part.said or f"- {part.value}"
        how = "ranked below the products less like it"
        if moved.get(part):
            how += f"; {moved[part]} candidate{'s' if moved[part] != 1 else ''} that say it or have it moved down"
        out.append(f"{what}: {how}")
    return out
