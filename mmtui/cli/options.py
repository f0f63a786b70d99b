"""Click parameter types for numeric options: ranges that also refuse nan and inf.

click.FloatRange lets "nan" through (every comparison with nan is false), so a learning rate of nan would
reach the optimiser. These types make every numeric option fail at the command line with a clear message.
"""

from __future__ import annotations

import math

import click


class FiniteFloat(click.FloatRange):
    """A float in a range; nan and +-inf are refused."""

    name = "float"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def count(minimum: int = 1, maximum: int | None = None) -> click.IntRange:
    """A whole number from `minimum` (to `maximum`)."""
    return click.IntRange(min=minimum, max=maximum)


def positive_float(maximum: float | None = None) -> FiniteFloat:
    """A finite float > 0 (up to `maximum`)."""
    return FiniteFloat(min=0.0, max=maximum, min_open=True)


def fraction() -> FiniteFloat:
    """A finite float from 0 to 1."""
    return FiniteFloat(min=0.0, max=1.0)


def non_negative(maximum: float | None = None) -> FiniteFloat:
    return FiniteFloat(min=0.0, max=maximum)


class RegionCount(click.ParamType):
    """--regions: "auto" (mmtui.query.regions.REGIONS) or a number of regions from 1 to 64."""

    name = "auto|N"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif str(value).strip().lower() == "auto":
            from mmtui.query.regions import REGIONS

            return REGIONS
        elif str(value).strip().isdigit():
            number = int(str(value).strip())
        else:
            number = 0
        if not 1 <= number <= 64:
            self.fail(f"{value!r} is not auto or a number of regions from 1 to 64.", param, ctx)
        return number
