"""Read a catalog (a folder or a file) into Products and Rejects.

Accepted:
- a `.csv` or `.jsonl` file with generic columns (id, title, description, category, brand, colour,
  gender, price, image; every other column becomes an attribute);
- a folder holding `products.csv` or `products.jsonl` (generic), or `styles.csv` (+ `images/{id}.jpg`,
  and optionally `styles-text-only.csv`) in the Fashion Product Images layout.

Bad rows never stop the read: each becomes a Reject with its 1-based data row (CSV: row after the
header; JSONL: line number) and file name.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import CatalogError
from . import fashion
from .files import read_text, split_lines
from .records import BAD_ROW, BAD_VALUE, DUPLICATE_ID, MISSING_ID, MISSING_TITLE, Product, Reject

FIELDS = ("id", "title", "description", "category", "brand", "colour", "gender", "price", "image")
# Other spellings recognised in headers without a --columns mapping (lower-case).
ALIASES = {
    "id": ("id", "product_id", "sku"),
    "title": ("title", "name", "product_name"),
    "description": ("description",),
    "category": ("category",),
    "brand": ("brand",),
    "colour": ("colour", "color"),
    "gender": ("gender",),
    "price": ("price",),
    "image": ("image", "image_url", "image_path"),
}
GENERIC_FILES = ("products.csv", "products.jsonl")
ACCEPTED_HINT = (
    "give a .csv or .jsonl file, or a folder holding products.csv, products.jsonl, "
    "or styles.csv (+ images/{id}.jpg, the Fashion layout)"
)


@dataclass
class CatalogData:
    """What a catalog read produced: valid products in file order and everything rejected."""

    products: list[Product]
    rejects: list[Reject]
    source: Path  # the file read (or the main file, for a folder)
    base_dir: Path  # relative image paths resolve against this
    layout: str  # "csv" | "jsonl" | "fashion"
    files: list[Path] = field(default_factory=list)  # every file read, in order


def parse_columns(spec: str) -> dict[str, str]:
    """Parse "title=productDisplayName,image=img_url" into {"title": "productDisplayName", ...}."""
    hint = "write FIELD=COLUMN pairs separated by commas, e.g. title=productDisplayName,image=img_url; FIELD is one of " + ", ".join(FIELDS)
    mapping: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        name, sep, column = part.partition("=")
        name, column = name.strip().lower(), column.strip()
        if name == "color":
            name = "colour"
        if not sep or not name or not column:
            raise CatalogError(f"bad column mapping {part.strip()!r}", hint)
        if name not in FIELDS:
            raise CatalogError(f"unknown field {name!r} in column mapping", hint)
        if name in mapping:
            raise CatalogError(f"field {name!r} is mapped twice", hint)
        mapping[name] = column
    if not mapping:
        raise CatalogError("empty column mapping", hint)
    return mapping


def read_catalog(path: Path | str, columns: dict[str, str] | None = None) -> CatalogData:
    """Read a catalog file or folder. `columns` maps our field names to the file's column names
    (generic layouts only; the Fashion layout has fixed columns)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CatalogError(f"catalog {path} does not exist", ACCEPTED_HINT)
    if path.is_dir():
        return _read_folder(path, columns)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _finish(_jsonl_items(path, columns), path, path.parent, "jsonl", [path])
    if suffix == ".csv":
        if _has_fashion_header(path):
            with_images = path.name.lower() != fashion.TEXT_ONLY_FILE
            return _finish(_fashion_items([(path, with_images)]), path, path.parent, "fashion", [path])
        return _finish(_csv_items(path, columns), path, path.parent, "csv", [path])
    raise CatalogError(f"cannot read {path.name}: not a .csv or .jsonl file", ACCEPTED_HINT)


def _read_folder(folder: Path, columns: dict[str, str] | None) -> CatalogData:
    generic = [folder / name for name in GENERIC_FILES if (folder / name).is_file()]
    if len(generic) > 1:
        raise CatalogError(
            f"{folder} holds both products.csv and products.jsonl",
            "pass the file you mean instead of the folder",
        )
    if generic:
        return read_catalog(generic[0], columns)
    if (folder / fashion.STYLES_FILE).is_file():
        files = fashion.fashion_files(folder)
        return _finish(_fashion_items(files), files[0][0], folder, "fashion", [f for f, _ in files])
    found = sorted(p.name for p in folder.iterdir())[:10]
    raise CatalogError(
        f"{folder} has no catalog file (found: {', '.join(found) or 'nothing'})",
        ACCEPTED_HINT,
    )


Item = tuple[str, "Product | Reject", list[Reject]]  # (file name, row result, notes kept with the product)


def _finish(items: Iterable[Item], source: Path, base_dir: Path, layout: str, files: list[Path]) -> CatalogData:
    """Apply the rules every layout shares: id and title required, first of a duplicate id wins."""
    products: list[Product] = []
    rejects: list[Reject] = []
    seen: dict[str, tuple[str, int]] = {}
    for src, item, notes in items:
        if isinstance(item, Reject):
            rejects.append(item)
            continue
        item.id = item.id.strip()
        item.title = item.title.strip()
        if not item.id:
            rejects.append(Reject(MISSING_ID, "no id", item.row, None, src))
        elif not item.title:
            rejects.append(Reject(MISSING_TITLE, "no title", item.row, item.id, src))
        elif item.id in seen:
            first_src, first_row = seen[item.id]
            rejects.append(Reject(DUPLICATE_ID, f"id {item.id} already read from {first_src} row {first_row}", item.row, item.id, src))
        else:
            seen[item.id] = (src, item.row)
            products.append(item)
            rejects.extend(notes)
    return CatalogData(products, rejects, source, base_dir, layout, files)


def _fashion_items(files: list[tuple[Path, bool]]) -> Iterator[Item]:
    for file, with_images in files:
        for item in fashion.read_fashion_file(file, with_images=with_images):
            yield file.name, item, []


def _has_fashion_header(path: Path) -> bool:
    text = read_text(path)
    first = text.split("\n", 1)[0].rstrip("\r")
    return fashion.is_fashion_header(fashion.split_header(first))


# ---- generic layouts ------------------------------------------------------------------------------


def _field_columns(keys: Iterable[str], columns: dict[str, str] | None) -> dict[str, str]:
    """Map our field names to the keys present in a header/object."""
    keys = list(keys)
    lower = {k.strip().lower(): k for k in keys}
    out: dict[str, str] = {}
    for name in FIELDS:
        if columns and name in columns:
            wanted = columns[name]
            if wanted in keys:
                out[name] = wanted
            elif wanted.strip().lower() in lower:
                out[name] = lower[wanted.strip().lower()]
            continue
        for alias in ALIASES[name]:
            if alias in lower and lower[alias] not in out.values():
                out[name] = lower[alias]
                break
    return out


def _csv_items(path: Path, columns: dict[str, str] | None) -> Iterator[Item]:
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    source = path.name
    try:
        header = next(reader)
    except StopIteration:
        raise CatalogError(f"{path} is empty", "a CSV catalog starts with a header row, e.g. id,title,image") from None
    except csv.Error as e:
        raise CatalogError(f"cannot parse the header of {path}: {e}", "check the file is CSV") from e
    header = [h.strip() for h in header]
    mapping = _field_columns(header, columns)
    _check_mapping(path, header, mapping, columns)
    row_no = 0
    while True:
        row_no += 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield source, Reject(BAD_ROW, f"cannot parse CSV: {e}", row_no, None, source), []
            continue
        if not any(c.strip() for c in row):
            row_no -= 1  # blank line: not a data row
            continue
        if len(row) != len(header):
            pid = (row[0].strip() or None) if row else None
            yield source, Reject(BAD_ROW, f"{len(row)} fields, the header has {len(header)}", row_no, pid, source), []
            continue
        yield _generic_product(dict(zip(header, row)), mapping, row_no, source)


def _check_mapping(path: Path, header: list[str], mapping: dict[str, str], columns: dict[str, str] | None) -> None:
    for name, wanted in (columns or {}).items():
        if name not in mapping:
            raise CatalogError(
                f"column {wanted!r} (for {name}) is not in {path.name}",
                "its columns are: " + ", ".join(header),
            )
    for name in ("id", "title"):
        if name not in mapping:
            raise CatalogError(
                f"{path.name} has no {name} column",
                f"its columns are: {', '.join(header)}; map one with --columns {name}=COLUMN",
            )


def _jsonl_items(path: Path, columns: dict[str, str] | None) -> Iterator[Item]:
    source = path.name
    for line_no, line in enumerate(split_lines(read_text(path)), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield source, Reject(BAD_ROW, f"not valid JSON: {e.msg} at column {e.colno}", line_no, None, source), []
            continue
        if not isinstance(obj, dict):
            yield source, Reject(BAD_ROW, f"not a JSON object but {type(obj).__name__}", line_no, None, source), []
            continue
        values = {k: _to_text(v, key=k) for k, v in obj.items()}
        yield _generic_product(values, _field_columns(values, columns), line_no, source)


def _to_text(value: Any, key: str = "") -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and key.lower() in ("id", "product_id", "sku"):
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        sep = " > " if key.lower() == "category" else "; "
        return sep.join(_to_text(v) for v in value if v is not None)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _generic_product(values: dict[str, str], mapping: dict[str, str], row_no: int, source: str) -> Item:
    get = {name: (values.get(col) or "").strip() for name, col in mapping.items()}
    used = set(mapping.values())
    product = Product(
        id=get.get("id", ""),
        title=get.get("title", ""),
        description=get.get("description", ""),
        category=get.get("category", ""),
        brand=get.get("brand", ""),
        colour=get.get("colour", ""),
        gender=get.get("gender", ""),
        image=get.get("image") or None,
        attributes={k.strip(): (v or "").strip() for k, v in values.items() if k not in used and k.strip()},
        row=row_no,
    )
    notes: list[Reject] = []
    raw_price = get.get("price", "")
    if raw_price:
        product.price = parse_price(raw_price)
        if product.price is None:
            notes.append(Reject(BAD_VALUE, f"price {raw_price!r} is not a number; kept without a price", row_no, product.id, source, kept=True))
    return source, product, notes


_PRICE_CHARS = re.compile(r"[^\d.,\-]")


def parse_price(raw: str) -> float | None:
    """"19.99", "$19.99", "1,299.00", "EUR 5" -> float; anything else (or negative) -> None."""
    s = _PRICE_CHARS.sub("", raw.strip())
    if not s or not any(c.isdigit() for c in s):
        return None
    if "," in s and "." in s:
        s = s.replace(",", "")
    elif "," in s:
        head, _, tail = s.rpartition(",")
        # "1,299" is thousands; "19,99" is a decimal comma.
        s = s.replace(",", "") if len(tail) == 3 else head.replace(",", "") + "." + tail
    try:
        value = float(s)
    except ValueError:
        return None
    if math.isnan(value) or math.isinf(value) or value < 0:
        return None
    return value
