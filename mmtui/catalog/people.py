"""Who a product is for, in general English: the words people use for men, women, children and relatives.

A person is a (sex, age) profile: sex "m", "f" or None (either), age "adult", "child", "teen" or None (any).
The same table reads three things, in any catalog:
- a query's words: "dad", "my wife", "gift for her", "a 10 year old boy", "toddler" (profile_of_words);
- a catalog's person values, by what they mean: "Men" is an adult man, "Boys" a male child, "Unisex" anyone
  (value_profile) — so "dad" finds "Men", never "Boys";
- titles and category paths of a catalog with no person column: "Analog Watch - For Women", "Men's Wrist
  Watches" (person_in_text, for mmtui.catalog.facets' derived person facet).
These are English words for people and relations, not one catalog's vocabulary. Occasions ("birthday", "gift")
are listed too: they say why someone shops, never what kind of product they want.
"""

from __future__ import annotations

import re

from mmtui.catalog.words import words

MAN, WOMAN = ("m", "adult"), ("f", "adult")
BOY, GIRL, CHILD = ("m", "child"), ("f", "child"), (None, "child")
TEEN_BOY, TEEN_GIRL, TEEN = ("m", "teen"), ("f", "teen"), (None, "teen")
ANYONE = (None, None)

_WORDS: dict[tuple, str] = {
    MAN: "man men mens male males gent gents gentleman gentlemen guy guys dad dads daddy father fathers husband "
         "hubby boyfriend bf him he his grandpa grandad granddad grandfather grandpas brother bro uncle groom "
         "fiance nephew-in-law father-in-law son-in-law brother-in-law",
    WOMAN: "woman women womens female females lady ladies gal gals mom moms mum mums mummy mommy mother mothers "
           "wife wifey girlfriend gf her she hers grandma granny grandmother nana sister sis aunt auntie bride "
           "fiancee mother-in-law daughter-in-law sister-in-law",
    BOY: "boy boys son sons nephew grandson schoolboy",
    GIRL: "girl girls daughter daughters niece granddaughter schoolgirl",
    CHILD: "kid kids child children childs childrens baby babies infant infants toddler toddlers newborn "
           "junior juniors grandchild grandkid grandkids",
    TEEN: "teen teens teenager teenagers teenage tween tweens adolescent",
    ANYONE: "unisex everyone anyone adult adults",
}
PERSON_WORDS: dict[str, tuple] = {w: p for p, ws in _WORDS.items() for w in ws.split()}
# words that change the age of the relative next to them: "teenage son", "little girl", "baby boy"
AGE_WORDS = {"teen": "teen", "teens": "teen", "teenage": "teen", "teenager": "teen", "tween": "teen",
             "little": "child", "baby": "child", "toddler": "child", "young": None, "grown": "adult"}
# why someone shops, never what: these words name no kind of product
OCCASIONS = frozenset("""
gift gifts present presents birthday bday anniversary wedding weddings christmas xmas diwali eid holi valentine
valentines housewarming graduation retirement occasion occasions festival festive celebration surprise
""".split())
# the possessive and relation words around a person ("for my dad", "my sister's"): not product words either
RELATION_FILLERS = frozenset("my our his her their someone somebody friend friends family who loves likes old "
                             "year years yr yrs aged age".split())
_AGE = re.compile(r"\b(\d{1,2})\s*(?:-|\s)?\s*(?:year|yr|yrs|years)s?(?:\s*-?\s*old)?\b")
ADULT_AGE = 13  # "a 10 year old" is a child; "a 15 year old" a teenager; 20 and more an adult
CANONICAL = {MAN: "Men", WOMAN: "Women", BOY: "Boys", GIRL: "Girls", CHILD: "Kids", ANYONE: "Unisex"}


def profile_of_words(words: list[str], text: str = "") -> tuple[tuple | None, list[int]]:
    """The person the words ask for and the positions of the words that said it; (None, []) for no person.
    "teenage son" -> (m, teen); "a 10 year old boy" -> (m, child); "7 year old" -> (None, child)."""
    sex, age, said = None, None, []
    sexes = set()
    for i, w in enumerate(words):
        p = PERSON_WORDS.get(w)
        if p is None or p == ANYONE:
            continue
        said.append(i)
        if p[0] is not None:
            sexes.add(p[0])
        if p[1] is not None and (age is None or _younger(p[1], age)):
            age = p[1]
    for i, w in enumerate(words):
        a = AGE_WORDS.get(w)
        if a and said and any(abs(i - j) == 1 for j in said):  # "teenage son", "little girl"
            age = a
            if i not in said:
                said.append(i)
    match = _AGE.search(text.lower()) if text else None
    if match:
        years = int(match.group(1))
        age = "child" if years < ADULT_AGE else "teen" if years < 20 else age or "adult"
        said.extend(i for i, w in enumerate(words) if w in ("year", "yr", "yrs", "years", "old") or w == match.group(1))
    if not said and not match:
        return None, []
    sex = next(iter(sexes)) if len(sexes) == 1 else None
    if sex is None and age is None:
        return None, sorted(set(said))
    return (sex, age), sorted(set(said))


def _younger(a: str, b: str) -> bool:
    order = {"child": 0, "teen": 1, "adult": 2}
    return order[a] < order[b]


def value_profile(value: str) -> tuple | None:
    """What a catalog's person value means: "Men" -> (m, adult), "Boys" -> (m, child), "Kids Unisex" ->
    (None, child), "Unisex" -> (None, None); None when its words name no person."""

    found = [PERSON_WORDS[w] for w in words(value) if w in PERSON_WORDS]
    if not found:
        return None
    sexes = {p[0] for p in found if p[0] is not None}
    ages = {p[1] for p in found if p[1] is not None}
    sex = next(iter(sexes)) if len(sexes) == 1 else None
    age = "child" if "child" in ages else next(iter(ages)) if len(ages) == 1 else None
    return sex, age


def fits(asked: tuple, value: tuple) -> bool:
    """Whether a product for `value` suits a shopper asking for `asked` (a teenager fits children's and adults')."""
    (qs, qa), (vs, va) = asked, value
    if qs is not None and vs is not None and qs != vs:
        return False
    if qa is None or va is None or qa == va:
        return True
    return qa == "teen" and va in ("child", "adult")


def person_values(asked: tuple, values: list[str]) -> dict[str, float]:
    """The catalog's person values that suit the asked profile, by what they mean: value -> 1.0. Values for
    anyone ("Unisex") are left to the ranking's unisex credit."""
    out = {}
    for v in values:
        p = value_profile(v)
        if p is None or p == ANYONE:
            continue
        if fits(asked, p) and (p[0] is not None or asked[0] is None or p[1] == "child"):
            out[v] = 1.0
    return out


def person_in_text(text: str) -> tuple | None:
    """The person a title or category path says a product is for ("... - For Women", "Men's Wrist Watches",
    "Kids Boys T-shirt"); None when it names none. Both sexes named: anyone of that age. A bare singular noun for
    a person is part of a name ("Pink Lady Apple", "Water Man Slippers", "Boy Shorts"): it labels the product
    only as a possessive ("Girl's") or after "for" ("for Woman")."""

    found = [PERSON_WORDS[w] for w in _label_words(text)]
    if not found:
        return None
    if ANYONE in found:
        return ANYONE
    sexes = {p[0] for p in found if p[0] is not None}
    ages = {p[1] for p in found if p[1] is not None}
    return (next(iter(sexes)) if len(sexes) == 1 else None, "child" if "child" in ages else "adult")


_TOKEN = re.compile(r"[a-z0-9]+(?:'s\b|')?")


def _label_words(text: str) -> list[str]:
    """The words of a text that label whom the product is for (LABEL_WORDS, as `words` spells them), leaving out
    bare singular nouns (NAME_NOUNS) that are not possessive and do not follow "for"."""
    tokens = _TOKEN.findall(str(text).lower().replace("\u2019", "'"))
    out = []
    for i, token in enumerate(tokens):
        word = token[:-2] if token.endswith("'s") else token.rstrip("'")
        if word not in LABEL_WORDS:
            continue
        if word in NAME_NOUNS and token == word and not (i and tokens[i - 1] == "for"):
            continue  # "Pink Lady", "Arrow Woman", "Doodle Boy": a name, not a label
        out.append(word)
    return out


# singular nouns for a person: in a title they are more often a name's word than a label
NAME_NOUNS = frozenset("man woman lady boy girl gent guy".split())
# the words that label a product's person ("Men's", "For Women", "Kids"); a title's "her" or "brother" is a
# product or model name ("Brother printer"), not whom it is for
LABEL_WORDS = frozenset("""man men mens male gents gent woman women womens female lady ladies boy boys girl girls kid
kids child children childrens baby babies infant infants toddler toddlers junior unisex""".split())
