"""`--where` filters: "colour=Black", "price<50", "gender!=Men" -> parameterised SQL.

Only known fields are allowed, and values are always bound parameters, never pasted into SQL.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mmtui.errors import QueryError

# field -> (SQL column, type)
FIELDS: dict[str, tuple[str, type]] = {
    "id": ("id", str),
    "category": ("category", str),
    "colour": ("colour", str),
    "color": ("colour", str),
    "gender": ("gender", str),
    "brand": ("brand", str),
    "price": ("price", float),
    "season": ("season", str),
    "usage": ("usage", str),
    "article_type": ("article_type", str),
    "split": ("split", str),  # train / val / test: evaluation pools
}
OPERATORS = ("<=", ">=", "!=", "=", "<", ">", "~")  # "~" = contains (case-insensitive)
_PATTERN = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|!=|=|<|>|~)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: str | float

    def sql(self) -> tuple[str, list]:
        column, _ = FIELDS[self.field]
        if self.op == "~":
            return f"{column} LIKE ? COLLATE NOCASE", [f"%{self.value}%"]
        if self.op in ("=", "!=") and isinstance(self.value, str):
            return f"{column} {self.op} ? COLLATE NOCASE", [self.value]
        return f"{column} {self.op} ?", [self.value]

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value}"


def parse_where(expr: str) -> Filter:
    """One filter expression -> Filter. Anything that would silently match nothing is a QueryError with a hint:
    a doubled operator (`colour==Black`), a value that is empty (also `colour=""`), a number that is not finite
    (`price<nan`, `price<1e999`), an unknown field, or an operator the field's type does not have."""
    match = _PATTERN.match(expr or "")
    if not match:
        raise QueryError(f"cannot read the filter {expr!r}",
                         "write FIELD=VALUE, FIELD!=VALUE, FIELD~TEXT or price<50 / price>=10")
    field, op, raw = match.group(1).lower(), match.group(2), match.group(3)
    if field not in FIELDS:
        raise QueryError(f"unknown filter field {field!r}",
                         "known fields: " + ", ".join(sorted(set(FIELDS) - {"color"})))
    _, kind = FIELDS[field]
    if raw[:1] in ("=", "<", ">", "!", "~"):
        rest = raw.lstrip("=<>!~ ")
        raise QueryError(f"the filter {expr!r} has two operators ({op}{raw[0]})",
                         f"use one: e.g. {field}{op}{rest or 'VALUE'}; operators are " + " ".join(OPERATORS))
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        raw = raw[1:-1].strip()  # a quoted value: colour="Navy Blue"
    if raw == "":
        raise QueryError(f"the filter {expr!r} has no value", f"e.g. {field}{op}VALUE")
    if kind is float:
        if op == "~":
            raise QueryError(f"'~' (contains) does not apply to the number field {field}", "use < <= > >= = !=")
        try:
            value: str | float = float(raw)
        except ValueError:
            raise QueryError(f"{field} needs a number, got {raw!r}", f"e.g. {field}<50 (no currency sign)") from None
        if not math.isfinite(value):
            raise QueryError(f"{field} needs a finite number, got {raw!r}", f"e.g. {field}<50")
    else:
        if op in ("<", ">", "<=", ">="):
            raise QueryError(f"{op} does not apply to the text field {field}", "use =, != or ~ (contains)")
        value = raw
    return Filter(FIELDS[field][0] if field == "color" else field, op, value)


def where_sql(filters: list[Filter]) -> tuple[str, list]:
    """AND of all filters, as ("clause", params); ("1", []) when there are none."""
    if not filters:
        return "1", []
    parts, params = [], []
    for f in filters:
        clause, p = f.sql()
        parts.append(clause)
        params.extend(p)
    return " AND ".join(parts), params
