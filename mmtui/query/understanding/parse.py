"""What a shopper's words mean in this catalog: the kind of product, the person, the colour, the brand, a price.

"ladies black watches" -> kind Watches, for Women, colour Black. Nothing here is written for one catalog: every
word is matched against the catalog's own facet values (mmtui.catalog.facets) in three ways, and the best wins:
- spelling: the word is the value ("watch" ~ "Watches"; "t-shirt" ~ "Tshirts") or one word of it ("shoes" ~
  "Casual Shoes", which gets credit from every word of it the query has);
- the catalog's own use of the word: how often products whose titles say it have each value ("sneakers" in
  titles of Casual Shoes);
- neighbours in the sentence model's space (mmtui.encoders.words): "ladies" ~ "Women", "joggers" ~ "Track Pants".
A kind word none of these knows well is looked up in general English (mmtui.catalog.thesaurus, WordNet): its
synonyms and broader words are matched the same ways ("pullover" ~ "sweater" -> "Sweaters").
Each word goes to the facet it matches best; a facet's values are weighed softly (several kinds of shoe stay in
play when the words fit several). Price phrases ("under 50", "cheap") become filters and leave the text.

A Lexicon (value vectors, title co-occurrence) is made once per generation of the products table; word vectors are
cached in DATA_DIR/understand so a query costs dictionary look-ups, and a model pass only for a word never seen.
"""

from __future__ import annotations

import json
import re
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from mmtui.catalog.facets import FACETS, FILTER_FIELD, LABELS, Facets, singular, words
from mmtui.catalog.people import OCCASIONS, PERSON_WORDS, RELATION_FILLERS, person_values, profile_of_words

# English function words and shopping fillers: never a facet value on their own.
STOP_WORDS = frozenset("""
a an the for with and or in on of to by from at as my me i im we our you your some any all this that these those
want need looking look show find get buy please new best good nice pair pairs set item items product products
like something one ones size sized is are be
""".split())
# General English price words (not one catalog's): a cheap product is in the lowest third of the catalog's prices.
CHEAP = frozenset("cheap cheaper cheapest budget affordable inexpensive bargain".split())
DEAR = frozenset("expensive premium luxury luxurious pricey".split())
# Money as people write it, in general English: "under rs 1000", "below ₹2,000", "less than 50 euros", "1k",
# "200 bucks", "40 quid". A currency word or mark may stand before or after the number.
CURRENCIES = {
    "INR": "₹ rs rs. inr rupee rupees",
    "EUR": "€ eur euro euros",
    "GBP": "£ gbp pound pounds quid",
    "USD": "$ usd dollar dollars bucks",
    "JPY": "¥ jpy yen",
}
CURRENCY_WORDS = {w: code for code, ws in CURRENCIES.items() for w in ws.split()}
# approximate value of one unit in euros: a price said in another currency than the catalog's is converted roughly
EUR_RATE = {"EUR": 1.0, "USD": 0.9, "GBP": 1.15, "INR": 0.011, "JPY": 0.006}
_CUR = r"(?:₹|€|£|\$|¥|rs\.?(?![a-z])|inr|eur(?:os?)?|gbp|usd|rupees?|pounds?|quid|dollars?|bucks|yen)"
_NUM = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s*(k\b)?"
_AMOUNT = rf"(?:a\s+)?({_CUR})?\s*{_NUM}\s*({_CUR})?"
_PRICE = re.compile(
    rf"\b(?:(under|below|less than|cheaper than|up to|upto|within|max(?:imum)?|at most|no more than|<=?)\s*{_AMOUNT}"
    rf"|(over|above|more than|at least|min(?:imum)?|from|>=?)\s*{_AMOUNT}"
    rf"|between\s*{_AMOUNT}\s*(?:and|-|to)\s*{_AMOUNT})", re.IGNORECASE)
_BARE = re.compile(rf"(?<![\w.])(?:({_CUR})\s*{_NUM}|{_NUM}\s*({_CUR}))(?![\w])", re.IGNORECASE)
# "under a euro", "less than a pound": one unit
_ONE = re.compile(rf"\b(under|below|less than|up to)\s+(?:a|one)\s+({_CUR})\b", re.IGNORECASE)

EXACT, PART = 1.0, 0.75  # a word that is the value; a word that is one word of a longer value
COMPOUND_PART = 0.9  # the sentence model's match to one part of a compound value ("Quilts" of "Blankets, Quilts & ...")
COOC_SCALE, COOC_MIN = 0.9, 3  # the title co-occurrence share, scaled; words in fewer titles than this say nothing
NARROWER_GAP = 0.01  # a kind filed under the named one weighs this much less: exp(-0.01 / temperature 0.05) = 0.82
ABBREVIATION_MIN = 3  # the shortest start of a kind's word that may stand for it in titles ("deo" for "deodorant")
USAGE_FACETS = ("kind", "person")  # what a word's use in titles may place it in; colours and brands are named
USAGE_MIN = 0.75  # ... and only a word the titles tie to one value ("tee": T-shirts), not a brand seen on many kinds
# kind_min: below this naming by meaning, the words' kind must agree with the nearest products' (within AGREE)
DEFAULTS = {"min_score": 0.5, "temperature": 0.05, "keep": 0.1, "max_values": 8, "near": 1.0, "near_min": 0.35,
            "near_floor": 0.35, "kind_min": 0.7}
AGREE = 0.1
NEAR_RANK_K = 5  # the nearest products' rank weights 1 / (NEAR_RANK_K + rank): the first few count most
THESAURUS = 0.8  # a kind named through a thesaurus word weighs less than one the query's own word names
THESAURUS_MIN = 0.5  # thesaurus words weighing less than this (rare senses, far hypernyms) are not tried
# English prepositions: in "water jug for the dining table" the words after one describe the wanted thing (its use,
# place, parts), the words before it name it; the describing words only choose among the kinds the others name
PREPOSITIONS = frozenset("for with without over near in on to from by at into onto inside outside beside behind "
                         "under below above around".split())
MODIFIER = 1.0  # how much a describing word's naming of those kinds weighs (as much as a naming word's)
MODIFIER_WINDOW = 0.3  # ... among the kinds within this much of the best the naming words gave


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
    repairs: list[tuple[str, str]] = field(default_factory=list)  # spelling repairs: (as typed, as the catalog spells)
    spelled: str = ""  # the whole query in the catalog's spelling ("" : as typed)
    related: list[tuple[str, str]] = field(default_factory=list)  # (query word, the thesaurus word that named a kind)
    partial: bool = field(default=False, repr=False, compare=False)  # the nearest products could not be asked

    @property
    def empty(self) -> bool:
        return not self.parts and self.price is None and not self.repairs

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
        if self.repairs:
            out.append("spelling: " + ", ".join(f"{a} -> {b}" for a, b in self.repairs))
        if self.related:
            out.append("meaning: " + ", ".join(f"{a} ~ {b}" for a, b in self.related))
        return " · ".join(out)

    def filter_for(self, facet: str, value: str):
        """The facet filter that pins this part to `value` (what the TUI makes of a part the user changes)."""
        from mmtui.store.filters import Filter

        name, op = self.fields.get(facet) or (FILTER_FIELD[facet], "=")
        return Filter(name, op, value)

    def without(self, facets: Sequence[str]) -> "Understanding":
        """A copy with these parts dropped (the user took them out, or made them filters)."""
        drop = set(facets)
        return Understanding(self.query, self.text if "price" not in drop else (self.spelled or self.query),
                             {f: v for f, v in self.parts.items() if f not in drop},
                             {f: v for f, v in self.words.items() if f not in drop},
                             None if "price" in drop else self.price, "" if "price" in drop else self.price_words,
                             self.fields, self.repairs, self.spelled,
                             [r for r in self.related if "kind" not in drop])

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label(), "text": self.text,
                "parts": {f: {v: round(w, 3) for v, w in vals.items()} for f, vals in self.parts.items()},
                "words": self.words,
                "price": list(self.price) if self.price is not None else None,
                "repairs": [{"said": a, "meant": b} for a, b in self.repairs],
                "related": [{"said": a, "like": b} for a, b in self.related]}


def price_text(price: tuple[float | None, float | None]) -> str:
    low, high = price
    if low is not None and high is not None:
        return f"{low:g}-{high:g}"
    return f"< {high:g}" if high is not None else f"> {low:g}"


def _amount(groups: tuple, catalog: str | None) -> tuple[float, str | None]:
    """(value in the catalog's currency, the currency said) from the groups (before, number, k, after)."""
    before, number, k, after = groups
    value = float(number.replace(",", "")) * (1000 if k else 1)
    said = _currency_code(before or after)
    return _convert(value, said, catalog), said


def _currency_code(mark: str | None) -> str | None:
    if not mark:
        return None
    mark = mark.lower().rstrip(".") if mark.lower() not in CURRENCY_WORDS else mark.lower()
    return CURRENCY_WORDS.get(mark) or CURRENCY_WORDS.get(mark + ".") or CURRENCY_WORDS.get(mark.rstrip("s"))


def _convert(value: float, said: str | None, catalog: str | None) -> float:
    """A price said in one currency in the catalog's: as said when either is unknown or they agree."""
    if said is None or catalog is None or said == catalog or said not in EUR_RATE or catalog not in EUR_RATE:
        return value
    return round(value * EUR_RATE[said] / EUR_RATE[catalog], 2)


def parse_price(text: str, prices: np.ndarray | None = None, currency: str | None = None
                ) -> tuple[str, tuple[float | None, float | None] | None, str]:
    """(text without price phrases, (low, high) or None, the phrase). Amounts may carry a currency ("rs 1000",
    "₹2,000", "50 euros", "1k"); `currency` is the catalog's (None: unknown, every amount is taken as the catalog's
    own). "cheap"/"expensive" need the catalog's prices (the lowest / highest third); without prices they stay in
    the text."""
    price: tuple[float | None, float | None] | None = None
    said = ""
    match = _PRICE.search(text)
    one = _ONE.search(text) if match is None else None
    if match:
        g = match.groups()
        if g[0]:
            price = (None, _amount(g[1:5], currency)[0])
        elif g[5]:
            price = (_amount(g[6:10], currency)[0], None)
        else:
            a, b = sorted((_amount(g[10:14], currency)[0], _amount(g[14:18], currency)[0]))
            price = (a, b)
    elif one:
        price = (None, _convert(1.0, _currency_code(one.group(2)), currency))
        match = one
    else:
        match = _BARE.search(text)  # "deo rs 500", "lamp 30 euros": about that much, taken as an upper bound
        if match:
            g = match.groups()
            value = _amount((g[0], g[1], g[2], None) if g[0] else (None, g[3], g[4], g[5]), currency)[0]
            price = (None, value)
    if match:
        said = match.group(0).strip()
        text = text[:match.start()] + " " + text[match.end():]
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


CACHE_DIR = "understand"  # DATA_DIR/understand: the word vectors of a catalog's words, one file per sentence model
# what reading a damaged .npz raises: truncated (BadZipFile, EOFError), a garbled member (zlib.error, ValueError)
CACHE_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def word_caches(data_dir: Path) -> list[Path]:
    """The word-vector caches of a data dir."""
    return sorted(p for p in (Path(data_dir) / CACHE_DIR).glob("words-*.npz") if not p.name.endswith(".tmp.npz"))


def word_cache_problem(path: Path) -> str | None:
    """Why the word-vector cache at `path` cannot be used (read in full), or None when it can."""
    try:
        with np.load(path, allow_pickle=False) as data:
            n_words, vectors = len(data["words"]), data["vectors"]
    except CACHE_ERRORS as exc:
        return f"unreadable ({type(exc).__name__}: {exc})"
    if vectors.ndim != 2 or len(vectors) != n_words:
        return f"{n_words} words but vectors of shape {vectors.shape}"
    return None


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
        self.compact: dict[str, dict[str, tuple[int, float]]] = {}
        for facet, values in facets.values.items():
            self.value_words[facet] = [tuple(singular(w) for w in words(v)) for v in values]
            self.compact[facet] = {"".join(ws): (i, EXACT) for i, ws in enumerate(self.value_words[facet]) if ws}
        self.title_vocab: set[str] = set()  # every word of every title, as spelled
        self.cooc = self._cooccurrence()
        path = facets.kind_column == "category" and any(">" in v for v in facets.category_values)
        self.fields = {"kind": (facets.kind_column, "~" if path else "=")}
        self.value_vectors: dict[str, np.ndarray] = {}  # one row per name: a value, and each part of a compound
        self.vector_owner: dict[str, np.ndarray] = {}  # the value each row names
        if embed is not None:
            self._load_cache()
            names = {f: [(i, " ".join(words(n))) for i, v in enumerate(vals) for n in _names_of(v)]
                     for f, vals in facets.values.items()}
            vocab = [w for w in self.title_vocab if len(w) > 1 and not any(ch.isdigit() for ch in w)]
            self._ensure([n for f in names for _, n in names[f]] + list(self.cooc) + vocab)
            for f, ns in names.items():
                self.value_vectors[f] = np.stack([self._word_vectors[n] for _, n in ns]) if ns else np.zeros((0, 1))
                self.vector_owner[f] = np.array([i for i, _ in ns], np.int64)
                # a compound's part names less of the value than the whole: a whole value of that name comes first
                whole = np.array([n == " ".join(words(facets.values[f][i])) for i, n in ns], bool)
                self.value_vectors[f] = self.value_vectors[f] * np.where(whole, 1.0, COMPOUND_PART)[:, None]
            self._save_cache()
        self.speller = self._speller()

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
        starts = self._kind_word_starts()
        for w, rowids in title_words.items():
            if w in STOP_WORDS:
                continue
            shortened = None  # a rare word that starts a word of kinds' names ("deo": Deodorants) speaks for those
            if len(rowids) < COOC_MIN:
                shortened = starts.get(w)
                if shortened is None:
                    continue
            per: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for facet, codes in self.facets.codes.items():
                if shortened is not None and facet != "kind":
                    continue
                pool = rowids
                c = codes[np.asarray(pool)]
                c = c[c >= 0]
                if not len(c):
                    continue
                idx, n = np.unique(c, return_counts=True)
                share = n / len(pool)
                keep = (share >= 0.2) & (np.isin(idx, list(shortened)) if shortened is not None else True)
                if keep.any():
                    per[facet] = (idx[keep], share[keep])
            if per:
                out[w] = per
        return out

    def _kind_word_starts(self) -> dict[str, set[int]]:
        """The starts of the words of the kinds' names (at least ABBREVIATION_MIN letters, not whole words of
        them) -> the kinds: where a catalog's titles shorten a kind's word ("David Beckham Deo" among its
        Deodorants), the short word says that kind however few titles use it."""
        whole = {w for ws in self.value_words.get("kind", []) for w in ws}
        out: dict[str, set[int]] = {}
        for i, ws in enumerate(self.value_words.get("kind", [])):
            for word in ws:
                for n in range(ABBREVIATION_MIN, len(word)):
                    if word[:n] not in whole:
                        out.setdefault(word[:n], set()).add(i)
        return out

    def _speller(self):
        from mmtui.query.understanding.spelling import Speller

        english: dict[str, int] = {}
        if self.embed is not None:
            from mmtui.encoders.words import english_ranks

            english = english_ranks()
        values = [x for vals in self.facets.values.values() for v in vals for w in words(v) for x in (w, singular(w))]
        texts = list(self.facets.titles.values()) + list(self.facets.descriptions.values())
        vouch = self._names_a_kind if self.embed is not None else None
        return Speller((words(t) for t in texts), values, english, vouch)

    def _names_a_kind(self, word: str) -> bool:
        """Whether general English has the word as a noun that names one of this catalog's kinds (WordNet, read on
        the first unknown word): no typo, though the sentence model lacks it ("pantyhose" ~ tights, "cooker" ~
        cookware; not "pendent", a variant of the catalog's "pendant")."""
        from rapidfuzz.distance import OSA

        from mmtui.catalog.thesaurus import thesaurus

        found = thesaurus()
        if found is None or not found.knows(word):
            return False
        if any(OSA.distance(word, w) <= 1 and self.knows(w) for w in found.related(word)):
            return False  # a variant spelling of a word the catalog uses ("pendent" ~ "pendant"): repaired to it
        return self.related_kind(singular(word), word) is not None

    def means_something(self, word: str) -> bool:
        """Whether a word names a value of this catalog by meaning (the sentence model's neighbours)."""
        naming, _ = self.word_scores(singular(word), word)
        return _best_facet(naming, self.params["min_score"]) is not None

    def kind_word(self, word: str) -> bool:
        """Whether the word (singular) is a word of one of the catalog's kind names ("bag": "Duffel Bag")."""
        return any(word in ws for ws in self.value_words.get("kind", []))

    def noun(self, word: str) -> bool:
        """Whether general English has the word as a noun (WordNet; without it: any word)."""
        from mmtui.catalog.thesaurus import thesaurus

        found = thesaurus()
        return found is None or found.knows(word)

    def knows(self, word: str) -> bool:
        """Whether the catalog has its own use for a word: a word of a value or of a title."""
        return (word in self.cooc or word in self.title_vocab
                or any(word in ws for vals in self.value_words.values() for ws in vals))

    def related_kind(self, word: str, typed: str) -> tuple[np.ndarray, str] | None:
        """(how well the word's thesaurus words name each kind, the best of those words), or None when none names
        a kind by at least min_score. Each thesaurus word is matched as a query word is (spelling, then the
        sentence model), weighed by its sense order (mmtui.catalog.thesaurus) and THESAURUS."""
        if "kind" not in self.value_words:
            return None
        from mmtui.catalog.thesaurus import thesaurus

        found = thesaurus()
        related = found.related(word) or found.related(typed) if found is not None else {}
        related = {w: x for w, x in related.items() if x >= THESAURUS_MIN and not any(ch.isdigit() for ch in w)}
        if not related:
            return None
        if self.embed is not None:
            with self._lock:
                self._ensure(list(related))
        best, best_word = np.zeros(len(self.value_words["kind"]), np.float32), ""
        for name, weight in related.items():
            tokens = [singular(w) for w in words(name)]
            compact = self.compact["kind"].get("".join(tokens))
            if compact is not None:
                s = np.zeros_like(best)
                s[compact[0]] = EXACT
            else:
                s = self.word_scores(tokens[-1] if len(tokens) == 1 else name, name)[0]["kind"]
            if float(s.max()) < self.params["min_score"]:
                continue
            s = THESAURUS * weight * s
            if float(s.max()) > float(best.max()):
                best_word = name
            best = np.maximum(best, s)
        if float(best.max()) < self.params["min_score"]:
            return None
        return best, best_word

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
        except CACHE_ERRORS:  # a damaged cache: its words are encoded again and the file rewritten
            self._word_vectors = {}
            self._dirty = True

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

    def word_scores(self, word: str, spelled: str | None = None, vectors: bool = True
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(naming, usage): facet -> how well the word names each value (spelling, or the sentence model's
        neighbours of the word as typed, `spelled`), and how much more often than by chance products whose titles
        say the word have each value (0..1). A word belongs to the facet it names best; usage only weighs values
        within it, or places a word that names nothing ("tee" in the titles of T-shirts)."""
        naming: dict[str, np.ndarray] = {}
        usage: dict[str, np.ndarray] = {}
        vecs = [self.vector(w) for w in {word, spelled or word}] if len(word) > 1 and vectors else []
        vecs = [v for v in vecs if v is not None]
        for facet, vals in self.value_words.items():
            s = np.zeros(len(vals), np.float32)
            for i, ws in enumerate(vals):
                if word in ws:
                    s[i] = EXACT if len(ws) == 1 else PART
            if vecs and facet in self.value_vectors and facet != "brand" and facet not in self.facets.derived:
                for vec in vecs:
                    np.maximum.at(s, self.vector_owner[facet], self.value_vectors[facet] @ vec)
            naming[facet] = s
            u = np.zeros(len(vals), np.float32)
            seen = self.cooc.get(word, {}).get(facet)
            if seen is not None:
                counts = self.facets.counts[facet]
                base = counts[seen[0]] / max(1, counts.sum())
                u[seen[0]] = COOC_SCALE * np.clip((seen[1] - base) / np.maximum(1 - base, 1e-6), 0, 1)
            usage[facet] = u
        return naming, usage


def _names_of(value: str) -> list[str]:
    """A value and, when it is compound ("Blankets, Quilts & Dohars"), each of its parts."""
    parts = [p.strip() for p in re.split(r",|&|\band\b|/|\+", value) if p.strip()]
    return [value] + (parts if len(parts) > 1 else [])


class Understander:
    """Parses queries against one catalog's Lexicon. `near(text)`: the rowids of the products nearest to the
    words in the search space (text and image vectors), best first, or None when they cannot be had now; the
    kinds of those products are evidence for the kind when the catalog's words are unsure ("pullover");
    `near_among(text, rowids)`: the same among some products only (None: not now), which tells the kinds a word
    before a kind's word chooses among ("school" among bags: Backpacks)."""

    def __init__(self, lexicon: Lexicon, near: Callable[[str], Sequence[int] | None] | None = None,
                 near_among: Callable[[str, np.ndarray], Sequence[int] | None] | None = None) -> None:
        self.lexicon = lexicon
        self.near = near
        self.near_among = near_among
        self._memo: dict[str, Understanding] = {}

    def __call__(self, query: str) -> Understanding:
        hit = self._memo.get(query)
        if hit is None:
            hit = self.parse(query)
            if hit.partial:
                return hit  # made without the nearest products (the model is loading): made again next time
            if len(self._memo) > 4096:
                self._memo.clear()
            self._memo[query] = hit
        return hit

    def parse(self, query: str) -> Understanding:
        lex = self.lexicon
        text, price, said = parse_price(query, lex.facets.prices, lex.facets.currency)
        raw, repairs = lex.speller.repair(words(text), lex.means_something, _never_repaired)
        joined = lex.speller.one_word_forms(raw)
        if repairs or joined != raw:  # the searches (BM25 and vectors) see the catalog's spelling
            text = " ".join(joined)
        tokens = [singular(w) for w in raw]
        totals: dict[str, np.ndarray] = {}
        said_by: dict[str, list[str]] = {}
        used = [w in OCCASIONS or w in RELATION_FILLERS for w in raw]  # why and for whom, never what
        person_at = self._person(raw, text, totals, said_by, used)
        zone = _describing(raw, used)
        held: list[tuple[int, np.ndarray]] = []  # (word, its kind naming) of the words that describe the thing
        exact_kind = self._joined(tokens, raw, totals, said_by, used, zone)
        for i in person_at:  # "childrens chair": a person word that is a word of a kind's name says that kind too
            in_kind = lex.word_scores(tokens[i], None, vectors=False)[0].get("kind")
            if in_kind is not None and float(in_kind.max()) > 0:
                totals["kind"] = totals.get("kind", np.zeros(len(in_kind), np.float32)) + in_kind
                said_by.setdefault("kind", []).append(raw[i])
        related: list[tuple[str, str]] = []
        exact, kind_words = self._words(tokens, raw, totals, said_by, used, related, zone, held)
        before = [(at, m) for at, m in held if not zone[at]]  # right before the kind word ("school bag")
        exact, kind_words, among = self._described(tokens, raw, totals, said_by, used, related, zone, held, exact,
                                                   kind_words)
        # the nearest products of a word the model does not know are no better than its vector ("jumper": Skirts)
        exact_kind |= exact or bool(related)
        partial = not exact_kind and bool(kind_words) and not self._retrieved_kind(kind_words, totals, said_by, among)
        if before and "kind" in totals:  # after the evidence bar: they only choose ("party wear": no kind)
            among = self._choose_among(totals, [m for _, m in before])
            partial |= not self._modifier_products(totals, [(raw[at], m) for at, m in before], among)
        _take_in_narrower(totals, lex.facets.narrower)
        return Understanding(query=query, text=text or query, parts=self._weighted(totals), words=said_by,
                             price=price, price_words=said, fields=lex.fields,
                             repairs=[(_as_typed(r.said, query), r.meant) for r in repairs],
                             spelled=spelled_query(query, repairs), related=related,
                             partial=partial)

    def _words(self, tokens: list[str], raw: list[str], totals: dict, said_by: dict, used: list[bool],
               related: list[tuple[str, str]], zone: list[bool] | None = None,
               held: list[tuple[int, np.ndarray]] | None = None) -> tuple[bool, list[str]]:
        """Each word not yet used goes to the facet it names best (spelling, then meaning; a kind word neither
        knows well, by its thesaurus words: added to `related`), else to the kind or person its titles lean to;
        (whether a kind was spelled exactly, the words that may say the kind). A word in `zone` (after a
        preposition) that names a kind, and a word naming no kind right before one that does ("school bag"), only
        describe the thing: their kind naming goes to `held`."""
        lex, p = self.lexicon, self.lexicon.params
        exact_kind, kind_words = False, []
        facets: dict[int, str | None] = {}
        for i, tok in enumerate(tokens):
            if used[i] or tok in STOP_WORDS or tok.isdigit() or len(tok) < 2:
                continue
            naming, usage = lex.word_scores(tok, raw[i])
            facet = facets[i] = _best_facet(naming, p["min_score"])
            if zone is not None and held is not None and zone[i] and facet in (None, "kind"):
                held.append((i, naming["kind"]))
                continue
            weak = facet is None or (facet == "kind" and float(naming["kind"].max()) < p["kind_min"])
            found = lex.related_kind(tok, raw[i]) if weak and not lex.knows(tok) else None
            if found is not None and float(found[0].max()) > float(naming["kind"].max()):
                # general English names a kind better than the model did: the catalog's words did not know it
                chosen = {"kind": np.maximum(naming["kind"], found[0]) if facet == "kind" else found[0]}
                related.append((raw[i], found[1]))
                facet = "kind"
            elif facet is not None:
                spelled = lex.spelled(tok, facet)
                exact_kind |= facet == "kind" and spelled is not None
                # a word that is a value ("women") means that value (or a longer one it is part of), not its
                # neighbours ("men" is near it)
                chosen = {facet: spelled if spelled is not None else np.maximum(naming[facet], usage[facet])}
            else:  # a word that names nothing: the kind or person its titles lean to, at half weight ("gents" -> Men)
                chosen = {f: 0.5 * u for f, u in usage.items()
                          if f in USAGE_FACETS and len(u) and float(u.max()) >= USAGE_MIN}
            if facet in (None, "kind"):
                kind_words.append(raw[i])
            for facet, s in chosen.items():
                best = float(s.max())
                s = np.where(s >= best - 0.3, s, 0.0)
                totals.setdefault(facet, np.zeros(len(s), np.float32))
                totals[facet] += s
                said_by.setdefault(facet, []).append(raw[i])
        # "school bag": a noun naming no kind describes the word of a kind's name after it ("cheap" does not)
        if held is not None:
            for i, facet in facets.items():
                if facet in (None, "person") and facets.get(i + 1) == "kind" and lex.noun(raw[i]) \
                        and lex.kind_word(tokens[i + 1]) and not any(i == at for at, _ in held):
                    held.append((i, lex.word_scores(tokens[i], raw[i])[0]["kind"]))
        return exact_kind, kind_words

    def _described(self, tokens: list[str], raw: list[str], totals: dict, said_by: dict, used: list[bool],
                   related: list, zone: list[bool], held: list[tuple[int, np.ndarray]], exact: bool,
                   kind_words: list[str]) -> tuple[bool, list[str], np.ndarray | None]:
        """The words after a preposition (`held` in `zone`) choose among the kinds the others name ("bag for my
        laptop"), or name the kind when nothing else does, or does as well (titles: "... by Christian Audigier for
        Women Perfume"); (whether a kind was spelled exactly, the words to ask the nearest products, the kinds
        those may speak for or None)."""
        after = [(at, m) for at, m in held if zone[at]]
        among = None
        named = float(totals["kind"].max()) if "kind" in totals else 0.0
        if after and "kind" in totals and all(float(m.max()) <= named for _, m in after):
            among = self._choose_among(totals, [m for _, m in after])
            # the products nearest to all the words ("bagpack college") say which of those kinds, and only that
            kind_words = [raw[i] for i in sorted({at for at, _ in after} | {raw.index(w) for w in kind_words})]
        elif after:
            again = [used[i] or i not in {at for at, _ in after} for i in range(len(raw))]
            exact |= self._joined(tokens, raw, totals, said_by, again)
            more, more_words = self._words(tokens, raw, totals, said_by, again, related)
            exact, kind_words = exact or more, kind_words + more_words
        before = [at for at, _ in held if not zone[at]]
        if before:  # the products nearest to the whole name ("school bag", not "bag") are asked
            kind_words = [raw[i] for i in sorted(set(before) | {raw.index(w) for w in kind_words})]
        return exact, kind_words, among

    def _choose_among(self, totals: dict, held: list[np.ndarray]) -> np.ndarray:
        """The describing words weigh only the kinds the naming words gave (those within MODIFIER_WINDOW of the
        best): "laptop" makes a bag a Laptop Bag, "dining table" makes no jug a table. Those kinds (a mask)."""
        s = totals["kind"]
        among = (s > 0) & (s >= float(s.max()) - MODIFIER_WINDOW)
        for m in held:
            totals["kind"] = totals["kind"] + MODIFIER * np.where(among, m, 0.0).astype(np.float32)
        return among

    def _modifier_products(self, totals: dict, modifiers: list[tuple[str, np.ndarray]], among: np.ndarray) -> bool:
        """The products nearest to a word before a kind's word ("school" in "school bag"), among those of the kinds
        the words name (`among`), say which of those kinds it makes, when they point to the kind the word itself
        means best among them by at least AGREE: their kinds' rank-weighted shares are added (MODIFIER x
        p["near"]). The sentence model rates "school" near Backpacks only a little above Handbags (0.41 vs
        0.29); the catalog's backpacks are the products nearest to it. `modifiers`: (word, its kind naming).
        False when the nearest products could not be had now."""
        lex, p = self.lexicon, self.lexicon.params
        if self.near_among is None or p["near"] <= 0 or int(among.sum()) < 2:
            return True
        codes = lex.facets.codes["kind"]
        pool = np.flatnonzero(np.isin(codes, np.flatnonzero(among))).astype(np.int64)
        for word, naming in modifiers:
            meant = np.sort(naming[among])[::-1]
            if meant[0] - meant[1] < AGREE:
                continue  # the word means none of these kinds clearly ("office" among shoes): nothing to confirm
            rowids = self.near_among(word, pool)
            if rowids is None:
                return False
            share = _kind_shares(codes, rowids, len(among))
            if share is None or int(np.argmax(np.where(among, share, -1.0))) != int(np.argmax(
                    np.where(among, naming, -np.inf))):
                continue  # the products point elsewhere: no choice rather than a guess
            totals["kind"] = totals["kind"] + (MODIFIER * p["near"] * np.where(among, share, 0.0)).astype(np.float32)
        return True

    def _weighted(self, totals: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        """Each facet's totals as weights in (0, 1], softly: values close to the best keep a share."""
        p = self.lexicon.params
        parts: dict[str, dict[str, float]] = {}
        for facet, s in totals.items():
            top = float(s.max())
            if top <= 0:
                continue
            weights = np.exp((s - top) / p["temperature"])
            order = [j for j in np.argsort(-weights, kind="stable") if weights[j] >= p["keep"]][:p["max_values"]]
            parts[facet] = {self.lexicon.facets.values[facet][j]: float(weights[j]) for j in order}
        return parts

    def _person(self, raw: list[str], text: str, totals: dict, said_by: dict, used: list[bool]) -> list[int]:
        """Relatives, pronouns and ages ("my dad", "her", "a 10 year old boy") -> the catalog's person values that
        mean that person (mmtui.catalog.people): an adult man is "Men", never "Boys". Those words name no kind."""
        profile, at = profile_of_words(raw, text)
        if profile is None:
            return []
        values = self.lexicon.facets.values.get("person")
        wanted = person_values(profile, values) if values else {}
        if values and not wanted:
            return []  # person values that name no one in English ("M", "F"): the words are matched as any other
        for i in at:
            used[i] = True
        if wanted:
            index = self.lexicon.facets.value_index("person")
            s = np.zeros(len(values), np.float32)
            for v, w in wanted.items():
                s[index[v.lower()]] = w
            totals["person"] = s
            said_by["person"] = [raw[i] for i in at]
        return at

    def _joined(self, tokens: list[str], raw: list[str], totals: dict, said_by: dict, used: list[bool],
                skip: list[bool] | None = None) -> bool:
        """Values spelled over several words or as one ("t shirt", "tshirt" -> "Tshirts"); whether a kind was.
        Words in `skip` (describing ones: "jug for the dining table") are read one by one."""
        lex = self.lexicon
        kind = False
        for size in (3, 2):
            for i in range(len(tokens) - size + 1):
                if any(used[i:i + size]) or (skip is not None and skip[i]):
                    continue
                joined = "".join(tokens[i:i + size])
                for facet, compact in lex.compact.items():
                    found = compact.get(joined)
                    if found is not None:
                        j, weight = found
                        totals.setdefault(facet, np.zeros(len(lex.value_words[facet]), np.float32))[j] += weight
                        said_by.setdefault(facet, []).append(" ".join(raw[i:i + size]))
                        kind |= facet == "kind" and weight == EXACT
                        for t in range(i, i + size):
                            used[t] = True
                        break
        return kind

    def _retrieved_kind(self, kind_words: list[str], totals: dict, said_by: dict,
                        among: np.ndarray | None = None) -> bool:
        """The kinds of the products nearest to the words that say what is wanted ("pullover"), by their share
        of the nearest (rank-weighted): evidence added to the words' own (weight p["near"]), only to the kinds
        `among` when given (describing words were asked too); alone, it names a kind only when one holds at least
        p["near_min"] of them. False when the nearest products could not be had now (the model is still loading)."""
        lex, p = self.lexicon, self.lexicon.params
        if self.near is None or p["near"] <= 0 or "kind" not in lex.facets.codes:
            return True
        rowids = self.near(" ".join(kind_words))
        if rowids is None:
            return False
        if not len(rowids):
            return True
        share = _kind_shares(lex.facets.codes["kind"], rowids, len(lex.facets.values["kind"]))
        if share is None:
            return True
        if among is not None:
            share = np.where(among, share, 0.0)
        current = totals.get("kind")
        if current is None:
            # alone, the neighbours name a kind only when the words mean something like it: a catalog of fruit
            # has nearest products for "watches" too
            meaning = np.max([lex.word_scores(singular(w), w)[0]["kind"] for w in kind_words], axis=0)
            share = np.where(meaning >= p["near_floor"], share, 0.0)
            if float(share.max()) < p["near_min"]:
                return True
            totals["kind"] = (p["near"] * share).astype(np.float32)
        elif float(current.max()) < p["kind_min"] and current[int(np.argmax(share))] < current.max() - AGREE:
            # words that only weakly mean a kind, and neighbours of another kind: no kind rather than a guess
            del totals["kind"]
            said_by.pop("kind", None)
            return True
        else:
            totals["kind"] = current + (p["near"] * share).astype(np.float32)
        said_by["kind"] = list(dict.fromkeys(said_by.get("kind", []) + kind_words))
        return True


def _kind_shares(codes: np.ndarray, rowids: Sequence[int], n_kinds: int) -> np.ndarray | None:
    """Each kind's rank-weighted share (1 / (NEAR_RANK_K + rank)) of these products (best first), by kind
    index; None when none has a kind."""
    rowids = np.asarray(rowids, np.int64)
    rowids = rowids[(rowids >= 0) & (rowids < len(codes))]
    found = codes[rowids]
    weights = 1.0 / (NEAR_RANK_K + np.arange(len(found)))
    ok = found >= 0
    if not ok.any():
        return None
    return np.bincount(found[ok], weights[ok], minlength=n_kinds) / weights[ok].sum()


def _take_in_narrower(totals: dict, narrower: dict[int, tuple[int, ...]]) -> None:
    """A kind the words name takes in the kinds the catalog files under it, nearly as much as it is named:
    "watches" are Wrist Watches too where the category paths put them under Watches
    (mmtui.catalog.facets.narrower_kinds); the named kind stays first (NARROWER_GAP)."""
    s = totals.get("kind")
    if s is None or not narrower:
        return
    s = s.copy()
    for _ in range(len(narrower)):  # a kind filed under one filed under another takes in both
        before = s.copy()
        for parent, children in narrower.items():
            s[list(children)] = np.maximum(s[list(children)], s[parent] - NARROWER_GAP)
        if np.array_equal(before, s):
            break
    totals["kind"] = s


def _describing(raw: list[str], used: list[bool]) -> list[bool]:
    """Which words come after a preposition that follows a word naming the thing ("jug" in "water jug for the
    dining table"; not "something" in "something to hang clothes on"): they describe it."""
    zone = [False] * len(raw)
    named = False
    for i, w in enumerate(raw):
        if w in PREPOSITIONS and named:
            return [False] * (i + 1) + [True] * (len(raw) - i - 1)
        named |= not used[i] and w not in STOP_WORDS and w not in PREPOSITIONS and w.isalpha() and len(w) > 1
    return zone


def _never_repaired(word: str) -> bool:
    """Words the speller leaves alone: English function words, people, occasions and money words."""
    return word in STOP_WORDS or word in PERSON_WORDS or word in OCCASIONS or word in RELATION_FILLERS \
        or word in CURRENCY_WORDS


def _as_typed(said: str, query: str) -> str:
    """The repaired words as the query wrote them ("t-shirt", not "t shirt")."""
    found = re.search(r"(?<![a-z0-9])" + r"[\s\-'.]*".join(map(re.escape, said.split())) + r"(?![a-z0-9])",
                      query.lower())
    return found.group(0) if found else said


def spelled_query(query: str, repairs: list) -> str:
    """The whole query in the catalog's spelling (what the searches see when the price part is dropped); ""
    when nothing was repaired."""
    if not repairs:
        return ""
    text = " ".join(words(query))
    for r in repairs:
        text = re.sub(rf"\b{re.escape(r.said)}\b", r.meant, text)
    return text


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
