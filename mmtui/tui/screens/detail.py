"""Full-screen details of one product: a large image and every attribute."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Footer

from mmtui.query.service import Hit
from mmtui.tui.host import AppHost
from mmtui.tui.thumbnails import pixels_for
from mmtui.tui.widgets.detail import DetailPane


class DetailScreen(ModalScreen):
    """Dismisses with the hit when the user asks for more like it, else with None."""

    BINDINGS = [
        Binding("escape,q", "dismiss(None)", "Back"),
        Binding("m", "more_like_this", "More like this"),
    ]
    app: AppHost

    def __init__(self, hit: Hit) -> None:
        super().__init__()
        self.hit = hit

    def compose(self) -> ComposeResult:
        yield DetailPane(self.app.image_class, id="detail-full")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        pane = self.query_one(DetailPane)
        pane.border_title = self.hit.title
        pane.border_subtitle = "m: more like this · Esc: back"
        pane.show(self.hit)
        self._fit_image()
        self._load()

    def on_resize(self) -> None:
        if self._fit_image():
            self._load()

    def _fit_image(self) -> bool:
        """Size the image to the screen: as tall as fits, twice as wide (cells are 1:2), at most half the width."""
        images = self.query("#detail-image")
        if not images:
            return False
        rows = max(6, min(int(self.size.height * 0.92) - 4, 40))
        cols = min(rows * 2, max(12, int(self.size.width * 0.94) // 2))
        rows = cols // 2
        image = images.first()
        if (image.styles.width and image.styles.width.value == cols and image.styles.height
                and image.styles.height.value == rows):
            return False
        image.styles.width, image.styles.height = cols, rows
        return True

    @work(exclusive=True, group="detail-full", exit_on_error=False)
    async def _load(self) -> None:
        app, pane = self.app, self.query_one(DetailPane)
        product = None
        if app.service is not None:
            try:
                product = await app.lane.call(app.service.product, self.hit.id)
            except Exception:
                product = None
        pane.show(self.hit, product)
        if app.image_class is not None and self.hit.image_path:
            box = pane.query_one("#detail-image")
            cols, rows = int(box.styles.width.value), int(box.styles.height.value)
            image = await asyncio.to_thread(app.thumbnails.get, self.hit.image_path,
                                            pixels_for(app.image_protocol, cols, rows))
            pane.show_image(image)

    def action_more_like_this(self) -> None:
        self.dismiss(self.hit)
