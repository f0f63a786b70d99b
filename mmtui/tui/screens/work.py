"""The shared behaviour of screens that run one long job (build, training) in a worker."""

from __future__ import annotations

import threading

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Button, Input, Static


class WorkScreen(Screen):
    """Start while idle, cancel while running (at the job's next safe point), no leaving mid-job."""

    INPUT_ID = ""  # the input that is disabled while the job runs
    STATUS_ID = ""  # the line that says the job is cancelling
    CANCELLING = "cancelling…"
    BUSY = "A job is running: ctrl+x cancels it."

    running: bool = False
    cancel_event: threading.Event | None = None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "start":
            return not self.running
        if action == "cancel":
            return self.running
        return True

    def _set_running(self, running: bool) -> None:
        self.running = running
        self.query_one("#start", Button).disabled = running
        self.query_one("#cancel", Button).disabled = not running
        self.query_one(self.INPUT_ID, Input).disabled = running
        self.refresh_bindings()

    def action_cancel(self) -> None:
        if self.cancel_event is not None and self.running:
            self.cancel_event.set()
            self.query_one(self.STATUS_ID, Static).update(Text(self.CANCELLING, style="italic"))

    def action_back(self) -> None:
        if self.running:
            self.app.notify(self.BUSY, timeout=4)
            return
        self.app.pop_screen()
