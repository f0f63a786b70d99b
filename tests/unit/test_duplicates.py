"""mmtui duplicates on tiny_catalog (4 colours x Shirt/Shoes/Dress "for men") with one product listed twice under
another id with the same picture: found by picture, and the colour variants found by title."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmtui.cli.main import cli
from mmtui.query.duplicates import _groups, picture_pairs


def test_pairs_above_the_threshold_join_into_groups():
    import numpy as np

    vectors = np.array([[1, 0], [0.999, 0.04], [0, 1], [0.03, 1], [1, 1]], np.float32)
    pairs = picture_pairs(np.array([10, 11, 12, 13, 14]), vectors, 0.99)
    assert sorted((a, b) for a, b, _ in pairs) == [(10, 11), (12, 13)]
    assert [rowids for rowids, _ in _groups(pairs + [(11, 14, 0.995)])] == [[10, 11, 14], [12, 13]]


@pytest.fixture
def data_dir(tiny_catalog, tmp_path):
    lines = (tiny_catalog / "products.csv").read_text().splitlines()
    lines.append("50,Red Shirt for men (listed twice),Apparel > Shirt,Red,Men,10,img/1.jpg")
    (tiny_catalog / "products.csv").write_text("\n".join(lines) + "\n")
    d = tmp_path / "index"
    result = CliRunner().invoke(cli, ["build-index", str(tiny_catalog), "--data-dir", str(d), "--model", "fake"])
    assert result.exit_code == 0, result.output
    return d


def test_duplicates_finds_the_same_picture_and_the_colour_variants(data_dir, tmp_path):
    result = CliRunner().invoke(cli, ["duplicates", "--data-dir", str(data_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [g["ids"] for g in report["same_picture"]["list"]] == [["1", "50"]]
    assert report["same_picture"]["list"][0]["similarity"] >= 0.97
    titles = {tuple(g["ids"]) for g in report["same_title"]["list"]}
    assert ("1", "4", "7", "10") in titles and ("3", "6", "9", "12") in titles  # shirts, dresses in 4 colours
    md = tmp_path / "dups.md"
    text = CliRunner().invoke(cli, ["duplicates", "--data-dir", str(data_dir), "--by", "picture", "--report",
                                    str(md)]).output
    assert "same picture: 1 group, 2 products" in text and "same title" not in text
    assert "Red Shirt for men (listed twice)" in md.read_text()
