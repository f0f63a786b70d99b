"""Vectors of many regions of one picture, for region proposals (mmtui.query.regions).

Encoding each candidate crop costs one pass of the image tower per box (~150 boxes a photo). The lite model's
image head reads only features pooled over the picture (mean/max/GeM of stage and head maps, plus colour
statistics), so a region's features can be pooled over the part of the maps that the box covers instead: one
pass of the tower over the whole picture serves every box (region pooling, as in R-MAC / Fast R-CNN). Means
come from summed-area tables; maxes from the maps max-pooled to a 1/20 grid first (cheap slices); colour
statistics from one shrunk copy of the picture. These vectors agree with encoding the crop itself to a cosine of
~0.7-0.95, and found as many products in the rooms and shelf photos of benchmarks/results/regions.md. Other
encoders (open_clip, a fine-tuned tower tail) encode the crops.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from mmtui.catalog.regions import Box, crop
from mmtui.encoders import towers
from mmtui.encoders.base import l2_normalize

POOL_SHORT_SIDE = 320  # the picture's shorter side for the pooled pass (about 2.6 passes at 224 of work)
COLOUR_SIDE = 56  # colour statistics are a histogram and an 8x8 silhouette: 56 px is enough, 16x cheaper than 224


def region_vectors(encoder, image: Image.Image, boxes: Sequence[Box]) -> np.ndarray:
    """(len(boxes), dim) L2-normalised vectors in the encoder's space, one per box of `image`."""
    if not boxes:
        return np.zeros((0, int(getattr(encoder, "dim", 0))), np.float32)
    if can_pool(encoder):
        return pooled_vectors(encoder, image, boxes)
    return encoder.encode_images([crop(image, box) for box in boxes])


def can_pool(encoder) -> bool:
    """A lite encoder whose image head reads pooled features only (no fine-tuned tower tail)."""
    config = getattr(encoder, "config", None)
    heads = getattr(encoder, "heads", None)
    return (isinstance(config, dict) and heads is not None and getattr(encoder, "image_tower", None) is not None
            and config.get("image", {}).get("tail_from") is None and bool(getattr(heads.image, "pooled", None)))


def pooled_vectors(encoder, image: Image.Image, boxes: Sequence[Box]) -> np.ndarray:
    maps = _feature_maps(encoder, image)
    parts: dict[str, torch.Tensor] = {}
    for name, fmap in maps.items():
        cells = _cells(boxes, fmap.shape[1:], image.size)
        means = _box_means(fmap, cells)
        coarse = _coarse(fmap, maps["head"].shape[1:])
        maxes = _box_maxes(coarse, _cells(boxes, coarse.shape[1:], image.size))
        if name == "head":
            parts["head_mean"], parts["head_max"] = means, maxes
            parts["head_gem"] = _box_means(fmap.clamp_min(1e-6).pow(3), cells).clamp_min(1e-18).pow(1 / 3)
        else:
            parts[f"{name}_mean"], parts[f"{name}_max"] = means, maxes
    if "colour" in encoder.heads.image.pooled:
        parts["colour"] = torch.from_numpy(_colour(image, boxes))
    z = torch.cat([parts[name].float() for name in encoder.heads.image.pooled], dim=1).to(encoder.device)
    with torch.inference_mode():
        return l2_normalize(encoder.heads.image.flat(z).float().cpu().numpy())


def _feature_maps(encoder, image: Image.Image) -> dict[str, torch.Tensor]:
    """The tower's stage maps (as the head pools them) and head map over the whole picture, resized so its shorter
    side is POOL_SHORT_SIDE (sides rounded to the tower's stride of 32)."""
    width, height = image.size
    scale = POOL_SHORT_SIDE / min(width, height)
    size = (max(32, round(width * scale / 32) * 32), max(32, round(height * scale / 32) * 32))
    # np.array, not np.asarray: a writable copy (torch.from_numpy warns about a read-only one)
    pixels = np.array(image.convert("RGB").resize(size, Image.BICUBIC), dtype=np.uint8)[None]
    x = towers.array_to_tensor(pixels).to(encoder.device)
    if encoder.device == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    if getattr(encoder, "image_bf16", False):
        x = x.to(torch.bfloat16)
    model = encoder.image_tower
    ends = towers.STAGE_ENDS[encoder.config.get("image_tower", "lite0")]
    wanted = {name.split("_")[0] for name in encoder.heads.image.pooled}
    maps: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        h = model._swish(model._bn0(model._conv_stem(x)))
        for idx, block in enumerate(model._blocks):
            h = block(h)
            if idx in ends and f"s{idx}" in wanted:
                maps[f"s{idx}"] = h[0].float().contiguous().cpu()
        maps["head"] = model._swish(model._bn1(model._conv_head(h)))[0].float().contiguous().cpu()
    return maps


def _cells(boxes: Sequence[Box], shape: tuple[int, int], size: tuple[int, int]) -> list[tuple]:
    """Each box as the (row0, row1, col0, col1) cells of a map of `shape` it covers (at least one cell)."""
    rows, cols = int(shape[0]), int(shape[1])
    width, height = size
    out = []
    for box in boxes:
        c0 = min(cols - 1, int(math.floor(box.x / width * cols)))
        c1 = max(c0 + 1, min(cols, int(math.ceil((box.x + box.w) / width * cols))))
        r0 = min(rows - 1, int(math.floor(box.y / height * rows)))
        r1 = max(r0 + 1, min(rows, int(math.ceil((box.y + box.h) / height * rows))))
        out.append((r0, r1, c0, c1))
    return out


def _box_means(fmap: torch.Tensor, cells: list[tuple]) -> torch.Tensor:
    """Mean of a (C, H, W) map over each box's cells, from one summed-area table: (len(cells), C)."""
    table = torch.zeros(fmap.shape[0], fmap.shape[1] + 1, fmap.shape[2] + 1, dtype=torch.float64)
    table[:, 1:, 1:] = fmap.double().cumsum(1).cumsum(2)
    r0, r1, c0, c1 = (torch.tensor(v) for v in zip(*cells))
    sums = table[:, r1, c1] - table[:, r0, c1] - table[:, r1, c0] + table[:, r0, c0]
    return (sums / ((r1 - r0) * (c1 - c0))).T.float()


def _coarse(fmap: torch.Tensor, head: tuple[int, int]) -> torch.Tensor:
    """A fine map max-pooled to twice the head map's grid (stride 16): a box's max is then read over at most a few
    hundred cells, its edges placed to 1/20 of the picture's shorter side (the max of maxes is the max)."""
    from torch.nn import functional as F

    factor = max(1, fmap.shape[1] // (2 * head[0]))
    return fmap if factor == 1 else F.max_pool2d(fmap[None], factor, factor, ceil_mode=True)[0]


def _box_maxes(fmap: torch.Tensor, cells: list[tuple]) -> torch.Tensor:
    """Max of a (coarse) (C, H, W) map over each box's cells: (len(cells), C)."""
    return torch.stack([fmap[:, r0:r1, c0:c1].amax(dim=(1, 2)) for r0, r1, c0, c1 in cells])


def _colour(image: Image.Image, boxes: Sequence[Box]) -> np.ndarray:
    """towers.colour_features of each box as encoding its crop would see it (padded square on white), sampled from
    one shrunk copy of the picture by index arithmetic rather than a resize per crop (nearest pixel: a colour
    histogram and an 8x8 silhouette do not need more)."""
    shrink = min(1.0, 4 * COLOUR_SIDE / min(image.size))
    small = image.convert("RGB")
    if shrink < 1:
        small = small.resize((max(1, round(image.width * shrink)), max(1, round(image.height * shrink))),
                             Image.BILINEAR)
    pixels = np.concatenate([np.asarray(small, dtype=np.uint8).reshape(-1, 3), [[255, 255, 255]]])  # last: white
    white = len(pixels) - 1
    sx, sy = small.width / image.width, small.height / image.height
    grid = (np.arange(COLOUR_SIDE) + 0.5) / COLOUR_SIDE
    index = np.empty((len(boxes), COLOUR_SIDE, COLOUR_SIDE), np.int64)
    for n, box in enumerate(boxes):
        side = max(box.w, box.h)  # the crop padded to a square, centred, as towers.pad_to_square does
        xs = box.x + (box.w - side) / 2 + grid * side
        ys = box.y + (box.h - side) / 2 + grid * side
        inside_x = (xs >= box.x) & (xs < box.x + box.w)
        inside_y = (ys >= box.y) & (ys < box.y + box.h)
        px = np.clip((xs * sx).astype(np.int64), 0, small.width - 1)
        py = np.clip((ys * sy).astype(np.int64), 0, small.height - 1)
        index[n] = np.where(inside_y[:, None] & inside_x[None, :], py[:, None] * small.width + px[None, :], white)
    return towers.colour_features(pixels[index])
