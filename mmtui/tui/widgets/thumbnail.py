"""A fixed-size box that shows a product image once a worker has loaded it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widget import Widget
from textual.widgets import Static


class Thumbnail(Widget):
    """Placeholder until `show(image)`; the image is drawn with the protocol picked before the app started."""

    DEFAULT_CSS = """
    Thumbnail { width: 6; height: 3; }
    Thumbnail > .placeholder { width: 100%; height: 100%; content-align: center middle; color: $text-muted; }
    """

    def __init__(self, image_class: Any | None, *, has_image: bool = True, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.image_class = image_class
        self.has_image = has_image
        self._image_widget: Any | None = None

    def compose(self) -> ComposeResult:
        label = "·" if self.has_image else Text("no\nimage", justify="center")
        yield Static(label, classes="placeholder")

    def show(self, image: Any | None) -> None:
        """Draw a PIL image (already shrunk by a worker); None shows the placeholder."""
        if self.image_class is None or not self.is_mounted:
            return
        if image is None:
            if self._image_widget is not None:
                self._image_widget.remove()
                self._image_widget = None
            self._placeholder(True)
            return
        if self._image_widget is None:
            self._image_widget = self.image_class(image)
            self._image_widget.styles.width = "100%"
            self._image_widget.styles.height = "100%"
            self._placeholder(False)
            self.mount(self._image_widget)
        else:
            self._image_widget.image = image

    def _placeholder(self, shown: bool) -> None:
        # not query_one: a worker can draw into a thumbnail whose placeholder is not mounted yet
        for placeholder in self.query(".placeholder"):
            placeholder.display = shown
