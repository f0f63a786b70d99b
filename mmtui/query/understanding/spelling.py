"""Spelling-tolerant reading of a shopper's words against the catalog's own vocabulary.

The vocabulary is the catalog's: the words of its titles, descriptions, facet values and brands, with how many
products use each,
and the pairs of title words that are written together ("Wrist Watch", "T-shirt" -> "t shirt"). Three repairs, all
from that vocabulary (no list of product words):
- spacing: a query word or pair is written the way the titles write it most often ("tshirt" -> "t shirt" where
  titles say "T-shirt", "back pack" -> "backpack", "sun glasses" -> "sunglasses");
- typos: a word the catalog and general English do not know is the catalog word one or two edits away (optimal
  string alignment distance, rapidfuzz), the one more titles use winning a tie: "sneekers" -> "sneakers",
  "hanbag" -> "handbag", "wristwach" -> "wrist watch";
- a word general English knows but the catalog does not ("jens") is repaired only one edit away to a word many
  titles use, and only when the word itself means nothing in this catalog (`means_something`).
A word the catalog uses is never changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MIN_TITLES = 2  # a spelling the titles use fewer times than this is no target
KNOWN_ENGLISH_MIN_TITLES = 20  # a real English word is repaired only to a word at least this many titles use
MIN_LENGTH = 4  # shorter words are not repaired ("tee", "bag", "cap" are too close to each other)


def max_edits(word: str) -> int:
    """How many edits a word of this length may carry: one up to 7 letters, two from 8 on."""
    return 0 if len(word) < MIN_LENGTH else 1 if len(word) < 8 else 2


@dataclass(frozen=True)
class Repair:
    said: str  # the words as typed ("sneekers", "back pack")
    meant: str  # the catalog's spelling ("sneakers", "backpack")


class Speller:
    """The catalog's vocabulary and the repairs it allows (see the module docstring)."""

    def __init__(self, titles: Iterable[list[str]], other_words: Iterable[str] = (), known: Callable[[str], bool]
                 = lambda w: False) -> None:
        self.df: Counter = Counter()
        pairs: Counter = Counter()
        for ws in titles:
            self.df.update(set(ws))
            pairs.update({(a, b) for a, b in zip(ws, ws[1:]) if a.isalpha() and b.isalpha()})
        extra = Counter(w for w in other_words if w)
        for w, n in extra.items():
            self.df[w] = max(self.df[w], MIN_TITLES)  # facet values and brands are targets however rare in titles
        self.pairs = {a + b: ((a, b), n) for (a, b), n in pairs.items() if n >= MIN_TITLES}
        self.known_english = known
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
        from rapidfuzz import process
        from rapidfuzz.distance import OSA

        if not word.isalpha() or self.knows(word) or max_edits(word) == 0 or not self.target_words:
            return None
        english = self.known_english(word)
        limit = 1 if english else max_edits(word)
        close = process.extract(word, self.target_words, scorer=OSA.distance, score_cutoff=limit, limit=50)
        if not close:
            return None
        # fewest edits, then the same first letter (typos rarely touch it), then the spelling more titles use
        best = min(close, key=lambda c: (c[1], c[0][0] != word[0], -self.target_counts[c[2]], c[0]))
        if english and (self.target_counts[best[2]] < KNOWN_ENGLISH_MIN_TITLES or means_something(word)):
            return None
        return best[0]

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
                form = self.catalog_form(tok + nxt)  # "back pack" -> "backpack"; "t shirt" stays "t shirt"
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
                    spelled = self.catalog_form(meant) or (meant,)
                    out.extend(spelled)
                    repairs.append(Repair(tok, " ".join(spelled)))
                else:
                    out.append(tok)
            else:
                out.append(tok)
            i += 1
        return out, repairs
