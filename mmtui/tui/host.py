"""What the screens use of the app, as an interface: screens reach the app as `self.app` (Textual) and are
typed against AppHost, so they never import mmtui.tui.app (which imports them)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Callable, ContextManager, Protocol

from mmtui.config import Settings


class AppHost(Protocol):
    """The part of MmtuiApp (mmtui.tui.app) that screens read and call."""

    settings: Settings
    service: Any | None  # the SearchService once open (it lives on the lane thread)
    lane: Any  # ServiceLane: every service call goes through lane.call(...)
    thumbnails: Any  # ThumbnailCache
    judging: Any  # mmtui.tui.judging.Judging: the judgements file
    image_class: Any  # the widget class for images, None when images are off
    image_protocol: str
    image_reason: str  # why that protocol (mmtui.tui.terminal.choose)
    k: int
    default_mode: str
    facets: dict[str, Any]
    stats: dict[str, Any]
    model_state: str  # opening | loading | ready | failed | no-data | building
    sample_catalog: Path | None
    build_fn: Callable[..., Any]
    train_fn: Callable[..., Any]
    focused: Any

    def show_error(self, exc: BaseException, *, title: str = "Error", dialog: bool = False) -> None: ...

    def data_changed(self, quiet: bool = False) -> None: ...

    async def release_service(self) -> None: ...

    def run_long(self, fn: Callable[..., Any], *args: Any, cancel: threading.Event | None = None,
                 **kwargs: Any) -> "asyncio.Future[Any]": ...

    # Textual's App
    def notify(self, message: str, **kwargs: Any) -> None: ...

    def push_screen(self, screen: Any, callback: Any = None) -> Any: ...

    def pop_screen(self) -> Any: ...

    def batch_update(self) -> ContextManager[None]: ...
