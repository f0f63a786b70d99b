"""Messages posted by workers to the screens, named as events (what happened)."""

from __future__ import annotations

from typing import Any

from textual.message import Message

from ..progress import ProgressEvent


class ServiceOpened(Message):
    """The store and indexes are open: facets, stats and lexical search are available."""


class ModelStateChanged(Message):
    """The model started loading, finished loading, or failed."""

    def __init__(self, state: str) -> None:
        super().__init__()
        self.state = state


class WorkProgressed(Message):
    """A progress event from build or training (posted from a worker thread)."""

    def __init__(self, event: ProgressEvent) -> None:
        super().__init__()
        self.event = event


class WorkFinished(Message):
    """Build or training ended: result on success, error otherwise (Cancelled included)."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        super().__init__()
        self.result = result
        self.error = error


class DataChanged(Message):
    """The data dir was rebuilt or the active model changed: reopen and search again."""
