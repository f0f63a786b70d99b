"""A fixed-size box that shows a product image once a worker has loaded it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import RenderResult
from textual.widget import Widget

LOADING = "·"


class Thumbnail(Widget):
    """Placeholder until `show(image)`; the image is drawn with the protocol picked before the app started.

    The placeholder is this widget's own content (no child widget): the image widget, once mounted, covers it.
    A result row keeps its Thumbnail for every query (`reset` for the next product), and the image widget is
    hidden and shown again rather than removed and mounted: every widget in a row costs a restyle on each
    focus change and a place in every layout."""

    DEFAULT_CSS = """
    Thumbnail { width: 6; height: 3; content-align: center middle; color: $text-muted; }
    """

    def __init__(self, image_class: Any | None, *, has_image: bool = True, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.image_class = image_class
        self.has_image = has_image
        self._image_widget: Any | None = None

    def render(self) -> RenderResult:
        return LOADING if self.has_image else Text("no\nimage", justify="center")

    def reset(self, has_image: bool) -> None:
        """Another product: its placeholder until `show` draws its image (no image: the image widget goes)."""
        if has_image != self.has_image:
            self.has_image = has_image
            self.refresh()
        if not has_image:
            self.show(None)
        elif self._image_widget is not None:
            self._image_widget.display = False

    def show(self, image: Any | None) -> None:
        """Draw a PIL image (already shrunk by a worker); None shows the placeholder."""
        if self.image_class is None or not self.is_mounted:
            return
        if image is None:
            if self._image_widget is not None:
                self._image_widget.remove()
                self._image_widget = None
            return
        if self._image_widget is None:
            self._image_widget = self.image_class(image)
            self._image_widget.styles.width = "100%"
            self._image_widget.styles.height = "100%"
            self.mount(self._image_widget)
        elif self._image_widget.image is not image or not self._image_widget.display:
            self._image_widget.image = image  # (the same cached image again would only cost a layout pass)
            self._image_widget.display = True
