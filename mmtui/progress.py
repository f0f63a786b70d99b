"""Progress reporting that library code can call without knowing who listens.

Library functions take `progress: ProgressCallback | None` and call it with ProgressEvent values;
the CLI turns them into a rich progress bar, the TUI into messages, tests into a list.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from mmtui.errors import MmtuiError


@dataclass(frozen=True)
class ProgressEvent:
    stage: str  # "read", "images", "encode-images", "encode-texts", "index", "train", ...
    done: int
    total: int | None = None  # None when unknown
    message: str = ""
    metrics: dict | None = None  # e.g. {"epoch": 3, "train_loss": 0.41, "val_r10": 0.78}


ProgressCallback = Callable[[ProgressEvent], None]


def counted(n: int, noun: str, nouns: str | None = None) -> str:
    """"1 row", "2 rows", "1,200 queries": a count with its noun in the right number (`nouns`: an odd plural)."""
    return f"{n:,} {noun if n == 1 else nouns or noun + 's'}"


def null_progress(_: ProgressEvent) -> None:
    return None


class Cancelled(MmtuiError):
    """Raised inside long work when its cancel event is set; the work stops at a safe point."""


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled", "work done so far is saved; run the command again to continue")
