"""Errors raised by library code. Only the front ends (cli, tui) turn them into output.

Every error carries a message (what went wrong) and a hint (what to do about it).
"""

from __future__ import annotations


class MmtuiError(Exception):
    """Base class: `message` says what went wrong, `hint` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(MmtuiError):
    """A setting (an option or an MMTUI_* environment variable) has a value that cannot be used."""


class CatalogError(MmtuiError):
    """The catalog cannot be read at all (not a bad row: those become rejects)."""


class StoreError(MmtuiError):
    """The data directory or its database is missing, locked or from a newer version."""


class ModelError(MmtuiError):
    """A model name, checkpoint or weight file cannot be loaded."""


class IndexMismatchError(MmtuiError):
    """An on-disk index was built with another model or is out of date."""


class QueryError(MmtuiError):
    """A search or eval query is unusable (empty text, unreadable image, bad filter)."""


class EvalFileError(MmtuiError):
    """A queries file for `mmtui eval` is malformed."""


class TrainingError(MmtuiError):
    """Training cannot start or failed (no data, no split, diverged)."""
