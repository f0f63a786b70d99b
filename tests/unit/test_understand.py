"""Query understanding (mmtui.query.understanding.parse), its ranking step (mmtui.query.understanding.rank) and the phrasings it is measured on."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from mmtui.query.understanding.rank import kind_rowids, match, rerank
from mmtui.catalog.facets import load_facets, singular, words
from mmtui.store.db import Store
from mmtui.query.understanding.parse import Lexicon, Understander, parse_price

# id, title, article_type, gender, colour, brand, price
FASHION = [
    ("1", "Titan Women Black Watch", "Watches", "Women", "Black", "Titan", 80.0),
    ("2", "Fossil Women Silver Watch", "Watches", "Women", "Silver", "Fossil", 120.0),
    ("3", "Casio Men Black Watch", "Watches", "Men", "Black", "Casio", 40.0),
    ("4", "Puma Men Black Sneakers", "Casual Shoes", "Men", "Black", "Puma", 60.0),
    ("5", "Nike Men White Sneakers", "Casual Shoes", "Men", "White", "Nike", 70.0),
    ("6", "Nike Men Black Running Shoes", "Sports Shoes", "Men", "Black", "Nike", 90.0),
    ("7", "Bata Men Black Formal Shoes", "Formal Shoes", "Men", "Black", "Bata", 50.0),
    ("8", "Roadster Men Navy Blue Tee", "Tshirts", "Men", "Navy Blue", "Roadster", 15.0),
    ("9", "Roadster Men Black Tee", "Tshirts", "Men", "Black", "Roadster", 15.0),
    ("10", "Roadster Women Pink Tee", "Tshirts", "Women", "Pink", "Roadster", 12.0),
    ("11", "Vero Moda Women Black Dress", "Dresses", "Women", "Black", "Vero Moda", 45.0),
    ("12", "Wildcraft Unisex Black Backpack", "Backpacks", "Unisex", "Black", "Wildcraft", 35.0),
    ("13", "Puma Men Black Socks", "Socks", "Men", "Black", "Puma", 5.0),
    ("14", "Nike Men Navy Blue Track Pants", "Track Pants", "Men", "Navy Blue", "Nike", 30.0),
    ("15", "Levis Men Blue Jeans", "Jeans", "Men", "Blue", "Levis", 55.0),
]

# A stand-in for the sentence model: words it "knows" are near their meaning, everything else is a random direction.
MEANS = {"ladies": "women", "lady": "women", "sneaker": "casual shoes", "sneakers": "casual shoes",
         "joggers": "track pants", "jogger": "track pants"}


def fake_embed(phrases):
    out = []
    for p in phrases:
        p = MEANS.get(p, p)
        seed = int(hashlib.md5(p.encode()).hexdigest()[:8], 16)
        out.append(np.random.default_rng(seed).standard_normal(64))
    x = np.array(out, np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def store():
    s = Store.memory()
    s.upsert_products([{"rowid": i + 1, "id": pid, "title": title, "article_type": kind, "category": "Apparel",
                        "gender": gender, "colour": colour, "brand": brand, "price": price, "split": "train"}
                       for i, (pid, title, kind, gender, colour, brand, price) in enumerate(FASHION)])
    return s


@pytest.fixture
def understand(store, tmp_path):
    lexicon = Lexicon(load_facets(store), fake_embed, tmp_path / "understand")
    return Understander(lexicon)


def test_words_and_singulars():
    assert words("Men's NAVY t-shirts") == ["men", "navy", "t", "shirts"]
    assert [singular(w) for w in ("watches", "dresses", "accessories", "jeans", "glass", "tops")] == \
        ["watch", "dress", "accessory", "jean", "glass", "top"]


def test_the_catalogs_own_words_are_understood(understand):
    u = understand("black watches for women")
    assert u.best("kind") == "Watches" and u.best("person") == "Women" and u.best("colour") == "Black"
    assert u.label() == "kind: Watches · for: Women · colour: Black"
    u = understand("men's casual shoes")  # possessive; "casual" + "shoes" beat "shoes" alone
    assert u.best("person") == "Men" and list(u.parts["kind"])[0] == "Casual Shoes"
    assert u.parts["kind"]["Casual Shoes"] == 1.0 and u.parts["kind"].get("Sports Shoes", 0) < 0.5
    assert understand("t-shirt navy").best("kind") == "Tshirts"  # joined spelling
    assert understand("navy tshirts").best("colour") == "Navy Blue"  # one word of the value


def test_neighbours_in_the_sentence_space_reach_other_words(understand):
    u = understand("ladies black sneakers")
    assert u.best("person") == "Women" and u.best("kind") == "Casual Shoes"
    assert u.words["person"] == ["ladies"]
    assert understand("joggers").best("kind") == "Track Pants"


def test_words_used_in_titles_of_one_kind_lean_to_it(store, tmp_path):
    understand = Understander(Lexicon(load_facets(store), None, None))  # no sentence model at all
    assert understand("black tee").best("kind") == "Tshirts"  # "tee": three titles, all Tshirts
    assert understand("something nice").parts == {}


def test_a_query_naming_nothing_keeps_no_parts(understand):
    u = understand("gift ideas")
    assert "kind" not in u.parts and u.price is None


def test_price_phrases_become_a_range_and_leave_the_text():
    prices = np.array([5.0, 12, 15, 15, 30, 35, 40, 45, 50, 55, 60, 70, 80, 90, 120])
    assert parse_price("black watches under 50", prices)[:2] == ("black watches", (None, 50.0))
    assert parse_price("dress over $30", prices)[:2] == ("dress", (30.0, None))
    assert parse_price("shoes between 20 and 60", prices)[:2] == ("shoes", (20.0, 60.0))
    text, price, said = parse_price("cheap watches", prices)
    assert text == "watches" and price[0] is None and price[1] == pytest.approx(np.quantile(prices, 1 / 3), abs=0.01)
    assert parse_price("cheap watches", None)[:2] == ("cheap watches", None)  # no prices: nothing to compare


def test_word_vectors_are_cached_in_the_data_dir(store, tmp_path):
    calls = []

    def counting(phrases):
        calls.append(list(phrases))
        return fake_embed(phrases)

    Lexicon(load_facets(store), counting, tmp_path / "u")
    assert calls and (tmp_path / "u").is_dir()
    calls.clear()
    again = Lexicon(load_facets(store), counting, tmp_path / "u")
    assert calls == []  # everything came from the cache
    again.vector("ladies")
    assert calls == [["ladies"]]  # a word the catalog never uses is encoded once, when asked


def test_generic_catalogs_take_the_kind_from_the_category(tmp_path):
    s = Store.memory()
    rows = [("a", "Fruit > Apple", "Red"), ("b", "Fruit > Apple", "Green"), ("c", "Fruit > Pear", "Green"),
            ("d", "Vegetable > Carrot", "Orange")]
    s.upsert_products([{"rowid": i + 1, "id": pid, "title": f"{colour} {cat.split('>')[-1].strip()}",
                        "category": cat, "colour": colour} for i, (pid, cat, colour) in enumerate(rows)])
    facets = load_facets(s)
    assert facets.values["kind"] == ["Apple", "Carrot", "Pear"] and "person" not in facets.codes
    u = Understander(Lexicon(facets, None, None))("green apples")
    assert u.best("kind") == "Apple" and u.best("colour") == "Green"
    assert u.filter_for("kind", "Apple").sql() == ("category LIKE ? COLLATE NOCASE", ["%Apple%"])


def test_the_ranking_puts_kind_and_person_before_colour(store, understand):
    facets = load_facets(store)
    u = understand("ladies black watches")
    # candidates as a colour-led search would rank them: black products of other kinds first
    order = [13, 4, 11, 3, 12, 1, 2]  # socks, sneakers, dress, men's watch, unisex backpack, women's watches
    merged = [(r, 1.0 / (60 + i), {}, {}) for i, r in enumerate(order, start=1)]
    ranked = [r for r, *_ in rerank(merged, facets, u, {"kind": 1.0, "person": 0.6, "colour": 0.3}, 1 / 61)]
    assert ranked[:2] == [1, 2]  # women's watches: the black one, then the silver one
    assert ranked[2] == 3  # a men's watch still beats black products of other kinds
    fits = match(facets, u, np.array([12, 1]))
    assert fits["person"][0] == pytest.approx(0.5)  # unisex half-matches a query for women
    assert set(kind_rowids(facets, u).tolist()) == {1, 2}


def test_phrasings_for_training_and_for_measuring_are_apart(store):
    from mmtui.catalog.phrasings import HELDOUT_PERSON, HELDOUT_TEMPLATES, TRAIN_TEMPLATES, phrased_queries

    assert not set(TRAIN_TEMPLATES) & set(HELDOUT_TEMPLATES)
    held = phrased_queries(store, "train", "heldout", limit=None)
    train = phrased_queries(store, "train", "train", limit=None)
    assert held and train and not {q.text for q in held} & {q.text for q in train}
    watch = next(q for q in held if q.kind == "Watches" and q.person == "Women" and q.colour == "Black")
    assert "watch" in watch.text and any(w in watch.text.split() for w in HELDOUT_PERSON["women"])
    assert watch.relevant == {"1": 2, "2": 1}  # right kind and person; 2 = and the colour
    backpack = next(q for q in held if q.kind == "Backpacks")
    assert backpack.relevant == {"12": 2}
    men_watch = next(q for q in train if q.kind == "Watches" and q.colour == "Black" and q.person == "Men")
    assert men_watch.relevant == {"3": 2}


def test_a_value_word_keeps_the_longer_values_it_is_part_of():
    s = Store.memory()
    rows = [("a", "BISSA Shoe cabinet, white", "Shoe cabinet", "White"), ("b", "IVAR Cabinet, pine", "Cabinet", "Pine"),
            ("c", "HEMNES Shoe rack, black", "Shoe rack", "Black")]
    s.upsert_products([{"rowid": i + 1, "id": pid, "title": title, "category": cat, "colour": colour}
                       for i, (pid, title, cat, colour) in enumerate(rows)])
    understand = Understander(Lexicon(load_facets(s), None, None))
    assert list(understand("white shoe cabinet").parts["kind"])[0] == "Shoe cabinet"
    assert understand("cabinet").parts["kind"] == {"Cabinet": 1.0}


def test_a_query_spells_a_title_when_four_or_more_of_its_words_are_all_in_it():
    from mmtui.query.understanding.rank import spells_title

    assert spells_title("navy blue shirt for men", "Belmonte Men Check Navy Blue Shirts")
    assert not spells_title("blue shirt for men", "Belmonte Men Check Navy Blue Shirts")  # 3 words: a kind query
    assert not spells_title("navy blue shirt for women", "Belmonte Men Check Navy Blue Shirts")


def test_a_damaged_word_cache_is_made_again_not_an_error(store, tmp_path):
    """A truncated DATA_DIR/understand/*.npz (a full disk, a killed process) ended text and hybrid searches in a
    BadZipFile traceback: now its words are encoded again and the file rewritten."""
    Lexicon(load_facets(store), fake_embed, tmp_path / "understand")
    [cache] = (tmp_path / "understand").glob("words-*.npz")
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])
    calls = []
    again = Lexicon(load_facets(store), lambda p: calls.append(list(p)) or fake_embed(p), tmp_path / "understand")
    assert calls and again.vector("watch") is not None
    with np.load(cache) as data:  # rewritten whole
        assert len(data["words"]) == len(data["vectors"]) > 0


def test_product_texts_are_packed_and_read_like_a_dict():
    from mmtui.catalog.facets import Texts

    given = {7: "Navy shirt", 2: "Café mug ☕", 40: "", 11: "日本 製"}
    texts = Texts(given.items())
    assert dict(texts.items()) == given and len(texts) == 4
    assert list(texts) == [2, 7, 11, 40] and texts.values() == [given[r] for r in (2, 7, 11, 40)]
    assert texts[11] == "日本 製" and texts.get(40) == "" and texts.get(3) is None and 3 not in texts
    assert texts.get(99, "none") == "none" and len(Texts()) == 0 and Texts().get(1) is None
