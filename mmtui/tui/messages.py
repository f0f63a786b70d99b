"""Messages posted by worker threads to the screens, named as events (what happened)."""

from __future__ import annotations

from textual.message import Message

from mmtui.progress import ProgressEvent


class WorkProgressed(Message):
    """A progress event from a build or a training run (posted from its worker thread; post_message is thread-safe)."""

    def __init__(self, event: ProgressEvent) -> None:
        super().__init__()
        self.event = event
