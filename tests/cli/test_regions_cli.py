"""`mmtui search --image --region/--regions` and `mmtui eval --regions` on the tiny catalog (fake model)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from PIL import Image

from mmtui.cli.main import cli


def scene(tiny_catalog, path, left="1", right="8"):
    """Red Shirt (1) and Blue Dress (8) side by side on a grey shelf."""
    picture = Image.new("RGB", (300, 120), (128, 128, 128))
    for x, pid in ((10, left), (190, right)):
        with Image.open(tiny_catalog / "img" / f"{pid}.jpg") as product:
            picture.paste(product.convert("RGB").resize((100, 100)), (x, 10))
    picture.save(path)
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_search_by_a_region_of_the_picture(data_dir, tiny_catalog, tmp_path):
    photo = scene(tiny_catalog, tmp_path / "shelf.png")
    result = run("search", "--data-dir", data_dir, "--image", photo, "--region", "190,10,100,100", "-k", "3", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["hits"][0]["id"] == "8" and body["query"].endswith("@190,10,100,100")


def test_search_every_proposed_region_as_json_and_as_a_table(data_dir, tiny_catalog, tmp_path):
    photo = scene(tiny_catalog, tmp_path / "shelf.png")
    result = run("search", "--data-dir", data_dir, "--image", photo, "--regions", "4", "-k", "2", "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["size"] == [300, 120] and 1 <= len(body["regions"]) <= 4
    assert {"1", "8"} <= {r["hits"][0]["id"] for r in body["regions"]}
    assert all(len(r["box"]) == 4 and len(r["hits"]) <= 2 for r in body["regions"])
    table = run("search", "--data-dir", data_dir, "--image", photo, "--regions", "auto", "-k", "2")
    assert table.exit_code == 0, table.output
    assert "regions of" in table.output and "Red Shirt for men" in table.output


def test_region_options_are_checked_before_anything_runs(data_dir, tiny_catalog, tmp_path):
    photo = scene(tiny_catalog, tmp_path / "shelf.png")
    no_image = run("search", "red", "--data-dir", data_dir, "--region", "0,0,10,10")
    assert no_image.exit_code == 2 and "give --image PATH too" in no_image.output
    both = run("search", "--data-dir", data_dir, "--image", photo, "--region", "0,0,50,50", "--regions", "auto")
    assert both.exit_code == 2 and "not both" in both.output
    bad = run("search", "--data-dir", data_dir, "--image", photo, "--regions", "lots")
    assert bad.exit_code == 2 and "not auto or a number of regions" in bad.output
    outside = run("search", "--data-dir", data_dir, "--image", photo, "--region", "500,0,50,50")
    assert outside.exit_code == 1 and "outside the 300x120 picture" in outside.output and "hint:" in outside.output


def test_eval_scores_region_lines_and_proposed_regions(data_dir, tiny_catalog, tmp_path):
    photo = scene(tiny_catalog, tmp_path / "shelf.png")
    queries = tmp_path / "shelf.jsonl"
    queries.write_text("\n".join(json.dumps(line) for line in [
        {"image": "shelf.png", "relevant": {"1": 1, "8": 1}},
        {"image": "shelf.png", "region": [190, 10, 100, 100], "relevant": {"8": 1}},
        {"image": "shelf.png", "region": "0.03,0.08,0.33,0.83", "relevant": {"1": 1}},
        {"image": "shelf.png", "region": [1, 2], "relevant": {"1": 1}},
    ]) + "\n")
    regions = run("eval", queries, "--data-dir", data_dir, "--mode", "image", "--regions", "4", "--json")
    assert regions.exit_code == 0, regions.output
    body = json.loads(regions.stdout)
    assert body["n_queries"] == 3 and body["skipped"] == {"bad_region": 1}
    assert body["recall@3"] == 1.0  # each query's products are among the regions' first hits
    single = json.loads(run("eval", queries, "--data-dir", data_dir, "--mode", "image", "--json").stdout)
    assert single["n_queries"] == 3
    assert photo.exists()
