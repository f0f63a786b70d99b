"""Result facets, sorting and variants (mmtui.query.arrange), alone and through SearchService on tiny_catalog."""

from __future__ import annotations

import pytest

from mmtui.errors import QueryError
from mmtui.query.results import Hit
from mmtui.query.arrange import (band_label, collapse_variants, colour_words, count_facets, price_bands, sort_hits,
                                 variant_key)


def _hit(pid, title, colour="", price=None, gender="", category="", rank=1):
    return Hit(id=pid, title=title, score=1.0, rank=rank, colour=colour, price=price, gender=gender,
               category=category)


HITS = [_hit("a", "Red Shirt", "Red", 10, "Men", "Apparel > Shirt", 1),
        _hit("b", "Blue Shirt", "Blue", 40, "Men", "Apparel > Shirt", 2),
        _hit("c", "Red Dress", "Red", None, "Women", "Apparel > Dress", 3),
        _hit("d", "Red Shoes", "Red", 25, "Men", "Footwear > Shoes", 4)]


def test_facets_count_the_results_and_keep_their_ids():
    facets = count_facets(HITS)
    colour = {v.value: v.count for v in facets.facets["colour"]}
    assert colour == {"Red": 3, "Blue": 1} and facets.facets["colour"][0].value == "Red"
    assert {v.value: v.count for v in facets.facets["kind"]} == {"Shirt": 2, "Dress": 1, "Shoes": 1}
    assert {v.value: v.count for v in facets.facets["person"]} == {"Men": 3, "Women": 1}
    assert sum(v.count for v in facets.facets["price"]) == 3  # the dress has no price
    assert [h.id for h in facets.only(HITS, {"colour": "Red", "person": "Men"})] == ["a", "d"]
    assert [h.rank for h in facets.only(HITS, {"colour": "Red"})] == [1, 2, 3]
    assert count_facets(HITS, top=2).counted == 2 and "brand" not in facets.facets
    assert facets.to_json()["colour"][0] == {"value": "Red", "count": 3}


def test_price_bands_cover_every_price_with_round_edges():
    prices = [3, 7, 12, 19, 25, 33, 48, 51, 77, 99, 120, 480]
    bands = price_bands(prices)
    assert bands[0][0] is None and bands[-1][1] is None and len(bands) >= 3
    for p in prices:
        assert sum(1 for lo, hi in bands if (lo is None or p >= lo) and (hi is None or p < hi)) == 1
    assert all(float(f"{e:.2g}") == e for lo, hi in bands for e in (lo, hi) if e is not None)
    assert price_bands([]) == [] and band_label(None, 50) == "< 50" and band_label(50, None) == "50+"


def test_sort_by_price_both_ways_with_unpriced_last():
    assert [h.id for h in sort_hits(HITS, "price")] == ["a", "d", "b", "c"]
    assert [h.id for h in sort_hits(HITS, "-price")] == ["b", "d", "a", "c"]
    assert [h.rank for h in sort_hits(HITS, "price")] == [1, 2, 3, 4]
    assert sort_hits(HITS, "relevance") == HITS
    with pytest.raises(QueryError):
        sort_hits(HITS, "cheapest")


def test_variants_are_titles_equal_up_to_colour_and_size_words():
    colours = colour_words(["Navy Blue", "Red", "White"])
    key = variant_key("Nike Men Navy Blue Tshirt, Size M", colours, "Tshirts")
    assert key == variant_key("Nike Men Red Tshirt", colours, "Tshirts") == variant_key("Nike Men White Tshirt XL",
                                                                                          colours, "Tshirts")
    assert key != variant_key("Nike Men Red Tshirt", colours, "Shirts")  # another kind
    assert variant_key("Nike Air Max 90 Red", colours) != variant_key("Nike Air Max 95 Red", colours)
    hits = [_hit("1", "Nike Red Tee", "Red", rank=1), _hit("2", "Puma Cap", rank=2),
            _hit("3", "Nike White Tee", "White", rank=3), _hit("4", "Nike Navy Blue Tee", "Navy Blue", rank=4)]
    rows = collapse_variants(hits, {h.id: variant_key(h.title, colours) for h in hits})
    assert [r.hit.id for r in rows] == ["1", "2"] and [r.hit.rank for r in rows] == [1, 2]
    assert rows[0].label == "+2 colours" and rows[1].label == ""
    assert [v["id"] for v in rows[0].to_json()["variants"]] == ["3", "4"]


# -- through the service and the CLI on tiny_catalog (4 colours x Shirt/Shoes/Dress, price 10 * n) ----------------
@pytest.fixture
def service(tiny_catalog, fake_settings):
    from mmtui.build.pipeline import build_index
    from mmtui.encoders import FakeEncoder
    from mmtui.query.service import SearchService

    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    return SearchService.open(fake_settings, encoder=FakeEncoder())


def test_service_counts_the_catalogs_kinds_over_the_results(service):
    hits = service.search("shirt", k=13, mode="lexical").hits
    facets = service.result_facets(hits)
    kinds = {v.value: v.count for v in facets.facets["kind"]}
    assert kinds.get("Shirt") == 4 and sum(kinds.values()) == len(hits)
    assert sum(v.count for v in facets.facets["price"]) == len(hits)
    keys = service.variant_keys(hits)
    shirts = {keys[h.id] for h in hits if "Shirt" in h.title}
    assert len(shirts) == 1  # "Red Shirt for men", "Blue Shirt for men", ...: one product in four colours
    rows = service.collapse(hits)
    assert rows[0].label == "+3 colours"


def test_cli_facets_sort_and_collapse(tiny_catalog, tmp_path):
    import json

    from click.testing import CliRunner

    from mmtui.cli.main import cli

    d = str(tmp_path / "cli-index")
    assert CliRunner().invoke(cli, ["build-index", str(tiny_catalog), "--data-dir", d, "--model", "fake"]).exit_code == 0
    run = lambda *a: CliRunner().invoke(cli, ["search", *a, "--data-dir", d, "--mode", "lexical"])
    out = json.loads(run("for men", "--facets", "--sort", "price", "-k", "5", "--json").output)
    assert out["facets"]["counted"] >= 5 and {"kind", "colour", "price"} <= set(out["facets"])
    prices = [h["price"] for h in out["hits"]]
    assert prices == sorted(prices) and len(prices) == 5 and "variants" not in out["hits"][0]
    out = json.loads(run("for men", "--collapse", "--json").output)
    assert any(len(h["variants"]) == 3 for h in out["hits"])
    text = run("for men", "--facets", "--collapse").output
    assert "+3" in text and "facets of the top" in text


def test_sorting_by_price_a_catalog_without_prices_says_so(tmp_path):
    import json

    from click.testing import CliRunner

    from mmtui.cli.main import cli

    catalog = tmp_path / "shop.csv"
    catalog.write_text("id,title\n1,Red shirt\n2,Blue shirt\n3,Green shirt\n")
    d = str(tmp_path / "no-prices")
    assert CliRunner().invoke(cli, ["build-index", str(catalog), "--data-dir", d, "--model", "fake"]).exit_code == 0
    out = json.loads(CliRunner().invoke(cli, ["search", "shirt", "--sort", "price", "--mode", "lexical", "--json",
                                              "--data-dir", d]).output)
    assert len(out["hits"]) == 3 and any("none of these products has a price" in n for n in out["notes"])
