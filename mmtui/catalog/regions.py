"""Regions of a picture: a box (x, y, w, h), read from text, fitted to a picture, cropped; candidate boxes over a scene
photo and non-maximum suppression. Geometry only: scoring a region needs the model (mmtui.query.regions).

Boxes are in the pixels of the picture as an image viewer shows it (EXIF orientation applied), x, y the top-left
corner. Candidates are windows at three sizes (0.35, 0.5 and 0.7 of the picture's shorter side; square, 3:2 and 2:3
at the two smaller sizes), each moved by half its side: products in a room or on a shelf photo fill anything from a
tenth to half of it (benchmarks/results/regions.md measured which sizes find them).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from PIL import Image

from mmtui.errors import QueryError

REGION_HINT = ("give x,y,w,h in pixels of the picture (e.g. 120,40,200,180), or as fractions of its width and height "
               "(e.g. 0.5,0,0.5,1)")
SCALES: tuple[tuple[float, tuple[float, ...]], ...] = ((0.35, (1.0, 1.5, 1 / 1.5)), (0.5, (1.0, 1.5, 1 / 1.5)),
                                                       (0.7, (1.0,)))  # (side / shorter side, width:height ratios)
MIN_SIDE = 8  # a region narrower than this many pixels holds nothing to search by


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    @property
    def area(self) -> int:
        return self.w * self.h

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.w},{self.h}"

    def scaled(self, sx: float, sy: float) -> "Box":
        """This box in a picture sx times as wide and sy times as tall."""
        x0, y0 = round(self.x * sx), round(self.y * sy)
        x1, y1 = round((self.x + self.w) * sx), round((self.y + self.h) * sy)
        return Box(x0, y0, max(1, x1 - x0), max(1, y1 - y0))

    def moved(self, dx: int, dy: int, size: tuple[int, int]) -> "Box":
        """Moved by (dx, dy), kept inside a picture of `size`."""
        width, height = size
        return Box(min(max(0, self.x + dx), max(0, width - self.w)), min(max(0, self.y + dy), max(0, height - self.h)),
                   self.w, self.h)

    def resized(self, factor: float, size: tuple[int, int]) -> "Box":
        """Grown (factor > 1) or shrunk about its centre, kept inside a picture of `size`."""
        width, height = size
        w = min(width, max(MIN_SIDE, round(self.w * factor)))
        h = min(height, max(MIN_SIDE, round(self.h * factor)))
        cx, cy = self.x + self.w / 2, self.y + self.h / 2
        return Box(round(cx - w / 2), round(cy - h / 2), w, h).moved(0, 0, size)


def region_text(region: str | Sequence[float]) -> str:
    """"x,y,w,h" (or four numbers) checked and written as "x,y,w,h"; QueryError when it is not four numbers with a
    width and height over 0."""
    parts = [p for p in re.split(r"[,\s]+", region.strip()) if p] if isinstance(region, str) else \
        [str(p) for p in region]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise QueryError(f"region {_shown(region)!r} is not four numbers x,y,w,h", REGION_HINT)
    if values[2] <= 0 or values[3] <= 0:
        raise QueryError(f"region {_shown(region)!r} has no area (its width and height must be over 0)", REGION_HINT)
    return ",".join(parts)


def parse_box(region: str | Sequence[float], size: tuple[int, int] | None = None) -> Box:
    """"x,y,w,h" (or four numbers) -> Box in pixels. Fractions of the picture (every value from 0 to 1, one at least
    written with a decimal point: 0.5,0,0.5,1) need `size`. With `size`, the box is clipped to the picture; a box
    outside it is an error."""
    parts = region_text(region).split(",")
    x, y, w, h = (float(p) for p in parts)
    if any("." in p for p in parts) and all(0 <= float(p) <= 1 for p in parts):
        if size is None:
            raise QueryError(f"region {_shown(region)!r} is in fractions, but the picture's size is not known",
                             "give the region in pixels")
        x, w = x * size[0], w * size[0]
        y, h = y * size[1], h * size[1]
    box = Box(round(x), round(y), max(1, round(w)), max(1, round(h)))
    return fit_box(box, size) if size is not None else box


def fit_box(box: Box, size: tuple[int, int]) -> Box:
    """The part of `box` inside a picture of `size`; QueryError when there is none worth searching."""
    width, height = size
    x0, y0 = max(0, box.x), max(0, box.y)
    x1, y1 = min(width, box.x + box.w), min(height, box.y + box.h)
    if x1 - x0 < min(MIN_SIDE, width) or y1 - y0 < min(MIN_SIDE, height):
        raise QueryError(f"region {box} is outside the {width}x{height} picture (or under {MIN_SIDE} pixels inside it)",
                         f"x from 0 to {width - 1}, y from 0 to {height - 1}; " + REGION_HINT)
    return Box(x0, y0, x1 - x0, y1 - y0)


def _shown(text: str | Sequence[float]) -> str:
    return text if isinstance(text, str) else ",".join(str(p) for p in text)


def oriented_size(path: Path | str) -> tuple[int, int] | None:
    """(width, height) of an image file as viewers show it (EXIF rotation applied), from its header; None if it
    cannot be read."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112, 1)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def crop(image: Image.Image, box: Box) -> Image.Image:
    return image.crop((box.x, box.y, box.x + box.w, box.y + box.h))


def candidate_boxes(width: int, height: int, scales=SCALES) -> list[Box]:
    """Windows over the picture at each scale and ratio, half a window apart, covering it edge to edge."""
    short = min(width, height)
    out: list[Box] = []
    seen: set[Box] = set()
    for scale, ratios in scales:
        for ratio in ratios:
            w = min(width, max(1, round(short * scale * math.sqrt(ratio))))
            h = min(height, max(1, round(short * scale / math.sqrt(ratio))))
            nx = max(1, math.ceil((width - w) / (w / 2)) + 1)
            ny = max(1, math.ceil((height - h) / (h / 2)) + 1)
            for i in range(nx):
                for j in range(ny):
                    box = Box(round(i * (width - w) / max(nx - 1, 1)), round(j * (height - h) / max(ny - 1, 1)), w, h)
                    if box not in seen:
                        seen.add(box)
                        out.append(box)
    return out


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def non_max_suppression(boxes: Sequence[Box], scores: Iterable[float], *, overlap: float = 0.3,
                        limit: int = 8) -> list[int]:
    """Indices of the best-scoring boxes, best first, none overlapping a better one by more than `overlap` (IoU)."""
    scores = list(scores)
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        if all(iou(boxes[i], boxes[j]) <= overlap for j in keep):
            keep.append(i)
            if len(keep) >= limit:
                break
    return keep
