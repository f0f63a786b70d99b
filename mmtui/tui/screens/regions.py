"""Regions of a query photo (ctrl+o on an image search): the regions mmtui proposes, each with its products, and a
box to move and resize over the picture to search any other part of it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, ListItem, ListView, Static

from mmtui.catalog.regions import Box
from mmtui.query.service import Hit
from mmtui.tui.host import AppHost
from mmtui.tui.lane import Skipped
from mmtui.tui.thumbnails import pixels_for
from mmtui.tui.widgets.results import ResultItem, ResultsList, load_thumbnails
from mmtui.tui.widgets.thumbnail import Thumbnail

STEP = 0.05  # a move is this fraction of the picture's side
GROW = 1.15  # + / - resize by this factor
SELECTED = (255, 40, 40)
OTHERS = (255, 210, 0)


def draw_boxes(picture: Any, size: tuple[int, int], boxes: list[Box], selected: int | None, edited: Box | None,
               frame: tuple[int, int]) -> Any:
    """The picture fitted into `size` pixels (letterboxed on black) with the boxes drawn over it: proposals thin
    and numbered, the selected (or edited) one thick. Boxes are in `frame` (the picture's own size)."""
    from PIL import Image, ImageDraw

    width, height = max(size[0], 1), max(size[1], 1)
    scale = min(width / frame[0], height / frame[1])
    shown = picture.resize((max(1, round(frame[0] * scale)), max(1, round(frame[1] * scale))), Image.BILINEAR)
    canvas = Image.new("RGB", (width, height), (0, 0, 0))
    ox, oy = (width - shown.width) // 2, (height - shown.height) // 2
    canvas.paste(shown, (ox, oy))
    draw = ImageDraw.Draw(canvas)
    line = max(1, round(min(width, height) / 120))

    def rect(box: Box, colour, thick: int) -> tuple[int, int]:
        x0, y0 = ox + box.x * scale, oy + box.y * scale
        draw.rectangle((x0, y0, x0 + box.w * scale - 1, y0 + box.h * scale - 1), outline=colour, width=thick)
        return round(x0), round(y0)

    for n, box in enumerate(boxes):
        if n != selected or edited is not None:
            x, y = rect(box, OTHERS, line)
            if min(width, height) >= 60:  # numbers are legible from Sixel/Kitty sizes on, not on half-blocks
                draw.text((x + 2 * line, y + line), str(n + 1), fill=OTHERS)
    current = edited if edited is not None else (boxes[selected] if selected is not None and boxes else None)
    if current is not None:
        rect(current, SELECTED, 2 * line)
    return canvas


class RegionCanvas(Widget, can_focus=True):
    """The picture with the boxes; arrows move the box, shift+arrows and +/- resize it, Enter searches it."""

    BINDINGS = [
        Binding("left", "screen.move(-1, 0)", "Move", show=False),
        Binding("right", "screen.move(1, 0)", "Move", show=False),
        Binding("up", "screen.move(0, -1)", "Move", show=False),
        Binding("down", "screen.move(0, 1)", "Move", show=False),
        Binding("shift+left", "screen.stretch(-1, 0)", "Narrower", show=False),
        Binding("shift+right", "screen.stretch(1, 0)", "Wider", show=False),
        Binding("shift+up", "screen.stretch(0, -1)", "Shorter", show=False),
        Binding("shift+down", "screen.stretch(0, 1)", "Taller", show=False),
        Binding("plus,equals_sign", "screen.grow(1)", "Bigger"),
        Binding("minus", "screen.grow(-1)", "Smaller"),
        Binding("enter", "screen.search_box", "Search this box"),
    ]
    DEFAULT_CSS = """
    RegionCanvas { width: 1fr; height: 1fr; border: round $accent; }
    RegionCanvas:focus { border: round $success; }
    RegionCanvas > Thumbnail { width: 100%; height: 100%; }
    """

    def __init__(self, image_class: Any | None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.image_class = image_class

    def compose(self) -> ComposeResult:
        yield Thumbnail(self.image_class, id="region-picture")

    def show(self, image: Any | None) -> None:
        self.query_one(Thumbnail).show(image)


class RegionScreen(Screen):
    """Dismisses with ("like", product id) when the user asks for more like a product, else with None."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Back"),
        Binding("n", "next_region(1)", "Next region"),
        Binding("p", "next_region(-1)", "Previous"),
        Binding("w", "whole", "Whole picture"),
        Binding("a", "propose", "Propose again", show=False),
    ]
    DEFAULT_CSS = """
    RegionScreen #region-left { width: 1fr; }
    RegionScreen #region-right { width: 1fr; }
    RegionScreen #region-status { height: 3; padding: 0 1; }
    RegionScreen #region-list { height: 10; border: round $primary; }
    RegionScreen #region-results { height: 1fr; border: round $primary; }
    RegionScreen #region-results > ResultItem { height: 3; padding: 0 1; layout: horizontal; }
    RegionScreen #region-results > ResultItem .thumb { width: 6; height: 3; margin-right: 1; }
    RegionScreen #region-results > ResultItem .result-text { width: 1fr; height: 3; text-wrap: nowrap;
        text-overflow: ellipsis; }
    """
    app: AppHost

    def __init__(self, path: Path | str, filters: list | None = None) -> None:
        super().__init__()
        self.path = str(path)
        self.filters = list(filters or [])
        self.result: Any = None  # the RegionSearchResult
        self.selected: int | None = None
        self.edited: Box | None = None  # a box the user moved or resized (searched with Enter)
        self.picture: Any = None  # the PIL picture, as viewers show it
        self.frame: tuple[int, int] = (1, 1)

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="region-left"):
                yield RegionCanvas(self.app.image_class, id="region-canvas")
                yield Static(Text("Proposing regions…", style="italic"), id="region-status")
            with Vertical(id="region-right"):
                yield ListView(id="region-list")
                yield ResultsList(id="region-results")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#region-list").border_title = "regions (n/p)"
        canvas = self.query_one("#region-canvas")
        canvas.border_title = Path(self.path).name
        canvas.border_subtitle = "←↑↓→ move · shift+←↑↓→ / + - size · Enter search"
        canvas.focus()
        self._load_picture()
        self.action_propose()

    # ---------------------------------------------------------------- the work
    @work(exclusive=True, group="region-picture", exit_on_error=False)
    async def _load_picture(self) -> None:
        from PIL import Image, ImageOps

        def read() -> Any:
            with Image.open(self.path) as im:
                picture = ImageOps.exif_transpose(im).convert("RGB")
            picture.thumbnail((1024, 1024))  # enough for any terminal's drawing; boxes stay in `frame` pixels
            return picture

        try:
            frame = await asyncio.to_thread(_oriented, self.path)
            self.picture = await asyncio.to_thread(read)
        except OSError as exc:
            self.set_status(Text(f"cannot read {self.path}: {exc}", style="yellow"))
            return
        self.frame = frame or self.picture.size
        self.redraw()

    def action_propose(self) -> None:
        self._propose()

    @work(exclusive=True, group="region-search", exit_on_error=False)
    async def _propose(self) -> None:
        app = self.app
        if app.service is None:
            self.set_status(Text("The data dir is still opening: try again in a moment (a).", style="italic"))
            return
        self.set_status(Text("Proposing regions…", style="italic"))
        try:
            result = await app.lane.call(app.service.search_regions, self.path, k=app.k, filters=self.filters)
        except Skipped:
            return
        except Exception as exc:  # every failure becomes a notification; the screen stays
            self.set_status(Text("Proposing regions failed: see the notification.", style="italic"))
            app.show_error(exc, title="Regions failed")
            return
        self.result = result
        self.frame = tuple(result.size) if getattr(result, "size", None) else self.frame
        regions = result.regions
        items = [ListItem(Static(_region_label(n, r)), classes="region-item") for n, r in enumerate(regions)]
        listing = self.query_one("#region-list", ListView)
        await listing.clear()
        await listing.extend(items)
        if regions:
            await self.select(0)
        else:
            self.set_status(Text("No region looks like a product of this catalog: move the box and press Enter.",
                                 style="italic"))
            self.edited = Box(0, 0, *self.frame)
            self.redraw()

    async def select(self, index: int) -> None:
        """Show proposal `index`: its box on the picture, its products on the right."""
        regions = self.result.regions if self.result is not None else []
        if not regions:
            return
        self.selected = index % len(regions)
        self.edited = None
        listing = self.query_one("#region-list", ListView)
        if listing.index != self.selected:
            listing.index = self.selected
        region = regions[self.selected]
        await self.show_hits(region.hits)
        self.set_status(self._status(region.box, region.score, len(region.hits)))
        self.redraw()

    @work(exclusive=True, group="region-search", exit_on_error=False)
    async def _search_box(self, box: Box) -> None:
        app = self.app
        self.set_status(Text(f"searching {box}…", style="dim italic"))
        try:
            result = await app.lane.call(app.service.search_image, self.path, k=app.k, filters=self.filters,
                                         region=str(box))
        except Skipped:
            return
        except Exception as exc:
            self.set_status(Text("The search failed: see the notification.", style="italic"))
            app.show_error(exc, title="Search failed")
            return
        await self.show_hits(result.hits)
        self.set_status(self._status(box, None, len(result.hits), took=result.took_ms))

    async def show_hits(self, hits: list[Hit]) -> None:
        results = self.query_one("#region-results", ResultsList)
        await results.set_hits(hits, self.app.image_class)
        self._thumbnails([item for item in results.items if item.hit.image_path])

    @work(exclusive=True, group="region-thumbs", exit_on_error=False)
    async def _thumbnails(self, items: list[ResultItem]) -> None:
        await load_thumbnails(self.app, items)

    # ---------------------------------------------------------------- drawing
    def redraw(self) -> None:
        canvas = self.query_one(RegionCanvas)
        if self.picture is None or self.app.image_class is None:
            return
        cols, rows = canvas.content_size.width or 40, canvas.content_size.height or 20
        boxes = [r.box for r in self.result.regions] if self.result is not None else []
        image = draw_boxes(self.picture, pixels_for(self.app.image_protocol, cols, rows), boxes, self.selected,
                           self.edited, self.frame)
        canvas.show(image)

    def on_resize(self) -> None:
        self.call_after_refresh(self.redraw)

    def set_status(self, text: Text | str) -> None:
        self.query_one("#region-status", Static).update(text)

    def _status(self, box: Box, score: float | None, n: int, took: float | None = None,
                pending: bool = False) -> Text:
        text = Text()
        if self.edited is not None:
            text.append("your box ", style="bold")
        elif self.selected is not None:
            text.append(f"region {self.selected + 1} of {len(self.result.regions)} ", style="bold")
        text.append(str(box))
        if score is not None:
            text.append(f" · score {score:.2f}", style="dim")
        if pending:
            text.append(" · Enter: search it", style="bold")
        else:
            text.append(f" · {n} result{'s' if n != 1 else ''}")
        if took is not None:
            text.append(f" in {took:.0f} ms", style="dim")
        text.append("\nn/p: other regions · w: whole picture · tab: the results (Enter: details, m: more like it)",
                    style="dim")
        return text

    # ---------------------------------------------------------------- actions
    def current_box(self) -> Box:
        if self.edited is not None:
            return self.edited
        if self.result is not None and self.selected is not None and self.result.regions:
            return self.result.regions[self.selected].box
        return Box(self.frame[0] // 4, self.frame[1] // 4, max(1, self.frame[0] // 2), max(1, self.frame[1] // 2))

    def _edit(self, box: Box) -> None:
        self.edited = box
        self.set_status(self._status(box, None, 0, pending=True))
        self.redraw()

    def action_move(self, dx: int, dy: int) -> None:
        step = max(1, round(STEP * min(self.frame)))
        self._edit(self.current_box().moved(dx * step, dy * step, self.frame))

    def action_stretch(self, dw: int, dh: int) -> None:
        box, step = self.current_box(), max(1, round(STEP * min(self.frame)))
        width = min(self.frame[0] - box.x, max(8, box.w + dw * step))
        height = min(self.frame[1] - box.y, max(8, box.h + dh * step))
        self._edit(Box(box.x, box.y, width, height))

    def action_grow(self, sign: int) -> None:
        self._edit(self.current_box().resized(GROW if sign > 0 else 1 / GROW, self.frame))

    def action_search_box(self) -> None:
        if self.app.service is None:
            return
        self._search_box(self.current_box())

    def action_whole(self) -> None:
        self._edit(Box(0, 0, *self.frame))
        self.action_search_box()

    async def action_next_region(self, step: int) -> None:
        if self.result is not None and self.result.regions:
            base = self.selected if self.selected is not None else -step
            await self.select(base + step)

    @on(ListView.Highlighted, "#region-list")
    async def _region_highlighted(self, event: ListView.Highlighted) -> None:
        listing = self.query_one("#region-list", ListView)
        if listing.index is not None and listing.index != self.selected:
            await self.select(listing.index)

    @on(ListView.Selected, "#region-results")
    def _open_detail(self, event: ListView.Selected) -> None:
        hit = self.query_one("#region-results", ResultsList).current_hit
        if hit is None:
            return
        from mmtui.tui.screens.detail import DetailScreen

        self.app.push_screen(DetailScreen(hit), lambda chosen: self.dismiss(("like", chosen.id))
                             if isinstance(chosen, Hit) else None)

    def action_more_like_this(self) -> None:
        hit = self.query_one("#region-results", ResultsList).current_hit
        if hit is not None:
            self.dismiss(("like", hit.id))


def _region_label(n: int, region: Any) -> Text:
    text = Text(f"{n + 1:>2} ", style="bold")
    text.append(f"{str(region.box):<18}", style="cyan")
    text.append(f" {region.score:.2f}  ", style="dim")
    text.append(region.hits[0].title if region.hits else "(no product)")
    text.no_wrap = True
    text.overflow = "ellipsis"
    return text


def _oriented(path: str) -> tuple[int, int] | None:
    from mmtui.catalog.regions import oriented_size

    return oriented_size(path)
