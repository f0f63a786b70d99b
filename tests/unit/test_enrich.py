"""Zero-shot enrichment: tags from cached image vectors, derived text lexical search sees, conflicts, accuracy."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest

from mmtui.build.pipeline import build_index
from mmtui.encoders.base import fingerprint_of, l2_normalize
from mmtui.build.enrich import conflicts, enrich, product_tags, tag_accuracy, vocabularies
from mmtui.store.db import Store

PALETTE = {"black": (12, 12, 12), "white": (250, 250, 250), "grey": (128, 128, 128), "blue": (20, 30, 200),
           "navy blue": (20, 20, 90), "red": (200, 20, 20), "green": (20, 170, 40), "yellow": (230, 220, 30),
           "brown": (120, 70, 30), "pink": (250, 170, 190), "purple": (120, 40, 160), "orange": (250, 140, 20)}


class ColourEncoder:
    """Texts naming a palette colour -> that colour; images -> their mean colour (centred RGB). Other texts get a
    fixed pseudo-random vector. Enough to check that tags follow what the image shows."""

    name = "fake"
    dim = 3
    fingerprint = fingerprint_of("colour-encoder")

    def encode_texts(self, texts):
        out = []
        for text in texts:
            lower = text.lower()
            hit = next((c for c in sorted(PALETTE, key=len, reverse=True) if f" {c} " in f" {lower} "), None)
            if hit:
                out.append(np.array(PALETTE[hit], np.float32) / 255.0 - 0.5)
            else:
                seed = int(hashlib.md5(lower.encode()).hexdigest()[:8], 16)
                out.append(np.random.default_rng(seed).standard_normal(3).astype(np.float32))
        return l2_normalize(np.stack(out))

    def encode_images(self, images):
        return l2_normalize(np.stack([np.asarray(im.convert("RGB"), np.float32).reshape(-1, 3).mean(0) / 255.0 - 0.5
                                      for im in images]))


def _jpeg(rgb) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), rgb).save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    """Products whose colour field matches the image, one without any colour in its text, one that lies."""
    folder = tmp_path / "shop"
    (folder / "img").mkdir(parents=True)
    lines = ["id,title,category,colour,gender,image"]
    n = 0
    for colour in ("Black", "Red", "Blue", "Green", "Yellow", "White"):
        for kind in ("Shirt", "Shoes", "Bag"):
            n += 1
            (folder / "img" / f"{n}.jpg").write_bytes(_jpeg(PALETTE[colour.lower()]))
            lines.append(f"{n},{colour} {kind},Apparel > {kind},{colour},Men,img/{n}.jpg")
    (folder / "img" / "plain.jpg").write_bytes(_jpeg(PALETTE["red"]))
    lines.append("plain,Plain Tee,Apparel > Tshirts,,Men,img/plain.jpg")
    (folder / "img" / "liar.jpg").write_bytes(_jpeg(PALETTE["red"]))
    lines.append("liar,Blue Polo,Apparel > Shirt,Blue,Men,img/liar.jpg")
    (folder / "products.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture
def enriched(shop, fake_settings):
    build_index(fake_settings, shop, encoder=ColourEncoder())
    report = enrich(fake_settings, encoder=ColourEncoder())
    return report, Store.open(fake_settings.db_path)


def test_tags_follow_the_image_and_beat_chance(enriched):
    report, store = enriched
    assert report.products == 20
    acc = report.accuracy["colour"]
    assert acc["n"] == 19  # every product with a colour field
    assert acc["acc@1"] > max(acc["chance@1"], acc["majority@1"]) + 0.3
    assert acc == tag_accuracy(store, "colour")
    rowid = store.rowid_of(["plain"])["plain"]
    tags = product_tags(store, rowid)
    assert tags["colour"][0][0] == "red" and len(tags["colour"]) == 3
    assert tags["colour"][0][1] >= tags["colour"][1][1]
    assert set(tags) >= {"colour", "pattern", "material", "style", "article_type"}


def test_tags_are_text_that_lexical_search_sees(enriched):
    _, store = enriched
    plain = store.rowid_of(["plain"])["plain"]
    assert "red" in store.rows([plain])[0]["tags"].split(", ")
    assert plain in [r for r, _ in store.lexical("red", 50)]  # its own text never says red


def test_text_that_contradicts_the_image_is_flagged(enriched):
    _, store = enriched
    flagged = conflicts(store)
    assert [c["id"] for c in flagged] == ["liar"]
    assert "says blue" in flagged[0]["detail"] and "looks red" in flagged[0]["detail"]


def test_vocabularies_use_the_catalogs_own_article_types(enriched):
    _, store = enriched
    vocabs = vocabularies(store)
    assert "red" in vocabs["colour"] and "striped" in vocabs["pattern"]
    assert vocabs["article_type"]  # curated fallback: this catalog has no article_type field


def test_enrich_again_replaces_the_tags(enriched, fake_settings):
    _, store = enriched
    before = store.db.execute("SELECT count(*) FROM product_tags").fetchone()[0]
    enrich(fake_settings, store=store, encoder=ColourEncoder())
    assert store.db.execute("SELECT count(*) FROM product_tags").fetchone()[0] == before


def test_accuracy_refuses_unknown_fields(enriched):
    from mmtui.errors import MmtuiError

    with pytest.raises(MmtuiError):
        tag_accuracy(enriched[1], "colour", "flavour")


def test_a_schema_1_index_is_migrated_and_stays_searchable(tmp_path):
    import sqlite_utils

    from mmtui.store import db as store_module

    db = sqlite_utils.Database(tmp_path / "old.db")
    db["meta"].create({"key": str, "value": str}, pk="key")
    store_module.MIGRATIONS[0](db)
    db["meta"].insert({"key": "schema_version", "value": "1"})
    db["products"].insert({"id": "a", "title": "Red Shirt", "text": "Red Shirt. Apparel"})
    db.conn.close()
    store = Store.open(tmp_path / "old.db")
    assert store.get_meta("schema_version") == str(store_module.SCHEMA_VERSION)
    assert [r for r, _ in store.lexical("shirt", 5)] == [1]
    store.db.execute("UPDATE products SET tags = 'striped, cotton' WHERE rowid = 1")
    assert [r for r, _ in store.lexical("striped", 5)] == [1]


def test_lite_tags_agree_with_the_colour_field_above_chance(tmp_path, monkeypatch):
    """50 real sample_catalog products tagged by the default model (skipped until its weights are installed)."""
    monkeypatch.setenv("MMTUI_ONNX", "0")  # the build's query-model export (~10 s) is test_onnx_query's subject
    from mmtui.config import Settings
    from mmtui.encoders import load_encoder
    from mmtui.errors import ModelError

    try:
        encoder = load_encoder("lite", device="cpu")
    except (ModelError, ImportError, OSError) as exc:
        pytest.skip(f"the lite model is not available: {exc}")
    import torch

    torch.set_num_threads(2)
    sample = Path(__file__).resolve().parents[2] / "sample_catalog"
    lines = (sample / "styles.csv").read_text(encoding="utf-8").splitlines()
    folder = tmp_path / "fifty"
    (folder / "images").mkdir(parents=True)
    kept = [lines[0]]
    for line in lines[1:]:
        pid = line.split(",", 1)[0]
        if (sample / "images" / f"{pid}.jpg").exists():
            (folder / "images" / f"{pid}.jpg").symlink_to(sample / "images" / f"{pid}.jpg")
            kept.append(line)
        if len(kept) == 51:
            break
    (folder / "styles.csv").write_text("\n".join(kept) + "\n", encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "idx", model="lite", device="cpu")
    build_index(settings, folder, encoder=encoder)
    report = enrich(settings, encoder=encoder)
    acc = report.accuracy["colour"]
    assert acc["n"] >= 40
    assert acc["acc@1"] > acc["chance@1"] * 3 and acc["acc@3"] > acc["chance@3"] * 2
    assert acc["family@1"] > acc["majority@1"]


def test_search_results_show_the_tags(shop, fake_settings):
    from mmtui.query.service import SearchService

    build_index(fake_settings, shop, encoder=ColourEncoder())
    enrich(fake_settings, encoder=ColourEncoder())
    service = SearchService.open(fake_settings, encoder=ColourEncoder())
    hit = next(h for h in service.search("tee", k=5, mode="lexical").hits if h.id == "plain")
    assert hit.tags[0] == "red" and hit.to_json()["tags"] == hit.tags
    detail = service.product("liar")
    assert detail["image_tags"]["colour"][0][0] == "red" and detail["image_tags"]["conflict"]
