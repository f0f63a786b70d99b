"""Hostile catalog input: every row is indexed or rejected with its reason and row, prices are read exactly or
not at all, encodings are detected, and a header that names a column twice is an error."""

from __future__ import annotations

import json

import pytest

from mmtui.catalog.readers import read_catalog
from mmtui.catalog.decoding import decode
from mmtui.catalog.readers import parse_price
from mmtui.errors import CatalogError


def rows_csv(n: int, broken: dict[int, str] | None = None) -> str:
    broken = broken or {}
    lines = ["id,title,colour,price"]
    for i in range(1, n + 1):
        lines.append(broken.get(i, f"{i},Shirt {i},Blue,{i}.50"))
    return "\n".join(lines) + "\n"


def test_unclosed_quote_loses_only_its_own_row(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text(rows_csv(50, {2: '2,"Shirt 2,Blue,2.50'}))
    data = read_catalog(f)
    assert [p.id for p in data.products] == [str(i) for i in range(1, 51) if i != 2]
    assert [p.row for p in data.products] == [i for i in range(1, 51) if i != 2]
    (reject,) = data.rejects
    assert (reject.reason, reject.row, reject.product_id, reject.kept) == ("bad_row", 2, "2", False)
    assert "unclosed quote" in reject.detail and "line 3" in reject.detail


@pytest.mark.parametrize("broken", [
    '2,Shirt 2,Blue,"2.50',  # the last field, running to the end of the file
    '2,"Shirt 2,Blue,2.50',  # closed by no later quote
    '2,Shirt "2,Blue,2.50',  # a quote inside an unquoted field is text
])
def test_quotes_in_any_place_keep_every_other_row(tmp_path, broken):
    f = tmp_path / "p.csv"
    f.write_text(rows_csv(6, {2: broken, 5: '5,"Shirt ""5""",Blue,5.50'}))
    data = read_catalog(f)
    ids = [p.id for p in data.products]
    assert {"1", "3", "4", "5", "6"} <= set(ids)
    assert len(data.products) + sum(not r.kept for r in data.rejects) == 6
    assert next(p for p in data.products if p.id == "5").title == 'Shirt "5"'


def test_an_unclosed_quote_closed_by_a_later_row_is_still_found(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text(rows_csv(8, {2: '2,"Shirt 2,Blue,2.50', 6: '6,"Shirt 6",Blue,6.50'}))
    data = read_catalog(f)
    assert [p.id for p in data.products] == ["1", "3", "4", "5", "6", "7", "8"]
    assert [(r.reason, r.row) for r in data.rejects] == [("bad_row", 2)]


def test_a_real_multi_line_field_is_one_record(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text('id,title,description\n1,Lamp,"two\nlines, with a comma"\n2,Desk,x\n')
    data = read_catalog(f)
    assert [(p.id, p.row, p.description) for p in data.products] == [
        ("1", 1, "two\nlines, with a comma"), ("2", 3, "x")]
    assert data.rejects == []


def test_blank_lines_and_carriage_return_only_files(tmp_path):
    f = tmp_path / "p.csv"
    f.write_bytes(b"id,title\r1,Lamp\r\r3,Desk\r")
    data = read_catalog(f)
    assert [(p.id, p.row) for p in data.products] == [("1", 1), ("3", 3)]


def test_a_duplicate_header_column_is_an_error(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text("id,title,price,Price\n1,Lamp,5,6\n")
    with pytest.raises(CatalogError) as e:
        read_catalog(f)
    assert "'Price' twice (columns 3 and 4)" in e.value.message and "rename or remove" in e.value.hint
    ok = tmp_path / "q.csv"
    ok.write_text("id,title,,\n1,Lamp,,\n")  # unnamed columns (trailing commas) are not duplicates
    assert [p.id for p in read_catalog(ok).products] == ["1"]


def test_a_duplicate_fashion_header_column_is_an_error(tmp_path):
    f = tmp_path / "styles.csv"
    f.write_text("id,gender,masterCategory,subCategory,articleType,baseColour,season,season,year,usage,"
                 "productDisplayName\n1,Men,A,B,C,Blue,Fall,Fall,2012,Casual,Shirt\n")
    with pytest.raises(CatalogError) as e:
        read_catalog(tmp_path)
    assert "'season' twice" in e.value.message


def test_jsonl_duplicate_keys_and_huge_numbers_are_rejected_rows(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text("\n".join([
        json.dumps({"id": 1, "title": "Lamp"}),
        '{"id": 2, "title": "Desk", "title": "Chair"}',
        '{"id": 3, "title": "Sofa", "price": ' + "9" * 5000 + "}",
        '{"id": 4, "title": "Rug", "price": 1e309}',
    ]) + "\n")
    data = read_catalog(f)
    assert [(p.id, p.price) for p in data.products] == [("1", None), ("4", None)]
    assert [(r.reason, r.row, r.kept) for r in data.rejects] == [
        ("bad_row", 2, False), ("bad_row", 3, False), ("bad_value", 4, True)]
    assert "'title' appears twice" in data.rejects[0].detail


@pytest.mark.parametrize("raw,value", [
    ("12", 12.0), ("12.50", 12.5), ("$12.50", 12.5), ("12.50 USD", 12.5), ("€ 12,50", 12.5),
    ("1,299.50", 1299.5), ("1,299", 1299.0), ("1.299,50", 1299.5), ("1.299.000", 1299000.0), ("1.299", 1.299),
    ("1e5", 100000.0), ("2.5E3", 2500.0), ("0", 0.0),
    ("1e309", None), ("1e-400", None), ("inf", None), ("nan", None), ("-5", None), ("+5", None),
    ("10-15", None), ("1,2999", None), ("12,500,00", None), ("12 apples", None), ("12345678901234567", None),
    ("usd 12", None), ("1e", None),
])
def test_prices_are_read_exactly_or_not_at_all(raw, value):
    assert parse_price(raw) == value


def test_unreadable_prices_are_missing_and_flagged(tmp_path):
    f = tmp_path / "p.csv"
    f.write_text('id,title,price\n1,Lamp,1e309\n2,Desk,1e5\n3,Sofa,"1.299,50"\n4,Rug,nan\n')
    data = read_catalog(f)
    assert [p.price for p in data.products] == [None, 100000.0, 1299.5, None]
    assert [(r.reason, r.row, r.kept) for r in data.rejects] == [("bad_value", 1, True), ("bad_value", 4, True)]
    assert "cannot be read exactly" in data.rejects[0].detail


def test_encodings_are_detected_and_reported(tmp_path):
    text = "id,title,price\n1,\u201cBest\u201d Lamp \u2013 caf\u00e9,\u20ac12\n"
    cases = {
        "utf8.csv": (text.encode("utf-8"), "utf-8"),
        "bom.csv": (b"\xef\xbb\xbf" + text.encode("utf-8"), "utf-8 (with BOM)"),
        "cp1252.csv": (text.encode("cp1252"), "windows-1252"),
        "utf16.csv": (text.encode("utf-16"), "utf-16"),
    }
    for name, (data, encoding) in cases.items():
        f = tmp_path / name
        f.write_bytes(data)
        catalog = read_catalog(f)
        (product,) = catalog.products
        assert product.title == "\u201cBest\u201d Lamp \u2013 caf\u00e9" and product.price == 12.0, name
        assert catalog.encodings == {name: encoding}
    # bytes Windows-1252 leaves undefined fall back to Latin-1: nothing is lost
    assert decode(b"a\x81b") == ("a\x81b", "latin-1")


def test_jsonl_prices_given_as_numbers_are_kept_as_numbers(tmp_path):
    f = tmp_path / "p.jsonl"
    prices = [19.99, 0.1 + 0.2, 10**30, -1, "1.299,50", True]
    f.write_text("".join(json.dumps({"id": i, "title": "t", "price": p}) + "\n" for i, p in enumerate(prices))
                 + '{"id": 9, "title": "t", "price": NaN}\n')
    data = read_catalog(f)
    # 0.1 + 0.2 is a float of 17 digits: as a JSON number it is that number, not a string to read again
    assert [p.price for p in data.products] == [19.99, 0.1 + 0.2, None, None, 1299.5, None, None]
    assert [(r.reason, r.row) for r in data.rejects] == [("bad_value", 3), ("bad_value", 4), ("bad_value", 6),
                                                          ("bad_value", 7)]
