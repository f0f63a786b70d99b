"""Compound queries (mmtui.query.compound): the parser's properties (hypothesis) and, on tiny_catalog built with the
fake model, that the parts change the ranking the way they say (a negative's products drop)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mmtui.errors import QueryError
from mmtui.query.compound import CUES, IMAGE, LIKE, TEXT, Part, parse_compound

EXAMPLES = 500
ROUND_TRIPS = 150  # each writes and reads back up to four parts: the slowest property


def _settings(n: int = EXAMPLES):
    return settings(max_examples=n, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


ANY = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
WORD = st.from_regex(r"[a-z][a-z0-9]{0,9}", fullmatch=True).filter(
    lambda w: w not in CUES and w not in {"cheaper", "pricier", "dearer", "costlier"})
PLAIN = st.lists(WORD, min_size=1, max_size=6).map(" ".join)
PART = st.builds(
    Part,
    kind=st.sampled_from([TEXT, TEXT, IMAGE, LIKE]),
    value=PLAIN,
    weight=st.sampled_from([1.0, 2.0, 0.5, 3.0]),
    negative=st.booleans())


def _fix(part: Part) -> Part:
    """A part as a user could write it: an image part's value a path, a product part's value an id."""
    if part.kind == IMAGE:
        return Part(IMAGE, "./" + part.value.replace(" ", "_") + ".jpg", part.weight, part.negative)
    if part.kind == LIKE:
        return Part(LIKE, part.value.replace(" ", ""), part.weight, part.negative)
    return part


def _key(p: Part) -> tuple:
    return p.kind, p.value, p.weight, p.negative


@_settings()
@given(ANY)
def test_any_string_parses_without_crashing(text):
    compound = parse_compound(text)
    assert all(p.value for p in compound.parts)
    assert all(p.kind in (TEXT, IMAGE, LIKE) and p.weight > 0 for p in compound.parts)
    again = parse_compound(compound.syntax()) if compound.parts else None
    assert again is None or len(again.parts) >= 1


@_settings(300)
@given(PLAIN)
def test_a_plain_query_is_one_text_part_as_typed(text):
    compound = parse_compound(text)
    assert compound.simple
    assert compound.parts == (Part(TEXT, text),)


@_settings(ROUND_TRIPS)
@given(st.lists(PART.map(_fix), min_size=1, max_size=4))
def test_written_parts_read_back_the_same(parts):
    parts = [p for p in parts]
    if parts[0].negative:  # a query starts with something to look for
        parts[0] = Part(parts[0].kind, parts[0].value, parts[0].weight, False)
    # two text parts in a row with the same sign are one segment each; written with operators they stay apart
    written = parse_compound("").with_parts(parts).syntax()
    again = parse_compound(written, lambda words, said: False)
    assert [_key(p) for p in again.parts] == [_key(p) for p in parts], written


def test_the_examples_of_the_issue():
    c = parse_compound('"summer dress" + like:12345 - floral')
    assert [_key(p) for p in c.parts] == [(TEXT, "summer dress", 1.0, False), (LIKE, "12345", 1.0, False),
                                          (TEXT, "floral", 1.0, True)]
    c = parse_compound("2:red + ./photo.jpg")
    assert [_key(p) for p in c.parts] == [(TEXT, "red", 2.0, False), (IMAGE, "./photo.jpg", 1.0, False)]
    assert [p["kind"] for p in c.to_json()] == ["text", "image"] and c.to_json()[0]["weight"] == 2.0


def test_words_that_only_look_like_operators_stay_words():
    for text in ("t-shirt for men", "kids 2 - 3 years", "black+white shoes", "1:1 scale model"):
        assert parse_compound(text).simple, text


def test_plain_word_negatives_only_when_the_catalog_has_the_word():
    has = {"laces", "leather"}
    supported = lambda words, said: any(w in has for w in words.split())
    c = parse_compound("running shoes without laces", supported)
    assert [_key(p) for p in c.parts] == [(TEXT, "running shoes", 1.0, False), (TEXT, "laces", 1.0, True)]
    assert c.parts[1].source == "words"
    c = parse_compound("black boots, not leather", supported)
    assert [_key(p) for p in c.parts][1] == (TEXT, "leather", 1.0, True)
    c = parse_compound("a bag without sequins", supported)  # the catalog has no sequins: left as words
    assert c.simple and c.parts[0].value == "a bag without sequins" and c.kept == ("without sequins",)
    c = parse_compound("shoes not too expensive", supported)  # a negated price word is its opposite
    assert not c.negatives and "cheap" in c.parts[0].value


def test_cheaper_next_to_a_product_is_a_relative_price():
    c = parse_compound("like:7 cheaper")
    assert c.relative_price == "below" and [_key(p) for p in c.parts] == [(LIKE, "7", 1.0, False)]
    assert parse_compound("like:7 + more expensive in red").relative_price == "above"
    assert parse_compound("cheaper than 500 shoes").relative_price is None


# -- searching: tiny_catalog (4 colours x Shirt/Shoes/Dress, price 10 * n) with the fake model --------------------
@pytest.fixture
def service(tiny_catalog, fake_settings):
    from mmtui.build.pipeline import build_index
    from mmtui.encoders import FakeEncoder
    from mmtui.query.service import SearchService

    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    return SearchService.open(fake_settings, encoder=FakeEncoder())


def _rank(hits, title_word: str) -> float:
    ranks = [h.rank for h in hits if title_word in h.title.lower()]
    return sum(ranks) / len(ranks)


@pytest.mark.parametrize("mode", ["hybrid", "text", "image", "fused", "lexical"])
def test_a_negative_lowers_the_rank_of_products_that_have_it(service, mode):
    before = service.search("shirt", k=13, mode=mode, compound=True).hits
    after = service.search("shirt - red", k=13, mode=mode, compound=True)
    assert [p["sign"] for p in after.parts.to_json()] == ["+", "-"]
    assert _rank(after.hits, "red") > _rank(before, "red")


def test_plain_words_not_red_are_a_negative_on_this_catalog(service):
    result = service.search("shirt not red", k=13, compound=True)
    assert [(p["kind"], p["value"], p["sign"]) for p in result.parts.to_json()] == [
        ("text", "shirt", "+"), ("text", "red", "-")]
    assert "red" not in result.hits[0].title.lower()


def test_a_like_part_keeps_the_products_kind_and_cheaper_is_below_its_price(service):
    result = service.search("like:12 + cheaper", k=13, compound=True)  # 12: Black Dress, price 120
    assert result.hits and all(h.price < 120 for h in result.hits)
    assert "12" not in [h.id for h in result.hits]
    dearer = service.search("like:1 more expensive", k=13, compound=True)  # 1: Red Shirt, price 10
    assert dearer.hits and all(h.price > 10 for h in dearer.hits)


def test_an_unknown_product_and_only_negatives_are_clear_errors(service):
    with pytest.raises(QueryError, match="no product"):
        service.search("shirt + like:nope", compound=True)
    with pytest.raises(QueryError, match="leave out"):
        service.search("- red", compound=True)


def test_a_plain_query_searches_as_before(service):
    plain = service.search("red shirt", k=5)
    compound = service.search("red shirt", k=5, compound=True)
    assert [h.id for h in plain.hits] == [h.id for h in compound.hits]
    assert compound.to_json()["parts"] == [{"sign": "+", "kind": "text", "value": "red shirt", "weight": 1.0,
                                            "source": "syntax", "said": "red shirt"}]


def test_a_refinement_of_a_product_reads_its_negation_though_no_other_words_are_left():
    c = parse_compound("like:7 + without the logo")
    assert [_key(p) for p in c.parts] == [(LIKE, "7", 1.0, False), (TEXT, "logo", 1.0, True)]
    assert parse_compound("no show socks").simple  # alone, a negation is something to look for


def test_a_recommendation_ranks_only_the_products_given(service):
    pool = ["1", "2", "3", "4", "5", "6"]
    result = service.search("like:1 + like:4 - like:2", k=13, compound=True, within=pool)
    ids = [h.id for h in result.hits]
    assert set(ids) <= set(pool) - {"1", "4", "2"} and ids
