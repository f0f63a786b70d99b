"""The Fashion Product Images layout: styles.csv (+ images/{id}.jpg), read without flags.

The published file is CSV without quoting: a few titles contain bare commas, so those rows carry
more fields than the header. The extra fields belong to the title (the last column); they are
joined back with ",". Rows with empty fields are kept as they are; rows with fewer fields than
the header cannot be placed and become `bad_row` rejects.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from mmtui.errors import CatalogError
from mmtui.catalog.decoding import check_unique_header, read_text, split_lines
from mmtui.catalog.records import BAD_ROW, IMAGE_MISSING, Product, Reject

FASHION_COLUMNS = (
    "id", "gender", "masterCategory", "subCategory", "articleType",
    "baseColour", "season", "year", "usage", "productDisplayName",
)
STYLES_FILE = "styles.csv"
TEXT_ONLY_FILE = "styles-text-only.csv"
_TITLE_COLUMN = "productDisplayName"
# Fashion column -> attribute name (kept besides the fields they also feed).
_ATTRIBUTES = {
    "masterCategory": "master_category",
    "subCategory": "sub_category",
    "articleType": "article_type",
    "season": "season",
    "year": "year",
    "usage": "usage",
}


def split_header(line: str) -> list[str]:
    return [c.strip() for c in _split_line(line)]


def is_fashion_header(header: list[str]) -> bool:
    """True when a CSV header is the Fashion styles.csv header (title column last)."""
    return bool(header) and header[0] == "id" and header[-1] == _TITLE_COLUMN and set(FASHION_COLUMNS) <= set(header)


def _split_line(line: str) -> list[str]:
    """Split one physical line. A field that starts with a quote is honoured as CSV quoting;
    quotes inside a field (`3.5" Pink Short`) are kept literally."""
    if '"' not in line:
        return line.split(",")
    try:
        return next(csv.reader([line], strict=True))
    except (csv.Error, StopIteration):
        return line.split(",")


def read_fashion_file(path: Path, *, with_images: bool, encodings: dict[str, str] | None = None
                      ) -> Iterator[Product | Reject]:
    """Yield a Product or a Reject for every data row of one Fashion CSV, in file order.

    `row` is the 1-based data row (the line number minus the header line). `encodings` gets the file's
    encoding under its name.
    """
    text, encoding = read_text(path)  # shared decoding: UTF-8 (with or without BOM), then Windows-1252
    if encodings is not None:
        encodings[path.name] = encoding
    lines = iter(split_lines(text))
    header_line = next(lines, None)
    if header_line is None:
        raise CatalogError(f"{path} is empty", "a styles.csv starts with the header: " + ",".join(FASHION_COLUMNS))
    header = split_header(header_line)
    if not is_fashion_header(header):
        raise CatalogError(
            f"{path} does not have the Fashion styles.csv header",
            "expected the columns " + ",".join(FASHION_COLUMNS) + " (productDisplayName last)",
        )
    check_unique_header(path.name, header)
    n = len(header)
    source = path.name
    for row_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = _split_line(line)
        if len(fields) < n:
            yield Reject(BAD_ROW, f"{len(fields)} fields, the header has {n}", row_no, fields[0].strip() or None, source)
            continue
        if len(fields) > n:  # bare commas in the title: the extra fields belong to it
            fields = fields[: n - 1] + [",".join(fields[n - 1:])]
        yield _product(dict(zip(header, (f.strip() for f in fields))), row_no, with_images)


def _product(values: dict[str, str], row_no: int, with_images: bool) -> Product:
    pid = values["id"]
    category = " > ".join(p for p in (values["masterCategory"], values["subCategory"], values["articleType"]) if p)
    product = Product(
        id=pid,
        title=values[_TITLE_COLUMN],
        category=category,
        colour=values["baseColour"],
        gender=values["gender"],
        image=f"images/{pid}.jpg" if with_images and pid else None,
        attributes={attr: values.get(col, "") for col, attr in _ATTRIBUTES.items()},
        row=row_no,
    )
    # Columns beyond the standard ten (a newer export) are kept as attributes too.
    for col, value in values.items():
        if col not in FASHION_COLUMNS:
            product.attributes[col] = value
    if not with_images:
        product.image_status = IMAGE_MISSING
    return product


def fashion_files(folder: Path) -> list[tuple[Path, bool]]:
    """The files of a Fashion folder, in reading order, with whether their products have images."""
    files = [(folder / STYLES_FILE, True)]
    if (folder / TEXT_ONLY_FILE).is_file():
        files.append((folder / TEXT_ONLY_FILE, False))
    return files
