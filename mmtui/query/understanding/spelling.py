"""Spelling-tolerant reading of a shopper's words against the catalog's own vocabulary.

The vocabulary is the catalog's: the words of its titles, descriptions, facet values and brands, with how many
products use each,
and the pairs of title words that are written together ("Wrist Watch", "T-shirt" -> "t shirt"). Three repairs, all
from that vocabulary (no list of product words):
- spacing: a query word or pair is written the way the titles write it most often ("tshirt" -> "t shirt" where
  titles say "T-shirt", "back pack" -> "backpack", "sun glasses" -> "sunglasses");
- typos: a word neither the catalog nor general English knows is the word one or two edits away (optimal string
  alignment distance, rapidfuzz): a catalog word first, else a general-English word (the sentence model's
  WordPiece vocabulary) that means something in this catalog (`means_something`: "sneekers" -> "sneakers" where the
  titles say "Casual Shoes"); fewest edits (a changed first letter counts one more), then the spelling more titles use, then
  the commoner English word. A run-together word is two words, one of them a letter off ("wristwach" -> "wrist
  watch");
- a word general English knows but the catalog does not ("jens") is repaired only one edit away to a catalog word
  that many titles use or that general English uses far more often ("jeans"), and only when the word itself means
  nothing in this catalog (`means_something`) and English uses it far less than that word ("boss" is no "boys").
A word the catalog uses is never changed, nor is a word `dictionary` vouches for (the query understanding's: a
general-English noun that names one of the catalog's kinds, "pantyhose" is no "pants hose", "cooker" no "cooper")
though the sentence model's vocabulary lacks it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

MIN_TITLES = 2  # a spelling the titles use fewer times than this is no target
KNOWN_ENGLISH_MIN_TITLES = 20  # a real English word is repaired only to a word at least this many titles use
MIN_LENGTH = 4  # shorter words are not repaired ("tee", "bag", "cap" are too close to each other)
COMMONER = 3  # ... or to a word general English uses at least this many ranks-times more often (rank < own / 3)
SPLIT_MIN = 4  # the shortest part of a run-together word ("gane sha" is no split of "ganesha")
# English letter names (general English): "tee shirt" is "t shirt", "vee neck" is "v neck", "ex ray" is "x ray"
LETTER_NAMES = {"bee": "b", "cee": "c", "dee": "d", "gee": "g", "aitch": "h", "jay": "j", "kay": "k", "el": "l",
                "em": "m", "en": "n", "ess": "s", "tee": "t", "vee": "v", "ex": "x", "wye": "y", "zee": "z",
                "zed": "z"}


def max_edits(word: str) -> int:
    """How many edits a word of this length may carry: one up to 7 letters, two from 8 on."""
    return 0 if len(word) < MIN_LENGTH else 1 if len(word) < 8 else 2


@dataclass(frozen=True)
class Repair:
    said: str  # the words as typed ("sneekers", "back pack")
    meant: str  # the catalog's spelling ("sneakers", "backpack")


class Speller:
    """The catalog's vocabulary and the repairs it allows (see the module docstring)."""

    def __init__(self, titles: Iterable[list[str]], other_words: Iterable[str] = (),
                 english: Mapping[str, int] | None = None, dictionary: Callable[[str], bool] | None = None) -> None:
        """`english`: general English's words -> rank (0 = commonest), e.g. mmtui.encoders.words.english_ranks();
        `dictionary(word)`: whether a word beyond those is a real word, never to be repaired."""
        self.df: Counter = Counter()
        pairs: Counter = Counter()
        for ws in titles:
            self.df.update(set(ws))
            pairs.update({(a, b) for a, b in zip(ws, ws[1:]) if a.isalpha() and b.isalpha()})
        extra = Counter(w for w in other_words if w)
        for w, n in extra.items():
            self.df[w] = max(self.df[w], MIN_TITLES)  # facet values and brands are targets however rare in titles
        self.pairs = {a + b: ((a, b), n) for (a, b), n in pairs.items() if n >= MIN_TITLES}
        self.english = dict(english or {})
        self.dictionary = dictionary
        self.english_words = [w for w in self.english if len(w) >= SPLIT_MIN]
        from mmtui.catalog.facets import singular

        self.singular = singular
        self.singulars = {singular(w) for w in self.df}
        targets = {w: n for w, n in self.df.items() if n >= MIN_TITLES and w.isalpha() and len(w) > 2}
        for joined, (_, n) in self.pairs.items():
            if joined not in targets or targets[joined] < n:
                targets[joined] = n
        self.target_words = list(targets)
        self.target_counts = [targets[w] for w in self.target_words]
        self._memo: dict[str, str | None] = {}

    def knows(self, word: str) -> bool:
        """Whether the catalog uses the word, in this number or the other ("sneaker" when titles say "sneakers")."""
        return word in self.df or self.singular(word) in self.singulars

    def catalog_form(self, joined: str) -> tuple[str, ...] | None:
        """The way the titles write these letters most often: one word, or a pair; None if they write neither."""
        one = self.df.get(joined, 0)
        pair = self.pairs.get(joined)
        if pair is not None and pair[1] > one:
            return pair[0]
        return (joined,) if one >= MIN_TITLES else None

    def joined_form(self, first: str, second: str) -> tuple[str, ...] | None:
        """catalog_form of two words written as one, a letter's name read as the letter ("tee shirts" ->
        "tshirts" where the titles say "Tshirts")."""
        for head in dict.fromkeys((first, LETTER_NAMES.get(first, first))):
            for joined in dict.fromkeys((head + second, self.singular(head + second))):
                form = self.catalog_form(joined)
                if form is not None and not (len(form) == 2 and form[0] == first):  # a pair stays as spaced
                    return form
        return None

    def one_word_forms(self, tokens: list[str]) -> list[str]:
        """The tokens with each pair the titles also write as one word in that form ("kids t shirt" -> "kids
        tshirts" where at least MIN_TITLES titles say "Tshirts"): every spacing of the words searches alike, and
        the one-word form matches the products that only use it."""
        out: list[str] = []
        i = 0
        while i < len(tokens):
            a, b = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
            joined = a + b
            found = next((j for j in (joined, self.singular(joined), joined + "s") if self.df.get(j, 0) >= MIN_TITLES),
                         None) if b and a.isalpha() and b.isalpha() else None
            out.append(found or a)
            i += 2 if found else 1
        return out

    def nearest(self, word: str, means_something: Callable[[str], bool] = lambda w: True) -> str | None:
        """The catalog spelling an unknown word was meant to be (a joined pair comes back as one string of
        letters, see catalog_form), or None: the word is known, too short, or nothing is close enough."""
        if word in self._memo:
            return self._memo[word]
        found = self._nearest(word, means_something)
        if len(self._memo) > 4096:
            self._memo.clear()
        self._memo[word] = found
        return found

    def _nearest(self, word: str, means_something: Callable[[str], bool]) -> str | None:
        if not word.isalpha() or self.knows(word) or max_edits(word) == 0 or not self.target_words:
            return None
        if word in self.english:
            return self._english_slip(word, means_something)
        if self.dictionary is not None and self.dictionary(word):
            return None  # a real word the model's vocabulary lacks ("pantyhose"): no typo
        found = self._closest(word, max_edits(word), means_something)
        return found[1] if found is not None else self._split(word, means_something)

    def _closest(self, word: str, limit: int, means_something: Callable[[str], bool]) -> tuple[int, str] | None:
        """(edits, word) of the best repair within `limit` edits: a catalog word, else an English word that means
        something here; fewest edits, same first letter, more titles, commoner English."""
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        found = [(d, w, self.target_counts[i]) for w, d, i in
                 process.extract(word, self.target_words, scorer=OSA.distance, score_cutoff=limit, limit=50)]
        seen = {w for _, w, _ in found}
        found += [(d, w, 0) for w, d, _ in
                  process.extract(word, self.english_words, scorer=OSA.distance, score_cutoff=limit, limit=50)
                  if w not in seen and len(w) >= MIN_LENGTH]
        # a changed first letter counts one edit more: typos rarely touch it ("pullover" is no "gulliver")
        found = [(d + (w[0] != word[0]), w, n) for d, w, n in found if d + (w[0] != word[0]) <= limit]
        ranked = sorted(found, key=lambda c: (c[0], c[2] == 0, c[1][0] != word[0], -c[2],
                                              self.english.get(c[1], len(self.english)), c[1]))
        for d, w, n in ranked[:8]:
            if n > 0 or means_something(w):  # an English word nobody here uses must at least mean something here
                return d, w
        return None

    def _english_slip(self, word: str, means_something: Callable[[str], bool]) -> str | None:
        """A real but rare English word one edit from a catalog word many titles use, or that English uses far
        more ("jens" -> "jeans"), when the word itself means nothing here; else None."""
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        close = [c for c in process.extract(word, self.target_words, scorer=OSA.distance, score_cutoff=1, limit=50)
                 if c[0][0] == word[0]]
        if not close:
            return None
        best = min(close, key=lambda c: (c[1], c[0][0] != word[0], -self.target_counts[c[2]], c[0]))
        target = self.english.get(best[0], len(self.english))
        if self.english[word] < COMMONER * target:
            return None  # English uses the word about as often as the target ("boss", "boys"): a word of its own
        common = target * COMMONER < self.english[word]
        if (self.target_counts[best[2]] < KNOWN_ENGLISH_MIN_TITLES and not common) or means_something(word):
            return None
        return best[0]

    def _split(self, word: str, means_something: Callable[[str], bool]) -> str | None:
        """A run-together word as two known words, one of them an edit off ("wristwach" -> "wrist watch"), at
        least one the catalog's; None when no split fits."""
        best: tuple | None = None
        for i in range(SPLIT_MIN, len(word) - SPLIT_MIN + 1):
            parts = []
            for part in (word[:i], word[i:]):
                if self.knows(part) or part in self.english:
                    parts.append((0, part))
                else:
                    parts.append(self._closest(part, 1, means_something) if len(part) >= MIN_LENGTH else None)
            if None in parts or sum(d for d, _ in parts) > 1 or not any(self.knows(w) for _, w in parts):
                continue
            key = (sum(d for d, _ in parts), -sum(self.knows(w) for _, w in parts), abs(len(word) - 2 * i))
            if best is None or key < best[0]:
                best = (key, " ".join(w for _, w in parts))
        return best[1] if best is not None else None

    def repair(self, tokens: list[str], means_something: Callable[[str], bool] = lambda w: True,
               keep: Callable[[str], bool] = lambda w: False) -> tuple[list[str], list[Repair]]:
        """(the tokens in the catalog's spelling, the repairs made). `keep(word)`: words never to touch (a
        person word, a stop word)."""
        out: list[str] = []
        repairs: list[Repair] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt is not None and not keep(tok) and not keep(nxt) and tok.isalpha() and nxt.isalpha():
                form = self.joined_form(tok, nxt)  # "back pack" -> "backpack"; "t shirt" stays "t shirt"
                if form is not None and form != (tok, nxt):
                    out.extend(form)
                    repairs.append(Repair(f"{tok} {nxt}", " ".join(form)))
                    i += 2
                    continue
            if keep(tok) or not tok.isalpha():
                out.append(tok)
                i += 1
                continue
            form = self.catalog_form(tok)
            if form is not None and form != (tok,):  # "tshirt" -> "t shirt" where the titles write it so
                out.extend(form)
                repairs.append(Repair(tok, " ".join(form)))
            elif form is None and not self.knows(tok):
                meant = self.nearest(tok, means_something)
                if meant is not None:
                    spelled = self.catalog_form(meant.replace(" ", "")) or tuple(meant.split())
                    out.extend(spelled)
                    repairs.append(Repair(tok, " ".join(spelled)))
                else:
                    out.append(tok)
            else:
                out.append(tok)
            i += 1
        return out, repairs
