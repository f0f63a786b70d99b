"""Search by a region of a picture: box parsing, candidate windows, suppression, region pooling, the service."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mmtui.build.pipeline import build_index
from mmtui.catalog.regions import (Box, candidate_boxes, fit_box, iou, non_max_suppression, oriented_size,
                                   parse_box)
from mmtui.encoders import FakeEncoder
from mmtui.errors import QueryError
from mmtui.query.service import Hit, SearchService


# -- boxes ------------------------------------------------------------------------------------------------------

def test_a_box_is_read_in_pixels_or_in_fractions_of_the_picture():
    assert parse_box("120,40,200,180") == Box(120, 40, 200, 180)
    assert parse_box([10, 20, 30, 40]) == Box(10, 20, 30, 40)
    assert parse_box("0.5,0,0.5,1", (512, 384)) == Box(256, 0, 256, 384)
    assert parse_box(" 0.25 0.25 0.5 0.5 ", (400, 200)) == Box(100, 50, 200, 100)
    assert parse_box("400,300,500,500", (512, 384)) == Box(400, 300, 112, 84)  # clipped to the picture


@pytest.mark.parametrize("text, size, words", [
    ("1,2,3", None, "not four numbers"),
    ("a,b,c,d", None, "not four numbers"),
    ("0,0,0,10", None, "no area"),
    ("10,10,-5,5", None, "no area"),
    ("nan,0,10,10", None, "not four numbers"),
    ("0.1,0.1,0.5,0.5", None, "in fractions"),
    ("600,0,100,100", (512, 384), "outside the 512x384 picture"),
    ("-200,-200,100,100", (512, 384), "outside"),
])
def test_a_bad_region_is_a_clear_error(text, size, words):
    with pytest.raises(QueryError) as err:
        parse_box(text, size)
    assert words in err.value.message and err.value.hint


def test_boxes_move_and_resize_inside_the_picture():
    size = (100, 80)
    box = Box(10, 10, 40, 40)
    assert box.moved(-50, 0, size) == Box(0, 10, 40, 40)
    assert box.moved(500, 500, size) == Box(60, 40, 40, 40)
    grown = box.resized(10, size)
    assert grown == Box(0, 0, 100, 80)
    assert box.resized(0.5, size) == Box(20, 20, 20, 20)
    assert fit_box(grown, size) == grown


def test_candidate_windows_cover_the_picture_at_three_sizes():
    for width, height in ((512, 383), (348, 464), (64, 640)):
        boxes = candidate_boxes(width, height)
        assert len(boxes) == len(set(boxes)) > 20
        assert all(b.x >= 0 and b.y >= 0 and b.x + b.w <= width and b.y + b.h <= height for b in boxes)
        covered = np.zeros((height, width), bool)
        for b in boxes:
            covered[b.y:b.y + b.h, b.x:b.x + b.w] = True
        assert covered.all()
        short = min(width, height)
        sides = [(b.w * b.h) ** 0.5 / short for b in boxes]
        assert all(any(abs(side - scale) < 0.02 for side in sides) for scale in (0.35, 0.5, 0.7))
        assert all(any(abs(side - scale) < 0.02 for scale in (0.35, 0.5, 0.7)) for side in sides)


def test_suppression_keeps_the_best_and_drops_what_overlaps_it():
    boxes = [Box(0, 0, 10, 10), Box(1, 1, 10, 10), Box(50, 50, 10, 10), Box(20, 0, 10, 10)]
    assert iou(boxes[0], boxes[0]) == 1.0 and iou(boxes[0], boxes[2]) == 0.0
    assert non_max_suppression(boxes, [0.5, 0.9, 0.7, 0.1]) == [1, 2, 3]
    assert non_max_suppression(boxes, [0.5, 0.9, 0.7, 0.1], limit=2) == [1, 2]
    assert non_max_suppression(boxes, [0.5, 0.9, 0.7, 0.1], overlap=0.9) == [1, 2, 0, 3]


def test_a_rotated_photo_is_measured_as_viewers_show_it(tmp_path):
    image = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: shown 20 wide, 40 tall
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert oriented_size(tmp_path / "rotated.jpg") == (20, 40)
    assert oriented_size(tmp_path / "missing.jpg") is None


def test_round_robin_takes_each_region_s_best_in_turn():
    from mmtui.query.regions import round_robin

    def hits(*ids):
        return [Hit(id=i, title=i, score=1.0 - n / 10, rank=n + 1) for n, i in enumerate(ids)]

    merged = round_robin([hits("a", "b", "c"), hits("d", "a", "e"), hits("f")], k=5)
    assert [h.id for h in merged] == ["a", "d", "f", "b", "c"]
    assert [h.rank for h in merged] == [1, 2, 3, 4, 5]


def test_region_means_from_the_summed_area_table_equal_the_plain_means():
    import torch

    from mmtui.encoders.regions import _box_means, _cells

    fmap = torch.rand(5, 7, 9)
    boxes = [Box(0, 0, 90, 70), Box(13, 5, 31, 44), Box(80, 60, 10, 10), Box(0, 35, 45, 35)]
    cells = _cells(boxes, (7, 9), (90, 70))
    assert cells[0] == (0, 7, 0, 9) and cells[2] == (6, 7, 8, 9)
    got = _box_means(fmap, cells)
    for row, (r0, r1, c0, c1) in zip(got, cells):
        assert torch.allclose(row, fmap[:, r0:r1, c0:c1].mean(dim=(1, 2)), atol=1e-5)


# -- the service -------------------------------------------------------------------------------------------------

@pytest.fixture
def service(tiny_catalog, fake_settings):
    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    return SearchService.open(fake_settings, encoder=FakeEncoder())


def _scene(tiny_catalog, tmp_path, left: str, right: str):
    """Two product pictures side by side on a grey shelf, each a third of the scene."""
    scene = Image.new("RGB", (300, 120), (128, 128, 128))
    for x, pid in ((10, left), (190, right)):
        with Image.open(tiny_catalog / "img" / f"{pid}.jpg") as product:
            scene.paste(product.convert("RGB").resize((100, 100)), (x, 10))
    path = tmp_path / "scene.png"
    scene.save(path)
    return path


def test_a_region_searches_only_that_part_of_the_picture(service, tiny_catalog, tmp_path):
    scene = _scene(tiny_catalog, tmp_path, "1", "8")  # Red Shirt | Blue Dress
    left = service.search_image(scene, k=3, region="10,10,100,100")
    right = service.search_image(scene, k=3, region="0.63,0.08,0.33,0.83")
    assert left.hits[0].id == "1" and right.hits[0].id == "8"
    assert left.query.endswith("@10,10,100,100")
    with pytest.raises(QueryError, match="outside"):
        service.search_image(scene, k=3, region="400,0,50,50")


def test_proposed_regions_find_each_product_of_a_scene(service, tiny_catalog, tmp_path):
    scene = _scene(tiny_catalog, tmp_path, "1", "8")
    result = service.search_regions(scene, k=5, limit=4)
    assert 1 <= len(result.regions) <= 4 and result.candidates > len(result.regions)
    assert result.size == (300, 120)
    firsts = {region.hits[0].id for region in result.regions}
    assert {"1", "8"} <= firsts
    assert {"1", "8"} <= {h.id for h in result.hits[:len(result.regions)]}  # the merged list leads with them
    scores = [r.score for r in result.regions]
    assert scores == sorted(scores, reverse=True)
    for a in result.regions:
        for b in result.regions:
            assert a is b or iou(a.box, b.box) <= 0.3
    body = json.loads(json.dumps(result.to_json()))
    assert body["kind"] == "image" and len(body["regions"]) == len(result.regions)
    assert set(body["regions"][0]) == {"box", "score", "hits"} and body["hits"]


def test_region_search_refuses_a_bad_number_of_regions(service, tiny_catalog):
    with pytest.raises(QueryError, match="number of regions"):
        service.search_regions(tiny_catalog / "img" / "1.jpg", limit=0)


def test_an_encoder_without_a_feature_map_encodes_crops_instead():
    from mmtui.encoders.regions import can_pool

    assert not can_pool(FakeEncoder())  # the lite encoder pools: tests/unit/test_lite.py


def test_region_maxes_read_from_the_coarse_grid_cover_the_box():
    import torch

    from mmtui.encoders.regions import _box_maxes, _cells, _coarse

    fmap = torch.rand(3, 40, 52)
    coarse = _coarse(fmap, (10, 13))
    assert coarse.shape == (3, 20, 26)
    boxes = [Box(0, 0, 520, 400), Box(133, 57, 101, 88), Box(500, 390, 20, 10)]
    exact = [fmap[:, r0:r1, c0:c1].amax(dim=(1, 2)) for r0, r1, c0, c1 in _cells(boxes, (40, 52), (520, 400))]
    got = _box_maxes(coarse, _cells(boxes, coarse.shape[1:], (520, 400)))
    assert torch.equal(got[0], fmap.amax(dim=(1, 2)))
    for row, want in zip(got, exact):
        assert (row >= want).all()  # the coarse cells hold the box (a cell at most beyond each edge)


def test_a_region_of_a_rotated_photo_is_read_as_viewers_show_it(service, tmp_path):
    """Stored 80x40 with EXIF "rotate 90": shown 40x80, red on top, blue below. The top half is red."""
    stored = Image.new("RGB", (80, 40), (20, 30, 200))
    stored.paste(Image.new("RGB", (40, 40), (200, 20, 20)), (0, 0))  # shown on top after the rotation
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    top = service.search_image(path, k=3, region="0,0,40,40")
    bottom = service.search_image(path, k=3, region="0,40,40,40")
    assert top.hits[0].colour == "Red" and bottom.hits[0].colour == "Blue"
    with pytest.raises(QueryError, match="outside the 40x80 picture"):
        service.search_image(path, k=3, region="50,0,10,10")
