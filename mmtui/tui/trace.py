"""Timestamps for the speed benchmark: off unless MMTUI_TRACE names a file (one JSON line per event)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

ENV_VAR = "MMTUI_TRACE"


def trace(event: str, **fields: Any) -> None:
    """Append {"event", "t": wall clock, **fields} to $MMTUI_TRACE; does nothing when it is unset."""
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps({"event": event, "t": time.time(), **fields}, default=str) + "\n")
