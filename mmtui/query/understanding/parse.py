"""What a shopper's words mean in this catalog: the kind of product, the person, the colour, the brand, a price.

"ladies black watches" -> kind Watches, for Women, colour Black. Nothing here is written for one catalog: every
word is matched against the catalog's own facet values (mmtui.catalog.facets) in three ways, and the best wins:
- spelling: the word is the value ("watch" ~ "Watches"; "t-shirt" ~ "Tshirts") or one word of it ("shoes" ~
  "Casual Shoes", which gets credit from every word of it the query has);
- the catalog's own use of the word: how often products whose titles say it have each value ("sneakers" in
  titles of Casual Shoes);
- neighbours in the sentence model's space (mmtui.encoders.words): "ladies" ~ "Women", "joggers" ~ "Track Pants".
Each word goes to the facet it matches best; a facet's values are weighed softly (several kinds of shoe stay in
play when the words fit several). Price phrases ("under 50", "cheap") become filters and leave the text.

A Lexicon (value vectors, title co-occurrence) is made once per generation of the products table; word vectors are
cached in DATA_DIR/understand so a query costs dictionary look-ups, and a model pass only for a word never seen.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mmtui.catalog.facets import FACETS, FILTER_FIELD, LABELS, Facets, singular, words

# English function words and shopping fillers: never a facet value on their own.
STOP_WORDS = frozenset("""
a an the for with and or in on of to by from at as my me i im we our you your some any all this that these those
want need looking look show find get buy please new best good nice pair pairs set item items product products
like something one ones size sized is are be
""".split())
# General English price words (not one catalog's): a cheap product is in the lowest third of the catalog's prices.
CHEAP = frozenset("cheap cheaper cheapest budget affordable inexpensive bargain".split())
DEAR = frozenset("expensive premium luxury luxurious pricey".split())
_PRICE = re.compile(
    r"\b(?:(under|below|less than|cheaper than|up to|max(?:imum)?|at most|<=?)\s*[$£€]?\s*(\d+(?:\.\d+)?)"
    r"|(over|above|more than|at least|min(?:imum)?|from|>=?)\s*[$£€]?\s*(\d+(?:\.\d+)?)"
    r"|between\s*[$£€]?\s*(\d+(?:\.\d+)?)\s*(?:and|-|to)\s*[$£€]?\s*(\d+(?:\.\d+)?))"
    r"\s*(?:dollars|euros|pounds|usd|eur|gbp|\$|€|£)?", re.IGNORECASE)

EXACT, PART = 1.0, 0.75  # a word that is the value; a word that is one word of a longer value
COOC_SCALE, COOC_MIN = 0.9, 3  # the title co-occurrence share, scaled; words in fewer titles than this say nothing
USAGE_FACETS = ("kind", "person")  # what a word's use in titles may place it in; colours and brands are named
USAGE_MIN = 0.75  # ... and only a word the titles tie to one value ("tee": T-shirts), not a brand seen on many kinds
DEFAULTS = {"min_score": 0.5, "temperature": 0.05, "keep": 0.1, "max_values": 8}


@dataclass
class Understanding:
    """What a query was understood to ask for. parts[facet] = {value: weight in (0, 1]}, best first."""
    query: str
    text: str  # the query without its price phrases: what the searches see
    parts: dict[str, dict[str, float]] = field(default_factory=dict)
    words: dict[str, list[str]] = field(default_factory=dict)  # facet -> the query words that said it
    price: tuple[float | None, float | None] | None = None  # (low, high), either may be None
    price_words: str = ""
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)  # facet -> (--where field, operator)

    @property
    def empty(self) -> bool:
        return not self.parts and self.price is None

    def best(self, facet: str) -> str | None:
        values = self.parts.get(facet)
        return next(iter(values)) if values else None

    def label(self) -> str:
        """'kind: Watches · for: Women · colour: Black' (the values weighing at least half of the best, up to 3)."""
        out = []
        for facet in FACETS:
            values = self.parts.get(facet)
            if values:
                shown = [v for v, w in values.items() if w >= 0.5][:3]
                out.append(f"{LABELS[facet]}: {' / '.join(shown)}")
        if self.price is not None:
            out.append(f"price: {price_text(self.price)}")
        return " · ".join(out)

    def filter_for(self, facet: str, value: str):
        """The facet filter that pins this part to `value` (what the TUI makes of a part the user changes)."""
        from mmtui.store.filters import Filter

        name, op = self.fields.get(facet) or (FILTER_FIELD[facet], "=")
        return Filter(name, op, value)

    def without(self, facets: Sequence[str]) -> "Understanding":
        """A copy with these parts dropped (the user took them out, or made them filters)."""
        drop = set(facets)
        return Understanding(self.query, self.text if "price" not in drop else self.query,
                             {f: v for f, v in self.parts.items() if f not in drop},
                             {f: v for f, v in self.words.items() if f not in drop},
                             None if "price" in drop else self.price, "" if "price" in drop else self.price_words,
                             self.fields)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label(), "text": self.text,
                "parts": {f: {v: round(w, 3) for v, w in vals.items()} for f, vals in self.parts.items()},
                "words": self.words,
                "price": list(self.price) if self.price is not None else None}


def price_text(price: tuple[float | None, float | None]) -> str:
    low, high = price
    if low is not None and high is not None:
        return f"{low:g}-{high:g}"
    return f"< {high:g}" if high is not None else f"> {low:g}"


def parse_price(text: str, prices: np.ndarray | None = None) -> tuple[str, tuple[float | None, float | None] | None, str]:
    """(text without price phrases, (low, high) or None, the phrase). "cheap"/"expensive" need the catalog's prices
    (the lowest / highest third); without prices they stay in the text."""
    match = _PRICE.search(text)
    price: tuple[float | None, float | None] | None = None
    said = ""
    if match:
        if match.group(2):
            price = (None, float(match.group(2)))
        elif match.group(4):
            price = (float(match.group(4)), None)
        else:
            a, b = sorted((float(match.group(5)), float(match.group(6))))
            price = (a, b)
        said = match.group(0).strip()
        text = (text[:match.start()] + " " + text[match.end():])
    known = prices[~np.isnan(prices)] if prices is not None else np.zeros(0)
    if price is None and len(known) >= 10:
        for w in re.findall(r"[A-Za-z]+", text):
            lw = w.lower()
            if lw in CHEAP or lw in DEAR:
                third = float(np.quantile(known, 1 / 3 if lw in CHEAP else 2 / 3))
                price = (None, round(third, 2)) if lw in CHEAP else (round(third, 2), None)
                said = w
                text = re.sub(rf"\b{re.escape(w)}\b", " ", text, count=1)
                break
    return " ".join(text.split()), price, said


class Lexicon:
    """The catalog's facet values, their vectors and the title co-occurrence of words with them."""

    def __init__(self, facets: Facets, embed: Callable[[Sequence[str]], np.ndarray] | None,
                 cache_dir: Path | None = None, params: dict | None = None) -> None:
        self.facets = facets
        self.embed = embed
        self.cache_dir = cache_dir
        self.params = {**DEFAULTS, **(params or {})}
        self._lock = threading.Lock()
        self._word_vectors: dict[str, np.ndarray] = {}
        self._dirty = False
        self.value_words: dict[str, list[tuple[str, ...]]] = {}
        self.compact: dict[str, dict[str, int]] = {}
        for facet, values in facets.values.items():
            self.value_words[facet] = [tuple(singular(w) for w in words(v)) for v in values]
            self.compact[facet] = {"".join(ws): i for i, ws in enumerate(self.value_words[facet]) if ws}
        self.title_vocab: set[str] = set()  # every word of every title, as spelled
        self.cooc = self._cooccurrence()
        path = facets.kind_column == "category" and any(">" in v for v in facets.category_values)
        self.fields = {"kind": (facets.kind_column, "~" if path else "=")}
        self.value_vectors: dict[str, np.ndarray] = {}
        if embed is not None:
            self._load_cache()
            names = {f: [" ".join(words(v)) for v in vals] for f, vals in facets.values.items()}
            vocab = [w for w in self.title_vocab if len(w) > 1 and not any(ch.isdigit() for ch in w)]
            self._ensure([n for f in names for n in names[f]] + list(self.cooc) + vocab)
            for f, ns in names.items():
                self.value_vectors[f] = np.stack([self._word_vectors[n] for n in ns]) if ns else np.zeros((0, 1))
            self._save_cache()

    # -- title co-occurrence ---------------------------------------------------------------------------------------
    def _cooccurrence(self) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """word -> facet -> (value indexes, share of the titles saying the word that have the value)."""
        title_words: dict[str, list[int]] = {}
        for rowid, title in self.facets.titles.items():
            said = words(title)
            self.title_vocab.update(said)
            for w in set(singular(x) for x in said if not x.isdigit()):
                title_words.setdefault(w, []).append(rowid)
        out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        for w, rowids in title_words.items():
            if len(rowids) < COOC_MIN or w in STOP_WORDS:
                continue
            per: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for facet, codes in self.facets.codes.items():
                pool = rowids
                c = codes[np.asarray(pool)]
                c = c[c >= 0]
                if not len(c):
                    continue
                idx, n = np.unique(c, return_counts=True)
                share = n / len(pool)
                keep = share >= 0.2
                if keep.any():
                    per[facet] = (idx[keep], share[keep])
            if per:
                out[w] = per
        return out

    # -- word vectors ----------------------------------------------------------------------------------------------
    def _cache_file(self) -> Path | None:
        if self.cache_dir is None or self.embed is None:
            return None
        from mmtui.encoders.words import NAME

        return self.cache_dir / f"words-{getattr(self.embed, 'name', NAME)}.npz"

    def _load_cache(self) -> None:
        path = self._cache_file()
        if path is None or not path.is_file():
            return
        try:
            with np.load(path, allow_pickle=False) as data:
                self._word_vectors = dict(zip(data["words"].tolist(), data["vectors"]))
        except (OSError, ValueError, KeyError):
            self._word_vectors = {}

    def _save_cache(self) -> None:
        path = self._cache_file()
        if path is None or not self._dirty:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            names = sorted(self._word_vectors)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, words=np.array(names), vectors=np.stack([self._word_vectors[n] for n in names]))
            tmp.replace(path)
            self._dirty = False
        except OSError:
            pass  # a read-only data directory: vectors are made again next time

    def _ensure(self, phrases: Sequence[str]) -> None:
        missing = sorted({p for p in phrases if p not in self._word_vectors})
        if missing and self.embed is not None:
            vectors = np.asarray(self.embed(missing), np.float32)
            self._word_vectors.update(zip(missing, vectors))
            self._dirty = True

    def vector(self, word: str) -> np.ndarray | None:
        """The word's vector: cached (every word of the catalog's titles is, from the first use on), or made now
        for a word the titles never use ("ladies"); none for a word with a digit (a size, a code)."""
        if self.embed is None or any(ch.isdigit() for ch in word):
            return None
        cached = self._word_vectors.get(word)
        if cached is not None:
            return cached
        with self._lock:
            if word not in self._word_vectors:
                self._ensure([word])
            return self._word_vectors.get(word)

    # -- matching --------------------------------------------------------------------------------------------------
    def spelled(self, word: str, facet: str) -> np.ndarray | None:
        """When the word spells a value exactly ("watch" -> "Watches"): 1 there, PART for the longer values it is a
        word of ("cabinet" -> "Shoe cabinet"), 0 elsewhere; None if it spells no value exactly."""
        vals = self.value_words[facet]
        if not any(ws == (word,) for ws in vals):
            return None
        return np.array([EXACT if ws == (word,) else PART if word in ws else 0.0 for ws in vals], np.float32)

    def word_scores(self, word: str, spelled: str | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(naming, usage): facet -> how well the word names each value (spelling, or the sentence model's
        neighbours of the word as typed, `spelled`), and how much more often than by chance products whose titles
        say the word have each value (0..1). A word belongs to the facet it names best; usage only weighs values
        within it, or places a word that names nothing ("tee" in the titles of T-shirts)."""
        naming: dict[str, np.ndarray] = {}
        usage: dict[str, np.ndarray] = {}
        vecs = [self.vector(w) for w in {word, spelled or word}] if len(word) > 1 else []
        vecs = [v for v in vecs if v is not None]
        for facet, vals in self.value_words.items():
            s = np.zeros(len(vals), np.float32)
            for i, ws in enumerate(vals):
                if word in ws:
                    s[i] = EXACT if len(ws) == 1 else PART
            if vecs and facet in self.value_vectors and facet != "brand":
                for vec in vecs:
                    s = np.maximum(s, self.value_vectors[facet] @ vec)
            naming[facet] = s
            u = np.zeros(len(vals), np.float32)
            seen = self.cooc.get(word, {}).get(facet)
            if seen is not None:
                counts = self.facets.counts[facet]
                base = counts[seen[0]] / max(1, counts.sum())
                u[seen[0]] = COOC_SCALE * np.clip((seen[1] - base) / np.maximum(1 - base, 1e-6), 0, 1)
            usage[facet] = u
        return naming, usage


class Understander:
    """Parses queries against one catalog's Lexicon."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self._memo: dict[str, Understanding] = {}

    def __call__(self, query: str) -> Understanding:
        hit = self._memo.get(query)
        if hit is None:
            hit = self.parse(query)
            if len(self._memo) > 4096:
                self._memo.clear()
            self._memo[query] = hit
        return hit

    def parse(self, query: str) -> Understanding:
        lex = self.lexicon
        p = lex.params
        text, price, said = parse_price(query, lex.facets.prices)
        raw = words(text)
        tokens = [singular(w) for w in raw]
        totals: dict[str, np.ndarray] = {}
        said_by: dict[str, list[str]] = {}
        used = [False] * len(tokens)
        # joined spellings first: "t-shirt" / "t shirt" -> "tshirt" (a value spelled as one word)
        for size in (3, 2):
            for i in range(len(tokens) - size + 1):
                if any(used[i:i + size]):
                    continue
                joined = "".join(tokens[i:i + size])
                for facet, compact in lex.compact.items():
                    j = compact.get(joined)
                    if j is not None:
                        totals.setdefault(facet, np.zeros(len(lex.value_words[facet]), np.float32))[j] += EXACT
                        said_by.setdefault(facet, []).append(" ".join(raw[i:i + size]))
                        for t in range(i, i + size):
                            used[t] = True
                        break
        for i, tok in enumerate(tokens):
            if used[i] or tok in STOP_WORDS or tok.isdigit() or len(tok) < 2:
                continue
            naming, usage = lex.word_scores(tok, raw[i])
            facet = _best_facet(naming, p["min_score"])
            if facet is not None:
                spelled = lex.spelled(tok, facet)
                # a word that is a value ("women") means that value (or a longer one it is part of), not its
                # neighbours ("men" is near it)
                chosen = {facet: spelled if spelled is not None else np.maximum(naming[facet], usage[facet])}
            else:  # a word that names nothing: the kind or person its titles lean to, at half weight ("gents" -> Men)
                chosen = {f: 0.5 * u for f, u in usage.items()
                          if f in USAGE_FACETS and len(u) and float(u.max()) >= USAGE_MIN}
            for facet, s in chosen.items():
                best = float(s.max())
                s = np.where(s >= best - 0.3, s, 0.0)
                totals.setdefault(facet, np.zeros(len(s), np.float32))
                totals[facet] += s
                said_by.setdefault(facet, []).append(raw[i])
        parts: dict[str, dict[str, float]] = {}
        for facet, s in totals.items():
            top = float(s.max())
            if top <= 0:
                continue
            weights = np.exp((s - top) / p["temperature"])
            order = [j for j in np.argsort(-weights, kind="stable") if weights[j] >= p["keep"]][:p["max_values"]]
            parts[facet] = {lex.facets.values[facet][j]: float(weights[j]) for j in order}
        return Understanding(query=query, text=text or query, parts=parts, words=said_by, price=price,
                             price_words=said, fields=lex.fields)


def _best_facet(scores: dict[str, np.ndarray], floor: float) -> str | None:
    best_facet, best = None, floor - 1e-6
    for facet, s in scores.items():
        top = float(s.max()) if len(s) else 0.0
        if top > best + 1e-6:
            best_facet, best = facet, top
    return best_facet


def lexicon_for(store: Any, facets: Facets, cache_dir: Path | None, params: dict | None = None,
                embed: Callable | None = None) -> Lexicon:
    """The Lexicon with MiniLM word vectors when the package is there (else, or with embed=False, spelling and
    co-occurrence only)."""
    if embed is False:
        return Lexicon(facets, None, cache_dir, params)
    if embed is None:
        try:
            from mmtui.encoders.words import phrase_vectors, NAME

            embed = phrase_vectors
            embed.name = NAME  # type: ignore[attr-defined]
        except ImportError:
            embed = None
    try:
        return Lexicon(facets, embed, cache_dir, params)
    except Exception as exc:  # noqa: BLE001 - the sentence model missing or broken: words still match by spelling
        from mmtui.errors import ModelError

        if embed is not None and isinstance(exc, (ModelError, OSError, ImportError)):
            return Lexicon(facets, None, cache_dir, params)
        raise


def learned_params(store: Any) -> dict:
    """The ranking weights and parse settings learned by `mmtui train understanding` (meta "understanding")."""
    raw = store.get_meta("understanding")
    if not raw:
        return {}
    try:
        info = json.loads(raw)
        return dict(info.get("params", {}))
    except (ValueError, TypeError, AttributeError):
        return {}
