"""Searching by a region of a picture, and proposing the regions of a scene photo that look like products.

A scene (a furnished room, a shop shelf) holds many products, each small: searched whole, the picture matches
none of them well. `SearchService.search_regions` proposes regions instead:

1. candidate windows over the picture (mmtui.catalog.regions.candidate_boxes: ~120-170 for a photo);
2. one vector per window (mmtui.encoders.regions: one pass of the image tower for all of them);
3. each window scored by how product-like it is: the cosine of its closest product image in this catalog;
4. the best windows kept, none overlapping a better one by more than OVERLAP (IoU), at most `limit`;
5. each kept region searched on its own; the merged list takes each region's best in turn (round robin).

The figures that chose these steps (and the numbers) are in benchmarks/results/regions.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mmtui.catalog.regions import Box, fit_box, oriented_size, parse_box
from mmtui.errors import MmtuiError, QueryError
from mmtui.query.results import Hit, SearchResult

REGIONS = 8  # regions a scene is split into by default
OVERLAP = 0.3  # a proposal overlapping a better one more than this (IoU) is dropped
REGION_DECODE = 4  # regions are cut from the picture decoded at this many times the model's input side


@dataclass
class Region:
    box: Box  # in the picture's own pixels (as viewers show it)
    score: float  # how product-like: the cosine of the closest product image
    hits: list[Hit] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"box": self.box.as_list(), "score": round(float(self.score), 4),
                "hits": [h.to_json() for h in self.hits]}


@dataclass
class RegionSearchResult(SearchResult):
    """Each proposed region with its own hits; `hits` merges them (round robin, best region first)."""

    regions: list[Region] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)  # the picture's width and height, the boxes' frame
    candidates: int = 0  # windows scored

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["size"] = list(self.size)
        out["candidates"] = self.candidates
        out["regions"] = [r.to_json() for r in self.regions]
        return out


@dataclass
class Picture:
    """A query picture decoded for searching, and how its pixels map to the picture the user sees."""

    image: Any  # PIL RGB image
    size: tuple[int, int]  # the picture's size as viewers show it (the frame of boxes)
    label: str  # the path, or "<image>"

    def to_own(self, box: Box) -> Box:
        """A box in the user's frame -> the same box in the decoded image's pixels."""
        return box.scaled(self.image.width / self.size[0], self.image.height / self.size[1])

    def to_user(self, box: Box) -> Box:
        return box.scaled(self.size[0] / self.image.width, self.size[1] / self.image.height)

    def region(self, region: Box | str | Any) -> Box:
        """A region given as a Box, "x,y,w,h" or four numbers -> a Box inside the picture (user's frame)."""
        box = region if isinstance(region, Box) else parse_box(region, self.size)
        return fit_box(box, self.size)


def open_picture(image, min_side: int | None) -> Picture:
    """A query picture from a path (decoded at `min_side`, see mmtui.catalog.images.load_image) or a PIL image."""
    from mmtui.catalog.images import load_image

    if hasattr(image, "size"):
        picture = image.convert("RGB")
        return Picture(picture, picture.size, "<image>")
    path = Path(str(image)).expanduser()
    try:
        picture = load_image(path, min_side)
    except MmtuiError as exc:
        raise QueryError(f"cannot use {image} as a query image: {exc.message}",
                         exc.hint or "give the path of a JPEG, PNG or WEBP file") from None
    except OSError as exc:
        raise QueryError(f"cannot read the query image {image}: {exc}",
                         "give the path of a readable JPEG, PNG or WEBP file") from None
    return Picture(picture, oriented_size(path) or picture.size, str(image))


def round_robin(lists: list[list[Hit]], k: int) -> list[Hit]:
    """Each list's first, then each list's second, ... each product once, ranks renumbered."""
    out: list[Hit] = []
    seen: set[str] = set()
    for depth in range(max((len(hits) for hits in lists), default=0)):
        for hits in lists:
            if depth < len(hits) and hits[depth].id not in seen:
                seen.add(hits[depth].id)
                out.append(hits[depth])
    return [replace(hit, rank=rank) for rank, hit in enumerate(out[:k], start=1)]
