"""Catalog readers: layouts, the Fashion quirks (real rows), generic CSV/JSONL, rejects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmtui.catalog.readers import parse_columns, read_catalog
from mmtui.catalog.readers import parse_price
from mmtui.errors import CatalogError

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
# Real rows copied from /work/shared/catalogs/fashion/styles-text-only.csv (line numbers in comments).
REAL_ROWS = [
    "5402,Women,Footwear,Shoes,Sports Shoes,Purple,,2011,Sports,Kalenji Ekiden 200 Wn Purple 2011",  # 161: empty season
    "44065,Men,Personal Care,Fragrance,Perfume and Body Mist,Blue,Spring,2017,Casual,Boss Men Perfume, After Shave Balm and Shower Gel Set",  # 3559: 11 fields
    "3413,Men,Apparel,Topwear,Tshirts,White,Summer,2011,Casual,Myntra Men's Yes, its all about me White T-shirt",  # 3852
    "28319,Men,Footwear,Sandal,Sandals,Brown,Winter,2018,,RTV_LoadTest",  # 5010: empty usage
    '7491,Women,Apparel,Bottomwear,Shorts,Pink,Summer,2011,Sports,Nike Women\'s EM Tempo 3.5" Pink Short',  # 7305: bare quote
    "23124,Unisex,Footwear,Flip Flops,Flip Flops,Navy Blue,Spring,2013,Casual,Converse Unisex Navy Blue Liv,Laugh,Love Flip-flops",  # 8887: 12 fields
    "53781,Men,Apparel,Topwear,Tshirts,Blue,,,Sports,Puma Men Blue Sless Round Neck T-shirt",  # 12518: two empty
    "23127,Unisex,Footwear,Flip Flops,Flip Flops,Green,Summer,2012,Casual,Converse Unisex Green Live, Life, Laugh Flip Flops",  # 22523
]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_fashion_real_quirky_rows_keep_every_field_in_place(tmp_path):
    f = write(tmp_path / "styles.csv", HEADER + "\n" + "\n".join(REAL_ROWS) + "\n")
    data = read_catalog(f)
    assert data.layout == "fashion" and data.rejects == []
    by = {p.id: p for p in data.products}
    assert [p.id for p in data.products] == [r.split(",")[0] for r in REAL_ROWS]
    assert by["44065"].title == "Boss Men Perfume, After Shave Balm and Shower Gel Set"
    assert by["44065"].attributes["usage"] == "Casual" and by["44065"].colour == "Blue"
    assert by["23124"].title == "Converse Unisex Navy Blue Liv,Laugh,Love Flip-flops"
    assert by["23127"].title == "Converse Unisex Green Live, Life, Laugh Flip Flops"
    assert by["3413"].title == "Myntra Men's Yes, its all about me White T-shirt"
    assert by["7491"].title == 'Nike Women\'s EM Tempo 3.5" Pink Short'
    # empty fields stay empty, nothing shifts
    assert by["5402"].attributes["season"] == "" and by["5402"].attributes["year"] == "2011"
    assert by["28319"].attributes["usage"] == "" and by["28319"].title == "RTV_LoadTest"
    assert by["53781"].attributes["season"] == "" and by["53781"].attributes["year"] == ""
    assert by["53781"].attributes["usage"] == "Sports"
    p = by["23124"]
    assert p.category == "Footwear > Flip Flops > Flip Flops" and p.gender == "Unisex"
    assert p.attributes["article_type"] == "Flip Flops" and p.attributes["master_category"] == "Footwear"
    assert p.image == "images/23124.jpg" and p.row == 6


def test_fashion_short_row_is_bad_row_and_others_survive(tmp_path):
    rows = [REAL_ROWS[0], "9999,Men,Apparel,Topwear", REAL_ROWS[1]]
    data = read_catalog(write(tmp_path / "styles.csv", HEADER + "\n" + "\n".join(rows) + "\n"))
    assert [p.id for p in data.products] == ["5402", "44065"]
    (rej,) = data.rejects
    assert (rej.reason, rej.row, rej.product_id, rej.source) == ("bad_row", 2, "9999", "styles.csv")


def test_fashion_category_skips_empty_parts(tmp_path):
    row = "1,Men,Apparel,,Shirts,Blue,Fall,2011,Casual,Plain Shirt"
    (p,) = read_catalog(write(tmp_path / "styles.csv", HEADER + "\n" + row + "\n")).products
    assert p.category == "Apparel > Shirts"


def test_fashion_folder_reads_text_only_file_and_dedups(fashion_dir):
    with (fashion_dir / "styles-text-only.csv").open("a") as fh:
        fh.write("15970,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,2011,Casual,Duplicate of an imaged one\n")
        fh.write("777,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,2011,Casual,\n")
    data = read_catalog(fashion_dir)
    assert data.layout == "fashion"
    assert data.source == fashion_dir / "styles.csv" and data.base_dir == fashion_dir
    ids = [p.id for p in data.products]
    assert ids == ["15970", "12967", "59263", "39386"]
    text_only = data.products[-1]
    assert text_only.image is None and text_only.image_status == "image_missing"
    assert data.products[0].title == "Turtle Check Men Navy Blue Shirt"  # the first one wins
    reasons = {(r.reason, r.product_id, r.source, r.row) for r in data.rejects}
    assert reasons == {("duplicate_id", "15970", "styles-text-only.csv", 2), ("missing_title", "777", "styles-text-only.csv", 3)}


def test_generic_csv_fields_attributes_and_price(tmp_path):
    f = write(tmp_path / "shop" / "products.csv",
              "id,title,Color,price,image,material\n"
              ' 1 ,Red Shirt,Red,$19.99,img/1.jpg,cotton\n'
              '2,"Blue, Jeans",Blue,"1,299.00",https://example.com/2.jpg,denim\n'
              "3,Hat,Green,abc,,wool\n"
              ",No id,Red,1,,\n"
              "5,,Red,1,,\n"
              "1,Duplicate,Red,1,,\n"
              "7,Too,many,fields,here,x,y\n")
    data = read_catalog(tmp_path / "shop")
    assert data.layout == "csv" and data.base_dir == tmp_path / "shop"
    p1, p2, p3 = data.products
    assert (p1.id, p1.title, p1.colour, p1.price, p1.image) == ("1", "Red Shirt", "Red", 19.99, "img/1.jpg")
    assert p1.attributes == {"material": "cotton"}
    assert p2.title == "Blue, Jeans" and p2.price == 1299.0 and p2.image == "https://example.com/2.jpg"
    assert p3.price is None and p3.image is None
    got = [(r.reason, r.row, r.product_id, r.kept) for r in data.rejects]
    assert got == [
        ("bad_value", 3, "3", True),
        ("missing_id", 4, None, False),
        ("missing_title", 5, "5", False),
        ("duplicate_id", 6, "1", False),
        ("bad_row", 7, "7", False),
    ]
    assert all(r.source == "products.csv" for r in data.rejects)


def test_columns_mapping(tmp_path):
    f = write(tmp_path / "x.csv", "sku,productDisplayName,img_url,baseColour\nA1,Nice Bag,a.jpg,Tan\n")
    data = read_catalog(f, parse_columns("id=sku,title=productDisplayName,image=img_url,color=baseColour"))
    (p,) = data.products
    assert (p.id, p.title, p.image, p.colour, p.attributes) == ("A1", "Nice Bag", "a.jpg", "Tan", {})
    with pytest.raises(CatalogError) as e:
        read_catalog(f, {"title": "nope"})
    assert "productDisplayName" in e.value.hint


def test_missing_title_column_is_an_error_with_hint(tmp_path):
    f = write(tmp_path / "x.csv", "id,headline\n1,Hi\n")
    with pytest.raises(CatalogError) as e:
        read_catalog(f)
    assert "--columns title=" in e.value.hint


def test_jsonl_bad_lines_are_rejected_and_reading_goes_on(tmp_path):
    lines = [
        json.dumps({"id": 1, "title": "Lamp", "color": "White", "price": 12.5, "features": ["LED", "dimmable"], "category": ["Home", "Lighting"]}),
        "",
        "{not json",
        "[1, 2]",
        json.dumps({"id": "2", "title": "Desk", "price": "cheap", "extra": {"a": 1}}),
    ]
    data = read_catalog(write(tmp_path / "p.jsonl", "\n".join(lines) + "\n"))
    assert data.layout == "jsonl"
    lamp, desk = data.products
    assert (lamp.id, lamp.colour, lamp.price, lamp.category) == ("1", "White", 12.5, "Home > Lighting")
    assert lamp.attributes["features"] == "LED; dimmable"
    assert desk.price is None and desk.attributes["extra"] == '{"a": 1}'
    assert [(r.reason, r.row) for r in data.rejects] == [("bad_row", 3), ("bad_row", 4), ("bad_value", 5)]


@pytest.mark.parametrize("raw,value", [("19.99", 19.99), ("$19.99", 19.99), ("1,299.00", 1299.0), ("1,299", 1299.0),
                                       ("19,99", 19.99), ("EUR 5", 5.0), ("abc", None), ("", None), ("-3", None)])
def test_parse_price(raw, value):
    assert parse_price(raw) == value


def test_parse_columns_errors():
    assert parse_columns("title=productDisplayName, image=img_url") == {"title": "productDisplayName", "image": "img_url"}
    for bad in ("title", "size=x", "=x", "title=a,title=b", ""):
        with pytest.raises(CatalogError) as e:
            parse_columns(bad)
        assert "FIELD=COLUMN" in e.value.hint


def test_unknown_layouts_are_errors_with_hint(tmp_path):
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", write(tmp_path / "a.txt", "x"), tmp_path / "missing"):
        with pytest.raises(CatalogError) as e:
            read_catalog(target)
        assert "products.csv" in e.value.hint and "styles.csv" in e.value.hint


REAL = Path("/work/shared/catalogs/fashion")


@pytest.mark.skipif(not (REAL / "styles-text-only.csv").is_file(), reason="real catalog not on this machine")
def test_real_fashion_catalog_every_row_is_a_product_or_a_reject():
    data = read_catalog(REAL)
    lines = sum(len([l for l in f.read_text().splitlines()[1:] if l.strip()]) for f in data.files)
    assert len(data.products) + len(data.rejects) == lines
    assert len(data.products) == 33_303  # 7,230 + 26,073: no duplicates, no missing ids or titles


def test_generic_fixture_catalog_end_to_end(generic_catalog, tmp_path):
    from mmtui.catalog.images import resolve_images

    data = read_catalog(generic_catalog)
    assert data.layout == "csv" and [p.id for p in data.products] == ["12993", "19547", "21510", "4", "5"]
    assert data.products[0].price == 49.99 and data.products[0].brand == "ADIDAS"
    rejects = resolve_images(data.products, data.base_dir, tmp_path / "cache")
    assert [p.image_status for p in data.products] == ["ok", "ok", "ok", "image_missing", "image_missing"]
    assert [(r.product_id, r.kept) for r in rejects] == [("4", True), ("5", True)]


SAMPLE = Path(__file__).resolve().parents[2] / "sample_catalog"


@pytest.mark.skipif(not (SAMPLE / "styles.csv").is_file(), reason="sample_catalog not present")
def test_sample_catalog_reads_clean():
    from mmtui.catalog.splits import split_of

    data = read_catalog(SAMPLE)
    assert data.layout == "fashion" and data.rejects == [] and 700 <= len(data.products) <= 900
    assert all((SAMPLE / p.image).is_file() for p in data.products)
    assert {split_of(p.id) for p in data.products} == {"train", "val", "test"}


def test_line_separators_inside_values_do_not_split_rows(tmp_path):
    title = "Lamp\u2028Shade"
    f = write(tmp_path / "p.csv", f'id,title,description\r\n1,{title},"two\nlines"\r\n2,Desk,x\r\n')
    data = read_catalog(f)
    # rows count lines after the header: product 2 starts on the file's 4th line, after a two-line record
    assert [(p.id, p.row) for p in data.products] == [("1", 1), ("2", 3)]
    assert data.products[0].title == title and data.products[0].description == "two\nlines"
    j = write(tmp_path / "p.jsonl", json.dumps({"id": 1, "title": title}, ensure_ascii=False) + "\n")
    assert read_catalog(j).products[0].title == title
