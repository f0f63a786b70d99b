"""Read a catalog (a folder or a file) into Products and Rejects.

Accepted:
- a `.csv` or `.jsonl` file with generic columns (id, title, description, category, brand, colour,
  gender, price, image; every other column becomes an attribute);
- a folder holding `products.csv` or `products.jsonl` (generic), or `styles.csv` (+ `images/{id}.jpg`,
  and optionally `styles-text-only.csv`) in the Fashion Product Images layout.

Every row is accounted for: it becomes a Product or a Reject with its reason, its file name and its row
(CSV: the line number minus the header line, so row 1 is the file's second line, blank lines counted;
JSONL: the line number). Bad rows never stop the read.

CSV quoting: a quoted field may hold newlines. When a quote is never closed, the csv module would read the
rest of the file into that one field and lose every row after it. Here a record that spans lines is kept only
when it has the header's number of fields, is quoted strictly (every closing quote followed by a comma or the
line end; it does not run to the end of the file inside its quotes), and none of its later lines is by itself
a clean row of the header's width (for its last line: one with an even number of quotes, as a row of its own
has, where the real end of a quoted value has an odd number). Otherwise its first line is rejected ("unclosed
quote") and reading goes on at the next line. Single-line rows keep the csv module's lenient reading
(`3.5" Pink` stays as written). The one case this cannot tell apart: a multi-line quoted value one of whose
later lines is itself a complete row (as many commas as the header, quotes balanced) is taken for an unclosed
quote.

Text encodings: see decoding.py (UTF-8 with or without BOM, then Windows-1252); CatalogData.encodings says
which one each file was read as. A header that names a column twice is a CatalogError.

Prices: see parse_price. A price that cannot be read exactly is stored as missing and the row gets a kept
`bad_value` reject saying so; it is never turned into another number.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from mmtui.errors import CatalogError
from mmtui.catalog import fashion
from mmtui.catalog.decoding import check_unique_header, physical_lines, read_text, split_lines
from mmtui.catalog.records import BAD_ROW, BAD_VALUE, DUPLICATE_ID, MISSING_ID, MISSING_TITLE, Product, Reject

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
    encodings: dict[str, str] = field(default_factory=dict)  # file name -> the encoding it was read as


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
    enc: dict[str, str] = {}
    if suffix == ".jsonl":
        return _finish(_jsonl_items(path, columns, enc), path, path.parent, "jsonl", [path], enc)
    if suffix == ".csv":
        if _has_fashion_header(path):
            with_images = path.name.lower() != fashion.TEXT_ONLY_FILE
            return _finish(_fashion_items([(path, with_images)], enc), path, path.parent, "fashion", [path], enc)
        return _finish(_csv_items(path, columns, enc), path, path.parent, "csv", [path], enc)
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
        enc: dict[str, str] = {}
        return _finish(_fashion_items(files, enc), files[0][0], folder, "fashion", [f for f, _ in files], enc)
    found = sorted(p.name for p in folder.iterdir())[:10]
    raise CatalogError(
        f"{folder} has no catalog file (found: {', '.join(found) or 'nothing'})",
        ACCEPTED_HINT,
    )


Item = tuple[str, "Product | Reject", list[Reject]]  # (file name, row result, notes kept with the product)


def _finish(items: Iterable[Item], source: Path, base_dir: Path, layout: str, files: list[Path],
            encodings: dict[str, str]) -> CatalogData:
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
    return CatalogData(products, rejects, source, base_dir, layout, files, encodings)


def _fashion_items(files: list[tuple[Path, bool]], encodings: dict[str, str]) -> Iterator[Item]:
    for file, with_images in files:
        for item in fashion.read_fashion_file(file, with_images=with_images, encodings=encodings):
            yield file.name, item, []


def _has_fashion_header(path: Path) -> bool:
    text, _ = read_text(path)
    lines = split_lines(text[:65536])
    first = lines[0] if lines else ""
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


def _csv_items(path: Path, columns: dict[str, str] | None, encodings: dict[str, str]) -> Iterator[Item]:
    text, encodings[path.name] = read_text(path)
    lines = physical_lines(text)
    source = path.name
    if not any(line.strip() for line in lines):
        raise CatalogError(f"{path} is empty", "a CSV catalog starts with a header row, e.g. id,title,image")
    try:
        reader = csv.reader(iter(lines))
        header = next(reader)
        header_lines = reader.line_num
    except (csv.Error, StopIteration) as e:
        raise CatalogError(f"cannot parse the header of {path}: {e}", "check the file is CSV") from e
    header = [h.strip() for h in header]
    check_unique_header(source, header)
    mapping = _field_columns(header, columns)
    _check_mapping(path, header, mapping, columns)
    for start, result in _csv_records(lines, header_lines, len(header)):
        row_no = start - header_lines + 1  # 1 = the first line after the header
        if isinstance(result, str):
            pid = _first_field(lines[start])
            yield source, Reject(BAD_ROW, f"line {start + 1}: {result}", row_no, pid, source), []
            continue
        if not any(c.strip() for c in result):
            continue  # a blank line is not a data row
        if len(result) != len(header):
            pid = (result[0].strip() or None) if result else None
            yield source, Reject(BAD_ROW, f"line {start + 1}: {len(result)} fields, the header has {len(header)}",
                                 row_no, pid, source), []
            continue
        yield _generic_product(dict(zip(header, result)), mapping, row_no, source)


def _first_field(line: str) -> str | None:
    first = line.split(",", 1)[0].strip().strip('"').strip()
    return first or None


def _csv_records(lines: list[str], start: int, width: int) -> Iterator[tuple[int, list[str] | str]]:
    """(index of the record's first line, its fields or why that line cannot be read) for every record from
    lines[start] on. A record that spans lines is accepted only when it looks like one record (see the module
    docstring); otherwise its first line is reported and reading resumes at the next line."""
    n = len(lines)
    pos = start
    while pos < n:
        reader = csv.reader(lines[j] for j in range(pos, n))
        base, consumed = pos, 0
        restart = None
        while True:
            first = base + consumed
            try:
                fields = next(reader)
            except StopIteration:
                pos = n
                break
            except csv.Error as e:
                if reader.line_num - consumed > 1:  # the error came inside a record that spans lines
                    yield first, f"unclosed quote: cannot parse the record that starts here ({e})"
                else:
                    yield first, f"cannot parse CSV: {e}"
                restart = first + 1
                break
            end = base + reader.line_num  # one past the record's last line
            consumed = reader.line_num
            if end - first > 1:
                problem = _spanning_problem(lines, first, end, fields, width)
                if problem:
                    yield first, problem
                    restart = first + 1
                    break
            yield first, fields
        if restart is not None:
            pos = restart


def _spanning_problem(lines: list[str], first: int, end: int, fields: list[str], width: int) -> str:
    """Why a record spanning lines[first:end] is not a real multi-line record ("" when it is one)."""
    to = "the end of the file" if end >= len(lines) else f"line {end}"
    if len(fields) != width:
        return (f"unclosed quote: the quoted field opened here runs to {to} "
                f"({len(fields)} fields, the header has {width})")
    try:  # strictly quoted, the lines must be exactly this one record
        strict = list(csv.reader(lines[first:end], strict=True))
    except csv.Error as e:
        if "unexpected end of data" in str(e):
            return "unclosed quote: the quoted field opened here runs to the end of the file"
        return f"unclosed quote: the quoted field opened here runs to line {end} and is not closed cleanly ({e})"
    if len(strict) != 1:
        return f"unclosed quote: the quoted field opened here runs to line {end}"
    if width >= 3:  # a later line that is a clean, complete row by itself was swallowed
        for j in range(first + 1, end):
            if j == end - 1 and lines[j].count('"') % 2:
                continue  # a real last line opens inside the quotes, so it holds an odd number of them
            try:
                alone = next(csv.reader([lines[j]], strict=True), [])
            except csv.Error:
                continue
            if len(alone) == width and alone[0].strip():
                return f"unclosed quote: the quoted field opened here swallows line {j + 1}, a complete row"
    return ""


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


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _jsonl_items(path: Path, columns: dict[str, str] | None, encodings: dict[str, str]) -> Iterator[Item]:
    source = path.name
    text, encodings[source] = read_text(path)
    for line_no, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except _DuplicateKey as e:
            yield source, Reject(BAD_ROW, f"the key {e.args[0]!r} appears twice", line_no, None, source), []
            continue
        except json.JSONDecodeError as e:
            yield source, Reject(BAD_ROW, f"not valid JSON: {e.msg} at column {e.colno}", line_no, None, source), []
            continue
        except (ValueError, RecursionError) as e:  # an integer of over 4,300 digits, nesting too deep
            yield source, Reject(BAD_ROW, f"not usable JSON: {str(e)[:80]}", line_no, None, source), []
            continue
        if not isinstance(obj, dict):
            yield source, Reject(BAD_ROW, f"not a JSON object but {type(obj).__name__}", line_no, None, source), []
            continue
        values = {k: _to_text(v, key=k) for k, v in obj.items()}
        mapping = _field_columns(values, columns)
        number = obj.get(mapping.get("price", ""))
        exact = _json_price(number) if isinstance(number, (int, float)) and not isinstance(number, bool) else None
        yield _generic_product(values, mapping, line_no, source, json_price=exact)


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


def _json_price(number: int | float) -> tuple[float | None]:
    """A price given as a JSON number is already a number: kept as it is when it is finite, >= 0 and (an integer)
    exactly representable; (None,) otherwise. Wrapped in a tuple so "no JSON number" (None) stays distinct."""
    if isinstance(number, int):
        return (float(number),) if 0 <= number <= 2**53 else (None,)
    return (number,) if math.isfinite(number) and number >= 0 else (None,)


def _generic_product(values: dict[str, str], mapping: dict[str, str], row_no: int, source: str,
                     json_price: tuple[float | None] | None = None) -> Item:
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
        product.price = json_price[0] if json_price is not None else parse_price(raw_price)
        if product.price is None:
            notes.append(Reject(BAD_VALUE, f"price {raw_price[:40]!r} cannot be read exactly as a price; kept without "
                                           "a price", row_no, product.id, source, kept=True))
    return source, product, notes


# Currency marks allowed before or after a price: a symbol, an upper-case ISO code (EUR, USD) or a few common
# abbreviations. Anything else around the number makes the price unreadable (it is then stored as missing).
_CURRENCY = r"(?:[$€£¥₹₩₽¢]|[A-Z]{3}|Rs\.?|kr|zł|Fr\.?)"
_NUMBER = re.compile(
    r"""(?P<plain>\d+(?:\.\d+)?)                          # 12, 12.50, 1.299 (a dot is a decimal point)
      | (?P<commas>\d{1,3}(?:,\d{3})+(?:\.\d+)?)          # 1,299 and 1,299.50 (commas group thousands)
      | (?P<dots>\d{1,3}(?:\.\d{3})+,\d{1,2}               # 1.299,50 (dots group thousands, comma decimal)
               | \d{1,3}(?:\.\d{3}){2,})                   # 1.299.000
      | (?P<comma_decimal>\d+,\d{1,2})                    # 19,99 and 5,5 (one or two decimals)
      | (?P<exponent>\d+(?:\.\d+)?[eE][+-]?\d{1,3})       # 1e5, 2.5E3
    """,
    re.VERBOSE,
)
_PRICE = re.compile(rf"^(?:{_CURRENCY}\s*)?(?P<number>[\d.,eE+-]+)(?:\s*{_CURRENCY})?$")
MAX_PRICE_DIGITS = 15  # significant digits a float holds exactly; more cannot be stored as written


def parse_price(raw: str) -> float | None:
    """A price as written in a catalog -> float, or None when it cannot be read exactly.

    Accepted (optionally with a currency mark before or after: $, €, £, ¥, ₹, EUR, USD, Rs, kr, ...):
      12  12.50  1.299 (= 1.299: a lone dot is a decimal point)
      1,299  1,299.50  1,299,000 (commas group thousands: a comma followed by exactly three digits)
      1.299,50  1.299.000 (dots group thousands when a decimal comma follows or the groups repeat)
      19,99  5,5 (a decimal comma with one or two decimals)
      1e5  2.5E3 (exponents, as long as the value is finite and exact)
    Refused (None): negative numbers, nan, inf, 1e309 (overflow), 1e-400 (underflow), more than 15 significant
    digits, two numbers ("10-15"), ambiguous groupings ("1,2999", "12,500,00"), words ("abc", "12 apples")."""
    s = " ".join((raw or "").split())
    match = _PRICE.match(s)
    if not match:
        return None
    number = match.group("number")
    parts = _NUMBER.fullmatch(number)
    if not parts:
        return None
    kind = parts.lastgroup
    if kind == "commas":
        number = number.replace(",", "")
    elif kind == "dots":
        number = number.replace(".", "").replace(",", ".")
    elif kind == "comma_decimal":
        number = number.replace(",", ".")
    from decimal import Decimal, InvalidOperation

    try:
        exact = Decimal(number)
    except InvalidOperation:
        return None
    if not exact.is_finite() or exact < 0:
        return None
    if exact != 0 and len(exact.normalize().as_tuple().digits) > MAX_PRICE_DIGITS:
        return None
    value = float(exact)
    if value in (float("inf"), float("-inf")) or (value == 0.0 and exact != 0):
        return None  # overflow or underflow: not the number written
    return value
