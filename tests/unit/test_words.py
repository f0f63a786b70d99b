"""Words people type: relatives and ages (mmtui.catalog.people), spelling repairs (mmtui.query.understanding.spelling),
category trees and derived person facets (mmtui.catalog.facets), money in any currency (parse_price)."""

from __future__ import annotations

import numpy as np
import pytest

from mmtui.catalog.facets import kind_of, load_facets, words
from mmtui.catalog.people import person_values, profile_of_words
from mmtui.query.understanding.parse import Lexicon, Understander, parse_price
from mmtui.query.understanding.spelling import Speller
from mmtui.store.db import Store

from test_understand import FASHION, fake_embed  # tests/unit is on the path (pytest prepend mode)


@pytest.fixture
def understand(tmp_path):
    s = Store.memory()
    rows = list(FASHION) + [("16", "Gini and Jony Boys Blue Tee", "Tshirts", "Boys", "Blue", "Gini", 9.0),
                            ("17", "Doodle Girls Pink Tee", "Tshirts", "Girls", "Pink", "Doodle", 9.0),
                            ("18", "Titan Women Gold Watch", "Watches", "Women", "Gold", "Titan", 99.0),
                            ("19", "Fastrack Men Brown Wallet", "Wallets", "Men", "Brown", "Fastrack", 20.0),
                            ("20", "Baggit Women Brown Handbag", "Handbags", "Women", "Brown", "Baggit", 40.0),
                            ("21", "Lino Perros Women Black Handbag", "Handbags", "Women", "Black", "Lino", 45.0)]
    s.upsert_products([{"rowid": i + 1, "id": pid, "title": title, "article_type": kind, "category": "Apparel",
                        "gender": gender, "colour": colour, "brand": brand, "price": price, "split": "train"}
                       for i, (pid, title, kind, gender, colour, brand, price) in enumerate(rows)])
    return Understander(Lexicon(load_facets(s), fake_embed, tmp_path / "u"))


@pytest.mark.parametrize("query,person", [
    ("t-shirt for my dad", {"Men"}), ("something for my boyfriend", {"Men"}), ("gift for her", {"Women"}),
    ("tee for my 10 year old boy", {"Boys"}), ("toddler tee", {"Boys", "Girls"}), ("my sister's watch", {"Women"}),
    ("tee for grandpa", {"Men"}), ("tee for my teenage son", {"Boys", "Men"}),
])
def test_relatives_pronouns_and_ages_mean_the_catalogs_own_person_values(understand, query, person):
    u = understand(query)
    assert set(u.parts["person"]) == person
    assert "kind" not in u.parts or not set(u.parts["kind"]) & {"Handbags"}  # "dad" is never read as a kind


def test_occasions_never_name_a_kind(understand):
    u = understand("birthday gift for my mom")
    assert set(u.parts) == {"person"} and u.parts["person"] == {"Women": 1.0}


def test_an_adult_is_never_a_child_value():
    values = ["Boys", "Girls", "Men", "Unisex", "Women"]
    profile, _ = profile_of_words(words("for my husband"))
    assert person_values(profile, values) == {"Men": 1.0}
    profile, _ = profile_of_words(words("a 6 yr old girl"), "a 6 yr old girl")
    assert person_values(profile, values) == {"Girls": 1.0}


@pytest.mark.parametrize("typed,meant", [("sneekers", "sneakers"), ("walet", "wallet"), ("hanbag", "handbag"),
                                         ("wacth", "watch")])
def test_a_typo_is_read_as_the_catalog_word_and_shown(understand, typed, meant):
    u = understand(f"mens {typed}")
    assert (typed, meant) in u.repairs
    assert meant in u.text.split() and f"{typed} -> {meant}" in u.label()


def test_a_word_the_catalog_uses_is_never_corrected(understand):
    for title in [r[1] for r in FASHION]:
        assert understand(title).repairs == []
    assert understand("black socks").repairs == []


def test_spacing_follows_the_catalogs_own_spelling():
    speller = Speller([["black", "backpack"], ["blue", "backpack"], ["men", "t", "shirt"], ["women", "t", "shirt"],
                       ["pink", "t", "shirt"]])
    assert speller.repair(["back", "pack"])[0] == ["backpack"]
    assert speller.repair(["tshirt"])[0] == ["t", "shirt"]
    assert speller.repair(["t", "shirt"]) == (["t", "shirt"], [])


def test_a_known_english_word_is_kept_when_it_means_something():
    def speller():
        return Speller([["house", "plant"]] * 30, english={"house": 100, "hose": 5000})

    assert speller().nearest("hose", means_something=lambda w: True) is None
    assert speller().nearest("hose", means_something=lambda w: False) == "house"  # means nothing here: repaired


def test_a_noun_general_english_has_is_no_typo_even_when_the_model_lacks_it():
    titles = [["lee", "cooper", "shoes"]] * 30 + [["black", "pants"]] * 5
    nouns = {"pantyhose", "cooker"}.__contains__
    assert Speller(titles).nearest("cooker") == "cooper"  # without a dictionary: one edit from a catalog word
    assert Speller(titles, dictionary=nouns).nearest("cooker") is None
    assert Speller(titles, dictionary=nouns).repair(["pantyhose"]) == (["pantyhose"], [])
    assert Speller(titles, dictionary=nouns).nearest("cooprr") == "cooper"  # not a noun: still repaired


# ranks as in MiniLM's vocabulary (0 = commonest)
ENGLISH = {"the": 0, "watch": 1400, "jeans": 4300, "wrist": 5200, "seekers": 22000, "jens": 23000, "sneakers": 26000,
           "pullover": 27000}


def test_a_typo_of_a_word_the_catalog_never_spells_is_read_in_general_english():
    def new():  # a fresh one each time: a speller remembers its repairs
        return Speller([["black", "casual", "shoes"]] * 5 + [["blue", "jeans"]] * 3 + [["steel", "watch"]] * 3,
                       english=ENGLISH)

    speller = new()
    shoes = {"sneakers", "pullover"}.__contains__  # what means something here (the sentence model's neighbours)
    assert speller.nearest("sneekers", shoes) == "sneakers"  # "seekers" is as close and commoner, but means nothing
    assert new().nearest("sneekers", lambda w: False) is None  # a word meaning nothing here is no repair
    assert speller.nearest("jens", lambda w: False) == "jeans"  # a rare name one edit from a far commoner word
    assert new().nearest("jens", lambda w: True) is None  # ... unless the name itself means something here
    boys = Speller([["kids", "boys", "tee"]] * 30, english={"boys": 1166, "boss": 3277, "jeans": 3718})
    assert boys.nearest("boss", lambda w: False) is None  # as common in English as "boys": a word of its own
    assert speller.repair(["wristwach"], shoes)[0] == ["wrist", "watch"]  # run together and a letter off
    assert Speller([["gulliver", "cot"]] * 30).nearest("pullover") is None  # two edits and one is the first letter
    for right in ("sneakers", "jeans", "watch", "pullover", "seekers"):  # a correct word is never corrected
        assert speller.repair([right], shoes) == ([right], [])


@pytest.mark.parametrize("path,kind", [
    ("Watches > Wrist Watches > Maxima Wrist Watches", "Wrist Watches"),
    ("Watches > Wrist Watches > Men's Wrist Watches > Casio Wrist Watch", "Wrist Watches"),
    ("Kitchen & Dining > Cookware > KASTRULL Cookware", "Cookware"),
    ("Home > Clocks > Maxima Wall Clocks", "Wall Clocks"),
    ("Fruit > Apple", "Apple"),
    ("Lighting > Pendant Lamps > HLJES Pendant Lamps", "Pendant Lamps"),  # a line's name ending in s
])
def test_the_kind_is_the_deepest_step_that_is_not_a_brands_or_persons_shelf(path, kind):
    assert kind_of(None, path, frozenset({"maxima", "casio", "kastrull"})) == kind


def _market(rows):
    s = Store.memory()
    s.upsert_products([{"rowid": i + 1, "id": str(i), "title": t, "category": c, "brand": b, "price": p,
                        "split": "train"} for i, (t, c, b, p) in enumerate(rows)])
    return s


MARKET = [("Maxima Analog Watch - For Women", "Watches > Wrist Watches > Maxima Wrist Watches", "Maxima", 999.0),
          ("Now Analog Watch - For Men", "Watches > Wrist Watches > Now Wrist Watches", "Now", 499.0),
          ("Times Steel Watch - For Women", "Watches > Wrist Watches > Times Wrist Watches", "Times", 799.0),
          ("Men's Black Running Shoes by Puma", "Footwear > Sports Shoes > Puma Sports Shoes", "Puma", 2999.0),
          ("Solid Double Blanket", "Home Furnishing > Blankets, Quilts & Dohars", "IKEA", 1499.0),
          ("Printed Quilt", "Home Furnishing > Blankets, Quilts & Dohars", "IKEA", 2499.0),
          ("Steel Cooking Pot", "Kitchen & Dining > Cookware > KASTRULL Cookware", "KASTRULL", 899.0)]


def test_a_catalog_without_a_person_column_reads_the_person_from_its_titles(tmp_path):
    facets = load_facets(_market(MARKET))
    assert "person" in facets.derived
    assert set(facets.values["person"]) == {"Men", "Women"}
    assert set(facets.values["kind"]) == {"Wrist Watches", "Sports Shoes", "Blankets, Quilts & Dohars", "Cookware"}
    understand = Understander(Lexicon(facets, None, None))
    u = understand("ladies wrist watch under rs 1,000")
    assert u.parts["kind"] == {"Wrist Watches": 1.0} and u.parts["person"] == {"Women": 1.0}
    assert u.price == (None, 1000.0)
    assert "Blankets, Quilts & Dohars" in understand("quilt").parts["kind"]  # a compound value, part by part


@pytest.mark.parametrize("title,person", [
    ("Orchard Select Pink Lady Apple 4 pcs", ""), ("Lotto Water Man Slippers", ""), ("Arrow Woman Green Dress", ""),
    ("Women's Black Skirt", "Women"), ("Crocs Kids Girl's Blue Sandals", "Girls"), ("Analog Watch for Woman", "Women"),
    ("Boys' Blue T-Shirt", "Boys"), ("Mens Shirt", "Men"), ("IKEA Baby Towel", "Kids"), ("Ladies Watch", "Women"),
])
def test_a_bare_singular_person_noun_in_a_title_is_a_name_not_whom_it_is_for(title, person):
    from mmtui.catalog.facets import derived_person

    assert derived_person(title, None, None) == person


@pytest.mark.parametrize("text,price", [
    ("deo below rs 1000", (None, 1000.0)), ("watch under ₹2,000", (None, 2000.0)), ("shoes under 1k", (None, 1000.0)),
    ("rug under 50 euros", (None, 50.0)), ("lamp below £30", (None, 30.0)), ("sofa under 200 bucks", (None, 200.0)),
    ("bag under rs. 1,500", (None, 1500.0)), ("between 500 and 1000 inr", (500.0, 1000.0)),
])
def test_money_in_any_currency(text, price):
    rest, got, said = parse_price(text)
    assert got == price and said and not any(ch.isdigit() for ch in rest)


def test_a_price_in_another_currency_is_converted_when_the_catalog_says_its_own():
    _, price, _ = parse_price("rug under 50 euros", currency="INR")
    assert price[1] > 1000  # fifty euros are thousands of rupees
    assert parse_price("levis 501 jeans")[1] is None  # a model number is no price


def test_no_prices_means_no_silent_empty_result(tmp_path):
    from types import SimpleNamespace

    from mmtui.query.service import SearchService

    facets = SimpleNamespace(prices=np.full(3, np.nan))
    service = SearchService.__new__(SearchService)
    service.understanding = SimpleNamespace(state=lambda: SimpleNamespace(facets=facets))
    assert not service._has_prices()


def test_the_kinds_of_the_nearest_products_are_evidence_when_the_words_are_unsure(tmp_path):
    s = Store.memory()
    s.upsert_products([{"rowid": i + 1, "id": pid, "title": title, "article_type": kind, "category": "Apparel",
                        "gender": gender, "colour": colour, "brand": brand, "price": price, "split": "train"}
                       for i, (pid, title, kind, gender, colour, brand, price) in enumerate(FASHION)])
    asked = []

    def near(text):
        asked.append(text)
        return None if len(asked) == 1 else [7, 7, 6]  # the model loading, then Bata's formal shoes nearest

    understand = Understander(Lexicon(load_facets(s), fake_embed, tmp_path / "u"), near)
    first = understand("office shoes")
    assert first.partial  # made without the nearest products: not kept
    u = understand("office shoes")
    assert next(iter(u.parts["kind"])) == "Formal Shoes" and asked == ["office shoes", "office shoes"]
    assert understand("black watches").parts["kind"] == {"Watches": 1.0} and len(asked) == 2  # spelled: not asked


def test_a_noun_before_a_kinds_word_chooses_among_its_kinds_by_the_products_nearest_to_it(tmp_path):
    basis = np.eye(16, dtype=np.float32)
    meaning = {"backpacks": basis[0], "handbags": basis[1], "laptop bag": basis[2],
               "bag": (basis[0] + basis[1] + basis[2]) / np.sqrt(3),
               "school": 0.45 * basis[0] + 0.2 * basis[1] + 0.87 * basis[5]}  # a little nearer backpacks

    def embed(phrases):
        return np.stack([meaning.get(p, basis[8 + len(p) % 8]) for p in phrases]).astype(np.float32)

    s = Store.memory()
    rows = [("Wildcraft Blue Backpack", "Backpacks"), ("Skybags Red Backpack", "Backpacks"),
            ("Baggit Brown Handbag", "Handbags"), ("Lino Black Handbag", "Handbags"),
            ("Dell Laptop Bag", "Laptop Bag")]
    s.upsert_products([{"rowid": i + 1, "id": str(i), "title": t, "article_type": k, "category": "Bags",
                        "split": "train"} for i, (t, k) in enumerate(rows)])
    lexicon = Lexicon(load_facets(s), embed, tmp_path / "u")

    def phrase_near(text):
        return [1, 3, 4]  # "school bag" as a whole: a backpack, then handbags

    def among(products):
        return lambda text, pool: [r for r in products if r in set(pool.tolist())]

    alone = Understander(lexicon, phrase_near)("school bag").parts["kind"]
    assert alone["Handbags"] > 0.25  # the words alone cannot tell a school bag from a handbag
    u = Understander(lexicon, phrase_near, among([1, 2, 5]))("school bag")
    assert next(iter(u.parts["kind"])) == "Backpacks" and "Handbags" not in u.parts["kind"]
    # products that point away from what the word means choose nothing
    assert Understander(lexicon, phrase_near, among([3, 4, 1]))("school bag").parts["kind"] == alone


def test_a_kind_takes_in_the_kinds_the_category_paths_file_under_it():
    rows = MARKET + [("Puma Black Watch", "Watches > Men's Watches > Puma Watches", "Puma", 2999.0),
                     ("Guess Steel Watch", "Watches > Women's Watches > Guess Watches", "Guess", 4999.0)]
    facets = load_facets(_market(rows))
    kinds = facets.values["kind"]
    assert {kinds[p]: [kinds[c] for c in cs] for p, cs in facets.narrower.items()} == {"Watches": ["Wrist Watches"]}
    understand = Understander(Lexicon(facets, None, None))
    kind = understand("ladies watches").parts["kind"]
    assert list(kind) == ["Watches", "Wrist Watches"] and kind["Wrist Watches"] > 0.5  # the named one first
    assert understand("wrist watch").parts["kind"] == {"Wrist Watches": 1.0}  # not the broader kind


def test_a_short_word_the_titles_use_for_a_kind_of_that_name_says_that_kind():
    rows = MARKET + [("David Beckham Deo Gold", "Beauty > Fragrances > Deodorants", "David Beckham", 450.0),
                     ("4711 Deodorant Spray", "Beauty > Fragrances > Deodorants", "4711", 300.0),
                     ("Puma Cas Runner", "Footwear > Sports Shoes > Puma Sports Shoes", "Puma", 1999.0),
                     ("Clarks Casual Loafer", "Footwear > Casual Shoes", "Clarks", 2999.0)]
    understand = Understander(Lexicon(load_facets(_market(rows)), None, None))
    u = understand("deo below rs 1000")
    assert u.parts["kind"] == {"Deodorants": 1.0} and u.price == (None, 1000.0) and not u.repairs
    # "cas" starts "casual", but the title that uses it is no Casual Shoes: it says nothing
    assert "Casual Shoes" not in understand("cas").parts.get("kind", {})


def test_a_catalog_without_colours_still_gets_generated_queries_to_learn_from():
    from mmtui.catalog.phrasings import phrased_queries

    queries = phrased_queries(_market(MARKET), "train", "train", limit=None)
    assert queries and all("{" not in q.text for q in queries)
    assert {q.kind for q in queries} >= {"Wrist Watches", "Cookware"}  # the kinds the facets read, shelves folded


def test_a_catalog_without_a_person_column_learns_from_queries_that_name_the_person_its_titles_say():
    from mmtui.catalog.phrasings import phrased_queries

    sofas = [(f"Fabric Sofa {i}", "Furniture > Sofas", "IKEA", 9999.0) for i in range(6)]
    store = _market(MARKET + sofas)  # most products say no person: the watches still do
    queries = phrased_queries(store, "train", "train", limit=None, seed=3)
    watches = [q for q in queries if q.kind == "Wrist Watches"]
    assert {q.person for q in watches if q.person} == {"Men", "Women"}
    women = next(q for q in watches if q.person == "Women")
    assert len(women.relevant) == 2  # the two watches "For Women", not the one "For Men"
    assert all(not q.person for q in queries if q.kind == "Sofas")


def test_every_spacing_of_a_word_searches_alike():
    speller = Speller([["men", "t", "shirt"], ["women", "t", "shirt"], ["kids", "tshirts"], ["boys", "tshirts"]])
    # "tee" is the letter's name; a pair the titles also write as one word searches as that word
    assert speller.repair(["tee", "shirts"])[0] == ["tshirts"]
    variants = [["kids", "t", "shirt"], speller.repair(["kids", "tshirt"])[0], ["kids", "tshirts"]]
    assert {tuple(speller.one_word_forms(v)) for v in variants} == {("kids", "tshirts")}
    assert speller.one_word_forms(["red", "shirt"]) == ["red", "shirt"]


def test_a_kind_on_too_little_evidence_is_left_out(tmp_path):
    s = Store.memory()
    s.upsert_products([{"rowid": i + 1, "id": pid, "title": title, "article_type": kind, "category": "Apparel",
                        "gender": gender, "colour": colour, "brand": brand, "price": price, "split": "train"}
                       for i, (pid, title, kind, gender, colour, brand, price) in enumerate(FASHION)])

    def understand(kind_min, nearest):
        lexicon = Lexicon(load_facets(s), fake_embed, tmp_path / "u", {"kind_min": kind_min})
        return Understander(lexicon, lambda text: nearest)

    backpacks, sneakers = [12, 12, 12], [4, 4, 5]
    # "sneakers" means Casual Shoes to the sentence model; at a bar above that meaning, the nearest products decide
    assert "kind" not in understand(1.5, backpacks)("sneakers").parts  # they disagree: no kind rather than a guess
    assert understand(1.5, sneakers)("sneakers").best("kind") == "Casual Shoes"  # they agree
    assert "Casual Shoes" in understand(0.7, backpacks)("sneakers").parts["kind"]  # a sure meaning stands
    assert understand(1.5, backpacks)("black watches").parts["kind"] == {"Watches": 1.0}  # spelled: kept
