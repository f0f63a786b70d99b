"""Property-based tests (hypothesis) of the input parsers: the catalog readers (CSV, JSONL), the price parser,
the filter parser and the eval-file parser. The number of generated inputs each property tries is its
max_examples (listed in README's "Reliability" section); derandomize=True makes every run try the same inputs."""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mmtui.catalog.readers import read_catalog
from mmtui.catalog.readers import parse_price
from mmtui.errors import QueryError
from mmtui.evaluation.evaluate import EvalQuery, MAX_GRADE, SKIP_BAD_GRADE, Skip, parse_query_line
from mmtui.store.filters import FIELDS, OPERATORS, Filter, parse_where, where_sql

# max_examples per property: the README quotes these numbers
CSV_EXAMPLES = 1000
JSONL_EXAMPLES = 1000
PRICE_EXAMPLES = 2000
FILTER_EXAMPLES = 2000
EVAL_EXAMPLES = 2000


def _settings(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# Text of any character but a bare carriage return (a CR in an unquoted field is a rejected row, by design: the
# csv module cannot tell it from a line end) and surrogates (not encodable).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=20)
TITLE = TEXT.filter(lambda s: s.strip() != "")


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# -- CSV ---------------------------------------------------------------------------------------------------

def _not_a_row_inside(value: str) -> bool:
    """The one ambiguity the reader resolves against the value (see readers.py): a later line of a multi-line
    value that could be a row of its own (3 commas here, as the header) is taken for a swallowed row."""
    return all(line.count(",") < 3 for line in value.split("\n")[1:])


ROW = st.tuples(TITLE.filter(_not_a_row_inside), TEXT.filter(_not_a_row_inside),
                st.sampled_from(["12.50", "1,299.00", "abc", "", "1e309", "7"]))


@_settings(CSV_EXAMPLES)
@given(rows=st.lists(ROW, min_size=1, max_size=12),
       broken=st.sets(st.integers(min_value=0, max_value=11), max_size=3),
       quote_all=st.booleans(), blank_every=st.integers(min_value=0, max_value=4))
def test_csv_every_row_is_indexed_or_rejected_at_its_own_row(workdir, rows, broken, quote_all, blank_every):
    """Written by csv.writer (newlines, quotes, commas inside fields), with some rows replaced by a line holding
    an unclosed quote and some blank lines: every row is a product with exactly its values, at its own row, or
    (only a broken one) a bad_row reject at its own row. Nothing is lost or shifted."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(["id", "title", "description", "price"])
    starts: dict[str, int] = {}  # id -> the row (line after the header) it starts on
    for i, (title, description, price) in enumerate(rows):
        if blank_every and i % blank_every == 0:
            out.write("\n")
        starts[f"id{i}"] = out.getvalue().count("\n")
        if i in broken:
            # text after the stray quote: a quote followed by a comma would be a clean closing quote for an earlier
            # stray one, and two such rows together are one valid record (the ambiguity no reader can resolve)
            flat = title.replace('"', "").replace("\n", " ").replace(",", " ") or "x"
            out.write(f'id{i},"{flat},no closing quote,{price}\n')
        else:
            writer.writerow([f"id{i}", title, description, price])
    path = workdir / "p.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    data = read_catalog(path)

    products = {p.id: p for p in data.products}
    dropped = {r.product_id: r for r in data.rejects if not r.kept}
    assert len(products) + len(dropped) == len(rows)
    for i, (title, description, price) in enumerate(rows):
        pid = f"id{i}"
        if i in broken:
            assert pid in dropped and (dropped[pid].reason, dropped[pid].row) == ("bad_row", starts[pid])
            continue
        p = products[pid]
        assert (p.title, p.description, p.row) == (title.strip(), description.strip(), starts[pid])
        assert p.price == parse_price(price) if price else p.price is None
    assert [p.row for p in data.products] == sorted(p.row for p in data.products)  # file order


# -- JSONL -------------------------------------------------------------------------------------------------

JSON_LINE = st.one_of(
    st.builds(lambda t, pr: {"title": t, "price": pr}, TITLE, st.one_of(st.none(), st.floats(), st.integers(), TEXT)),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n"), max_size=30),  # any garbage
    st.sampled_from(["[1, 2]", "{}", '{"id": 5}', "null", '{"id": "x", "id": "y", "title": "t"}', "{" * 50]),
)


@_settings(JSONL_EXAMPLES)
@given(lines=st.lists(JSON_LINE, min_size=1, max_size=12))
def test_jsonl_every_line_is_indexed_or_rejected_at_its_own_line(workdir, lines):
    text_lines = []
    expected: dict[str, tuple[int, str]] = {}
    for n, item in enumerate(lines, start=1):
        if isinstance(item, dict):
            pid = f"id{n}"  # unique ids: the first-of-a-duplicate rule is tested elsewhere
            expected[pid] = (n, item["title"].strip())
            text_lines.append(json.dumps({"id": pid, **item}, ensure_ascii=bool(n % 2)))
        else:
            text_lines.append(item)
    path = workdir / "p.jsonl"
    path.write_text("\n".join(text_lines) + "\n", encoding="utf-8")
    data = read_catalog(path)

    content = {n for n, line in enumerate(text_lines, start=1) if line.strip()}
    rows = [p.row for p in data.products] + [r.row for r in data.rejects if not r.kept]
    assert sorted(rows) == sorted(content)  # each non-blank line exactly once
    by_id = {p.id: p for p in data.products}
    for pid, (row, title) in expected.items():
        assert (by_id[pid].row, by_id[pid].title) == (row, title)
    for p in data.products:
        assert p.price is None or (math.isfinite(p.price) and p.price >= 0)


# -- prices ------------------------------------------------------------------------------------------------

@_settings(PRICE_EXAMPLES)
@given(raw=st.text(max_size=25))
def test_price_parser_never_raises_and_never_returns_a_non_price(raw):
    value = parse_price(raw)
    assert value is None or (isinstance(value, float) and math.isfinite(value) and value >= 0)


CURRENCY = st.sampled_from(["", "$", "€ ", "£", " EUR", " USD", "Rs. "])


@_settings(PRICE_EXAMPLES)
@given(cents=st.integers(min_value=0, max_value=10**13), style=st.sampled_from(["plain", "commas", "dots"]),
       currency=CURRENCY, before=st.booleans())
def test_price_parser_reads_every_accepted_form_exactly(cents, style, currency, before):
    amount = Decimal(cents) / 100
    if style == "plain":
        number = f"{amount:.2f}"
    elif style == "commas":
        number = f"{amount:,.2f}"
    else:  # 1.299,50
        number = f"{amount:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")
    raw = (currency.strip() + number) if before else (number + currency)  # "12,50" under 1000: a decimal comma
    assert parse_price(raw) == float(amount), raw


@_settings(PRICE_EXAMPLES)
@given(mantissa=st.integers(min_value=1, max_value=999), exponent=st.integers(min_value=-999, max_value=999))
def test_price_exponents_are_exact_or_missing(mantissa, exponent):
    value = parse_price(f"{mantissa}e{exponent}")
    exact = Decimal(mantissa).scaleb(exponent)
    expected = float(exact)
    if math.isinf(expected) or expected == 0.0:
        assert value is None
    else:
        assert value == expected


# -- filters -----------------------------------------------------------------------------------------------

@_settings(FILTER_EXAMPLES)
@given(expr=st.text(max_size=30))
def test_filter_parser_returns_a_filter_or_a_query_error(expr):
    try:
        f = parse_where(expr)
    except QueryError as e:
        assert e.message and e.hint
        return
    assert isinstance(f, Filter) and f.field in FIELDS and f.op in OPERATORS
    assert f.value != "" and (not isinstance(f.value, float) or math.isfinite(f.value))
    clause, params = where_sql([f])
    assert clause.count("?") == len(params) == 1


TEXT_FIELDS = sorted(name for name, (_, kind) in FIELDS.items() if kind is str)
VALUE = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Cc")), min_size=1, max_size=15).filter(
    lambda v: v[0] not in "=<>!~\"'" and v.strip() == v)


@_settings(FILTER_EXAMPLES)
@given(field=st.sampled_from(TEXT_FIELDS), op=st.sampled_from(["=", "!=", "~"]), value=VALUE,
       number=st.floats(allow_nan=False, allow_infinity=False),
       num_op=st.sampled_from(["<", "<=", ">", ">=", "=", "!="]))
def test_well_formed_filters_round_trip(field, op, value, number, num_op):
    f = parse_where(f"{field}{op}{value}")
    assert (f.field, f.op, f.value) == (FIELDS[field][0] if field == "color" else field, op, value)
    g = parse_where(f"price{num_op}{number!r}")
    assert (g.field, g.op, g.value) == ("price", num_op, number)


# -- eval files --------------------------------------------------------------------------------------------

JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                          lambda inner: (st.lists(inner, max_size=3)
                                         | st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                          max_leaves=8)


@_settings(EVAL_EXAMPLES)
@given(line=st.one_of(st.text(max_size=60),
                      st.builds(json.dumps, st.dictionaries(st.sampled_from(["query", "image", "relevant", "x"]),
                                                            JSON_VALUE, max_size=3))))
def test_eval_line_parser_returns_a_query_or_a_skip(line):
    result = parse_query_line(line, 1, None)
    assert isinstance(result, (EvalQuery, Skip))
    if isinstance(result, EvalQuery):
        assert result.relevant and all(0 <= g <= MAX_GRADE for g in result.relevant.values())
        assert any(g >= 1 for g in result.relevant.values())


@_settings(EVAL_EXAMPLES)
@given(query=TITLE, grades=st.dictionaries(st.text(min_size=1, max_size=6).filter(str.strip),
                                           st.integers(min_value=0, max_value=2**70), min_size=1, max_size=4))
def test_eval_grades_are_kept_up_to_the_maximum_and_skipped_above(query, grades):
    result = parse_query_line(json.dumps({"query": query, "relevant": grades}), 7, None)
    cleaned: dict[str, int] = {}
    for pid, g in grades.items():
        cleaned[pid.strip()] = max(g, cleaned.get(pid.strip(), 0))
    if any(g > MAX_GRADE for g in grades.values()):
        assert isinstance(result, Skip) and result.reason == SKIP_BAD_GRADE and result.line == 7
    elif not any(g >= 1 for g in grades.values()):
        assert isinstance(result, Skip)
    else:
        assert isinstance(result, EvalQuery) and result.relevant == cleaned and result.text == query.strip()
