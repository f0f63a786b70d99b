"""Compound queries: one syntax for the CLI, the TUI and the library (a pure function of the text).

    "summer dress" + like:12345 - floral     parts added (+) or subtracted (-): words, a product, words
    2:red + ./photo.jpg                       a weight before a part ("2:" counts it twice as much)
    leather boots -brown                      a minus stuck to a word subtracts that word, as web search does
    running shoes without laces               "without", "not", "no", "excluding", "except" + words: a negative
    like:12345 + cheaper                      "cheaper" / "more expensive" next to a product: its price is the bound

A part is words, an image path (a token that starts with /, ./, ../, ~/ or file://, or ends in .jpg, .png ...) or
a product (`like:ID`). `+` and `-` are operators only between spaces ("t-shirt", "2 - 3 years" stay words), and
inside double quotes nothing is an operator. A query with none of these is one part: the words as typed.

`parse_compound` reads no file and no catalog: the search service decides what each part means in the catalog
(mmtui.query.combine), e.g. whether a "without" phrase names words the catalog has.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable

TEXT, IMAGE, LIKE = "text", "image", "like"
SYNTAX, WORDS = "syntax", "words"  # how a part was said: the operators, or plain words ("without laces")
MAX_WEIGHT = 100.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
PATH_PREFIXES = ("/", "./", "../", "~/", "file://")
OPERATORS = {"+": False, "-": True, "\u2212": True}  # sign -> negative?
QUOTES = {'"': '"', "\u201c": "\u201d", "'": "'"}
# plain-word negation: the cue, then up to MAX_NEGATED words that end at a boundary word or punctuation
CUES = ("without", "not", "no", "excluding", "except", "w/o")
DETERMINERS = frozenset("a an the any".split())
ADVERBS = frozenset("too very so overly really".split())  # "not too expensive": the adverb says nothing
BOUNDARIES = frozenset("""for in with and or but under below over above from by at on to that which who nor plus than
                       as of if when while because please""".split())
LEADING = frozenset("for in with made".split())  # "not for men", "not in red": the preposition belongs to the phrase
MAX_NEGATED = 3
# general English price words: a negated one is its opposite ("not expensive" -> "cheap"), not a negative part
CHEAP_WORDS = frozenset("cheap cheaper cheapest budget affordable inexpensive".split())
DEAR_WORDS = frozenset("expensive pricey premium luxury costly".split())
# "cheaper" next to a product: below its price; "more expensive": above it (an amount, "cheaper than 500", is a price
# filter the query understanding reads)
_RELATIVE = re.compile(
    r"\b(cheaper|less\s+expensive|lower[\s-]+priced|more\s+affordable|more\s+expensive|pricier|dearer|costlier"
    r"|higher[\s-]+priced)\b(\s+than\s+(?:this|that|it|this\s+one|that\s+one))?(?!\s+than\s+\S*\d)", re.IGNORECASE)
_WEIGHT = re.compile(r"^(\d{1,3}(?:\.\d{1,3})?)\s*:\s*(?=[^\s\d:])")
_LIKE = re.compile(r"(?i)^like:(\S+)$")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class Part:
    """One part of a query: words, an image path or a product id, with a weight; negative ones are subtracted."""
    kind: str  # TEXT | IMAGE | LIKE
    value: str  # the words, the path as typed, or the product id
    weight: float = 1.0
    negative: bool = False
    source: str = SYNTAX  # SYNTAX | WORDS ("without laces" said in plain words)
    said: str = field(default="", compare=False)  # how the query said it ("without laces", "-floral", "2:red")
    quoted: bool = field(default=False, compare=False, repr=False)  # words in quotes: taken as they are

    @property
    def sign(self) -> str:
        return "-" if self.negative else "+"

    def to_json(self) -> dict[str, Any]:
        return {"sign": self.sign, "kind": self.kind, "value": self.value, "weight": self.weight,
                "source": self.source, "said": self.said or self.value}

    def syntax(self) -> str:
        """The part written in the query syntax (without its sign): `2:"summer dress"`, `like:12345`."""
        if self.kind == LIKE:
            body = f"like:{self.value}"
        elif self.kind == IMAGE:
            body = self.value if not any(ch.isspace() for ch in self.value) else f'"{self.value}"'
        else:
            body = self.value if _plain(self.value) else f'"{self.value}"'
        return (f"{self.weight:g}:" if self.weight != 1.0 else "") + body


@dataclass(frozen=True)
class Compound:
    """A parsed query: its parts in the order said, and a price relative to the first product part."""
    text: str
    parts: tuple[Part, ...]
    relative_price: str | None = None  # "below" | "above": cheaper / more expensive than the like: product
    price_words: str = ""  # the words that said it
    kept: tuple[str, ...] = ()  # plain-word negations left in the words: the catalog has none of their words

    @property
    def positives(self) -> list[Part]:
        return [p for p in self.parts if not p.negative]

    @property
    def negatives(self) -> list[Part]:
        return [p for p in self.parts if p.negative]

    @property
    def simple(self) -> bool:
        """One text part of weight 1 and nothing else: an ordinary query."""
        return len(self.parts) == 1 and self.parts[0].kind == TEXT and not self.parts[0].negative \
            and self.parts[0].weight == 1.0 and self.relative_price is None

    @property
    def combined(self) -> bool:
        """More than one part, a weight, a negative or a relative price: what the syntax adds to a plain query, a
        lone picture or a lone like:ID."""
        return len(self.parts) > 1 or any(p.negative or p.weight != 1.0 for p in self.parts) \
            or self.relative_price is not None

    def with_parts(self, parts) -> "Compound":
        return replace(self, parts=tuple(parts))

    def syntax(self) -> str:
        """The query written in the syntax (what the TUI puts in the box for a refinement)."""
        out = ""
        for i, part in enumerate(self.parts):
            if i == 0:
                out = ("- " if part.negative else "") + part.syntax()
            else:
                out += f" {part.sign} {part.syntax()}"
        if self.relative_price is not None:
            out += " + " + ("cheaper" if self.relative_price == "below" else "more expensive")
        return out

    def to_json(self) -> list[dict[str, Any]]:
        out = [p.to_json() for p in self.parts]
        if self.relative_price is not None:
            out.append({"sign": "+", "kind": "price", "value": self.relative_price, "weight": 1.0,
                        "source": WORDS, "said": self.price_words})
        return out


Supported = Callable[[str, str], bool]  # (negated words, how said) -> whether the catalog can subtract them


def parse_compound(text: str, supported: Supported | None = None) -> Compound:
    """The parts of a query (see the module doc). Never raises: what is not an operator, a weight, a product or a
    path is words. Parts whose value is empty are left out. `supported(words, said)`: whether negated plain words
    name something the catalog has (None: every one does); those it does not stay in the words, listed in `kept`."""
    text = " ".join(str(text or "").split())
    parts: list[Part] = []
    for negative, segment in _segments(text):
        parts.extend(_segment_parts(segment, negative))
    parts, kept = _word_negations(parts, supported or (lambda words, said: True))
    relative, said = None, ""
    if any(p.kind == LIKE and not p.negative for p in parts):
        parts, relative, said = _relative_price(parts)
    return Compound(text, tuple(parts), relative, said, tuple(kept))


def is_compound(text: str) -> bool:
    """Whether the text uses the syntax (more than one part, a weight, a negative or a relative price)."""
    return not parse_compound(text).simple


# -- splitting ---------------------------------------------------------------------------------------------------
def _segments(text: str) -> list[tuple[bool, str]]:
    """Split at the operators standing between spaces (outside quotes): [(negative, segment)], empty ones left out.
    "2 - 3" between two numbers is a range, not an operator."""
    out: list[tuple[bool, str]] = []
    negative, start, i, n = False, 0, 0, len(text)
    while i < n:
        end = _closing_quote(text, i)
        if end is not None:
            i = end + 1
            continue
        if text[i] in OPERATORS and (i == 0 or text[i - 1] == " ") and (i + 1 == n or text[i + 1] == " ") \
                and not _between_numbers(text, i):
            out.append((negative, text[start:i]))
            negative, start = OPERATORS[text[i]], i + 1
        i += 1
    out.append((negative, text[start:]))
    return [(neg, seg.strip()) for neg, seg in out if seg.strip()]


def _closing_quote(text: str, i: int) -> int | None:
    """Where the quote opened at i closes, when one opens there: at the start of a word (or after a "-"), closed at
    the end of a word, with something inside."""
    close = QUOTES.get(text[i])
    if close is None or (i > 0 and text[i - 1] not in " -"):
        return None
    j = i + 1
    while True:
        j = text.find(close, j)
        if j < 0:
            return None
        if j > i + 1 and (j + 1 == len(text) or text[j + 1] == " "):
            return j
        j += 1


def _between_numbers(text: str, i: int) -> bool:
    """A minus between a number and a number word ("2 - 3 years"), not before a weight ("a0 - 2:red")."""
    before, after = text[:i].rstrip(), text[i + 1:].lstrip()
    nxt = after.split(" ", 1)[0]
    return text[i] != "+" and bool(before) and before[-1].isdigit() and bool(re.fullmatch(r"\d+(\.\d+)?", nxt))


def _tokens(segment: str) -> list[str]:
    """Words and quoted groups (kept with their quotes), split at spaces outside quotes."""
    out, i, start, n = [], 0, 0, len(segment)
    while i < n:
        end = _closing_quote(segment, i)
        if end is not None:
            i = end + 1
            continue
        if segment[i] == " ":
            if i > start:
                out.append(segment[start:i])
            start = i + 1
        i += 1
    if start < n:
        out.append(segment[start:])
    return out


def _unquote(token: str) -> str | None:
    """The inside of a token that is one quoted group, else None."""
    if len(token) >= 3 and token[0] in QUOTES and _closing_quote(token, 0) == len(token) - 1:
        return token[1:-1].strip()
    return None


def looks_like_image(token: str) -> bool:
    """A path to a picture by its spelling alone: a path prefix, or an image file's suffix."""
    low = token.lower()
    return (low.startswith(PATH_PREFIXES) and len(low) > 2) or (low.endswith(IMAGE_SUFFIXES) and len(low) > 4)


def _segment_parts(segment: str, negative: bool) -> list[Part]:
    """The parts of one segment: its weight, then a quoted group or a path with spaces as one part, else its
    like:ID tokens, paths and words stuck to a minus as parts of their own and the other words as one text part."""
    weight, rest = 1.0, segment
    found = _WEIGHT.match(segment)
    if found and 0 < float(found.group(1)) <= MAX_WEIGHT:
        weight, rest = float(found.group(1)), segment[found.end():]
    inner = _unquote(rest)
    if inner is not None:
        kind = IMAGE if looks_like_image(inner) else TEXT
        return [Part(kind, inner, weight, negative, said=segment, quoted=True)] if inner else []
    if " " in rest and rest.startswith(PATH_PREFIXES) and rest.lower().endswith(IMAGE_SUFFIXES):
        return [Part(IMAGE, rest, weight, negative, said=segment)]  # a path with spaces, as a terminal drops it
    parts: list[Part] = []
    words: list[str] = []
    for token in _tokens(rest):
        like = _LIKE.match(token)
        value = _unquote(token)
        if like:
            parts.append(Part(LIKE, like.group(1), weight, negative, said=token))
        elif token[0] == "-" and len(token) > 1 and (token[1].isalpha() or _unquote(token[1:]) is not None):
            value = _unquote(token[1:]) or token[1:]
            parts.append(Part(IMAGE if looks_like_image(value) else TEXT, value, 1.0, True, said=token,
                              quoted=token[1] in QUOTES))
        elif looks_like_image(value if value is not None else token):
            parts.append(Part(IMAGE, value if value is not None else token, weight, negative, said=token))
        elif value != "":
            words.append(value if value is not None else token)
    if words:
        parts.insert(0, Part(TEXT, " ".join(words), weight, negative, said=" ".join(words)))
    if len(parts) == 1:
        parts[0] = replace(parts[0], said=segment)
    return parts


def _plain(text: str) -> bool:
    """Whether words can be written without quotes and read back the same."""
    again = parse_compound(text)
    return len(again.parts) == 1 and again.parts[0] == Part(TEXT, text) and again.relative_price is None


# -- plain words -------------------------------------------------------------------------------------------------
def _word_negations(parts: list[Part], supported: Supported) -> tuple[list[Part], list[str]]:
    """"running shoes without laces" -> the text "running shoes" and the negative words "laces" (source WORDS),
    when `supported("laces", "without laces")`; a negation it does not support stays in the words (listed second). A negated price
    word is its opposite ("not expensive" -> "cheap"). Words in quotes are taken as they are."""
    out: list[Part] = []
    kept_all: list[str] = []
    for part in parts:
        if part.kind != TEXT or part.negative or part.quoted:
            out.append(part)
            continue
        others = any(p is not part and not p.negative for p in parts)  # "like:12 + without the logo"
        text, negated, kept = negations(part.value, supported, alone=not others)
        kept_all += kept
        if not negated:
            out.append(replace(part, value=text) if text else part)
            continue
        if text:
            out.append(replace(part, value=text))
        out.extend(Part(TEXT, words, 1.0, True, WORDS, said=said) for words, said in negated)
    return out, kept_all


def negations(text: str, supported: Supported | None = None, alone: bool = True
              ) -> tuple[str, list[tuple[str, str]], list[str]]:
    """(the text without its negations, [(negated words, how they were said)], [negations kept in the text]):
    "black boots, not leather" -> ("black boots", [("leather", "not leather")], []). A negation `supported` says
    the catalog cannot subtract stays in the text; negated price words turn into their opposite ("not expensive"
    -> "cheap"). A text `alone` in its query that would be left with nothing but negations keeps them all as
    words ("no show socks" is something to look for)."""
    tokens = text.split(" ")
    kept: list[str] = []
    negated: list[tuple[str, str]] = []
    stayed: list[str] = []
    i = 0
    while i < len(tokens):
        if _bare(tokens[i]) in CUES:
            phrase, end = _negated_phrase(tokens, i + 1)
            content = [w for w in phrase if w not in LEADING]
            said = " ".join(tokens[i:end]).rstrip(",;.!?")
            if content and all(w in CHEAP_WORDS or w in DEAR_WORDS for w in content):
                kept.append("expensive" if content[-1] in CHEAP_WORDS else "cheap")
                i = end
                continue
            if content and (supported is None or supported(" ".join(phrase), said)):
                negated.append((" ".join(phrase), said))
                i = end
                continue
            if content:
                stayed.append(said)
        kept.append(tokens[i])
        i += 1
    rest = " ".join(t for t in kept if t).strip(" ,;")
    if negated and alone and not _WORD.search(rest.lower()):
        return text, [], stayed + [said for _, said in negated]
    return rest, negated, stayed


def _bare(token: str) -> str:
    return token.lower().strip(",;.!?()\"")


def _negated_phrase(tokens: list[str], start: int) -> tuple[list[str], int]:
    """The words a cue negates, from tokens[start]: articles and adverbs skipped, a leading "for"/"in"/"with" kept,
    up to MAX_NEGATED words until a boundary word, punctuation or the end. ([words], index after them)."""
    words: list[str] = []
    i = start
    while i < len(tokens) and _bare(tokens[i]) in DETERMINERS | ADVERBS:
        i += 1
    if i < len(tokens) and _bare(tokens[i]) in LEADING and not tokens[i].endswith((",", ";", ".")):
        words.append(_bare(tokens[i]))
        i += 1
        while i < len(tokens) and _bare(tokens[i]) in DETERMINERS:
            i += 1
    while i < len(tokens) and len([w for w in words if w not in LEADING]) < MAX_NEGATED:
        word = _bare(tokens[i])
        if not word or word in BOUNDARIES or word in CUES or not _WORD.fullmatch(word):
            break
        words.append(word)
        i += 1
        if tokens[i - 1].endswith((",", ";", ".", "!", "?")):
            break
    return words, i


def _relative_price(parts: list[Part]) -> tuple[list[Part], str | None, str]:
    """"cheaper" / "more expensive" in the words next to a product: (parts without those words, "below" | "above",
    the words). A part left with no words is dropped."""
    relative, said, out = None, "", []
    for part in parts:
        found = _RELATIVE.search(part.value) if part.kind == TEXT and not part.negative and relative is None \
            and not part.quoted else None
        if found is None:
            out.append(part)
            continue
        word = found.group(1).lower()
        relative = "below" if word.startswith(("cheaper", "less", "lower", "more affordable")) else "above"
        said = found.group(0)
        rest = " ".join((part.value[:found.start()] + " " + part.value[found.end():]).split()).strip(" ,")
        if rest:
            out.append(replace(part, value=rest))
    return out, relative, said
