"""Product images in the terminal: pick the graphics protocol once, load and shrink images off the UI thread.

`detect_graphics()` must run before the Textual app starts: it asks the terminal what it is and what it draws
(mmtui.tui.terminal), and textual-image asks again for the cell size when it is first imported; neither is
possible once Textual owns the terminal. A terminal that does not answer costs up to half a second, so
`start_detecting()` asks on a thread while the app's modules import.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

from mmtui.tui.terminal import Choice, choose, probe

PROTOCOLS = ("auto", "sixel", "tgp", "halfcell", "unicode", "none")
ENV_VAR = "MMTUI_IMAGES"  # force a protocol: sixel | tgp | halfcell | unicode | none


def forced_protocol(requested: str | None = None) -> str | None:
    """The protocol `requested` or MMTUI_IMAGES names (None: ask the terminal)."""
    choice = (requested or os.environ.get(ENV_VAR) or "auto").strip().lower()
    return choice if choice in PROTOCOLS and choice != "auto" else None


def detect_graphics(requested: str | None = None, ask: Callable[[], Any] = probe) -> Choice:
    """The protocol to draw images with and why. Call before App.run; without a forced choice it asks the
    terminal (`ask`, mmtui.tui.terminal.probe) and decides on its answers (mmtui.tui.terminal.choose)."""
    forced = forced_protocol(requested)
    if forced is not None:
        choice = Choice(forced, f"{ENV_VAR}={forced} chose it" if not requested else f"{forced} was asked for",
                        forced=True)
    else:
        choice = choose(ask())
    if choice.protocol != "none":
        _prepare_textual_image()
    return choice


def detect_protocol(requested: str | None = None) -> str:
    """detect_graphics(requested).protocol."""
    return detect_graphics(requested).protocol


def _prepare_textual_image() -> None:
    """Import textual-image now: on import it measures the cell size and asks the terminal its own questions,
    which only work before Textual starts reading the terminal."""
    try:
        import textual_image.widget  # noqa: F401
    except Exception:  # no terminal to ask (closed stdout, odd platform): its defaults are used
        pass


def start_detecting(requested: str | None = None) -> Callable[[], Choice]:
    """detect_graphics() on a daemon thread, started now; the returned function waits for its answer.

    Its waits for the terminal's answers are I/O, so they overlap the imports that follow on the calling thread.
    Nothing else may read the terminal until the answer is taken."""
    answer: list[Choice] = []

    def detect() -> None:
        try:
            answer.append(detect_graphics(requested))
        except Exception as exc:  # an odd terminal: plain half-blocks rather than no TUI
            answer.append(Choice("halfcell", f"asking the terminal failed ({type(exc).__name__}: {exc})"))

    thread = threading.Thread(target=detect, name="mmtui-image-protocol", daemon=True)
    thread.start()

    def result() -> Choice:
        thread.join()
        return answer[0] if answer else Choice("halfcell", "asking the terminal gave no answer")

    return result


def image_widget_class(protocol: str) -> Any | None:
    """The textual-image widget class for a protocol, or None when images are off."""
    if protocol == "none":
        return None
    import textual_image.widget as tiw
    return {"sixel": tiw.SixelImage, "tgp": tiw.TGPImage, "unicode": tiw.UnicodeImage}.get(protocol, tiw.HalfcellImage)


def pixels_for(protocol: str, cols: int, rows: int) -> tuple[int, int]:
    """How many source pixels a cols x rows cell box needs (more for real graphics, 1x2 per cell for half-blocks)."""
    if protocol in ("sixel", "tgp"):
        try:
            from textual_image._terminal import get_cell_size
            cell = get_cell_size()
            return max(cols * cell.width, 1), max(rows * cell.height, 1)
        except Exception:
            return cols * 10, rows * 20
    return cols, rows * 2


class ThumbnailCache:
    """Thread-safe LRU of shrunk RGB images keyed by (path, width, height)."""

    def __init__(self, capacity: int = 512) -> None:
        self._items: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.capacity = capacity

    def peek(self, path: str | Path, size: tuple[int, int]) -> Any | None:
        """The cached image, or None when it is not loaded yet (never reads a file: safe on the UI thread)."""
        key = (str(path), int(size[0]), int(size[1]))
        with self._lock:
            image = self._items.get(key)
            if image is not None:
                self._items.move_to_end(key)
            return image

    def get(self, path: str | Path, size: tuple[int, int]) -> Any | None:
        """The image fitted into size (aspect kept, centred on white), or None when it cannot be read."""
        key = (str(path), int(size[0]), int(size[1]))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        image = load_fitted(path, size)
        if image is None:
            return None
        with self._lock:
            self._items[key] = image
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return image

    def __len__(self) -> int:
        return len(self._items)


def load_fitted(path: str | Path, size: tuple[int, int]) -> Any | None:
    """Open an image and fit it into size; None when it is missing or unreadable."""
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((max(size[0], 1), max(size[1], 1)), Image.Resampling.LANCZOS)
            canvas = Image.new("RGB", (max(size[0], 1), max(size[1], 1)), (255, 255, 255))
            canvas.paste(im, ((canvas.width - im.width) // 2, (canvas.height - im.height) // 2))
            return canvas
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
