"""The understanding's weight learner (mmtui.train.weights.understanding.choose_weights) on synthetic queries."""

import numpy as np

from mmtui.train.weights import understanding as U


def _query(hybrid, kind_list, kind_fit, relevant):
    gains = np.array([1.0 if r else 0.0 for r in relevant])
    return U._Parts(hybrid=np.array(hybrid), kind_list=np.array(kind_list), fits={"kind": np.array(kind_fit)},
                    gains=gains, ideal=1.0, relevant=gains > 0, hybrid_total=1.0)


def _sets(n_titles=20, n_moved=3):
    # titles: the hybrid ranking finds the product; the kind list lists another product of the same kind first,
    # which overtakes it once the list weighs more than 0.4 (n_moved titles of n_titles)
    moved = [_query([1 / 61, 0.6 / 61], [0.0, 1 / 61], [1.0, 1.0], [True, False]) for _ in range(n_moved)]
    kept = [_query([1 / 61, 0.2 / 61], [0.0, 0.0], [1.0, 1.0], [True, False]) for _ in range(n_titles - n_moved)]
    # shopper queries: the product of the kind asked for is second by hybrid alone
    shopper = [_query([0.9 / 61, 1 / 61], [0.0, 0.0], [1.0, 0.0], [True, False]) for _ in range(10)]
    return {"shopper": shopper, "title": moved + kept}


def test_a_light_kind_list_is_learned_where_a_heavy_one_costs_titles():
    # the market catalog's case: every list weight >= 0.5 cost titles more than TITLE_SLACK, and the grid had
    # nothing lighter, so the understanding was switched off though it lifts shopper queries
    train, val = _sets(), _sets()
    assert U._score(train, {**U.OFF, "list": 0.5})["title"] < U._score(train, U.OFF)["title"] - U.TITLE_SLACK
    w, s, v = U.choose_weights(train, val)
    assert w["kind"] > 0 and w["list"] < 0.5
    assert v["shopper"] == 1.0 and v["title"] >= U._score(val, U.OFF)["title"] - U.TITLE_SLACK


def test_nothing_qualifies_the_understanding_weighs_nothing():
    # a kind bonus of any size moves every title: the hybrid ranking alone is kept
    bad = {"shopper": _sets()["shopper"],
           "title": [_query([1 / 61, 0.99 / 61], [0.0, 0.0], [0.0, 1.0], [True, False]) for _ in range(5)]}
    w, _, _ = U.choose_weights(bad, bad)
    assert w == U.OFF


def test_training_queries_that_do_not_spell_their_kind():
    from mmtui.catalog.facets import load_facets
    from mmtui.store.db import Store

    from test_understand import FASHION

    s = Store.memory()
    s.upsert_products([{"rowid": i + 1, "id": pid, "title": title, "article_type": kind, "category": "Apparel",
                        "gender": gender, "colour": colour, "brand": brand, "price": price, "split": "train"}
                       for i, (pid, title, kind, gender, colour, brand, price) in enumerate(FASHION)])
    facets = load_facets(s)
    queries = U.unspelled_queries(facets, range(1, len(FASHION) + 1), 100, 0)
    texts = {t: facets.values["kind"][code] for t, code, _ in queries}
    assert texts["nike men black running"] == "Sports Shoes"  # "Nike Men Black Running Shoes" less its kind's words
    assert "shoes" not in " ".join(texts) and "watch" not in " ".join(texts)
    assert not any(t.startswith("puma men black sneakers") for t in texts)  # "Sneakers" never said "Casual Shoes"


def test_the_retrieved_kinds_weight_is_the_best_scoring_and_the_lightest_of_equals():
    assert U.choose_near(lambda w: {0.0: 0.1, 0.25: 0.3, 0.5: 0.4, 1.0: 0.4, 2.0: 0.2}[w])[0] == 0.5
    assert U.choose_near(lambda w: -w)[0] == 0.0  # the neighbours only mislead: they weigh nothing
    assert U.choose_near(lambda w: 0.2, keep=1.0)[0] == 1.0  # no weight tells apart: the one in use stays
