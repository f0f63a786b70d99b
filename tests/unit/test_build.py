"""The build pipeline: what is stored, what is encoded once, what a killed build leaves to finish."""

from __future__ import annotations

import numpy as np
import pytest

from mmtui.build.pipeline import build_index
from mmtui.encoders import FakeEncoder
from mmtui.progress import Cancelled, ProgressEvent
from mmtui.store.db import Store


def test_build_stores_products_rejects_and_vectors(tiny_catalog, fake_settings):
    encoder = FakeEncoder()
    report = build_index(fake_settings, tiny_catalog, encoder=encoder)
    assert report.products == 13  # 12 with images + the text-only scarf; the id-less row is rejected
    assert report.with_image == 12
    assert report.rejects_by_reason == {"image_missing": 1, "missing_id": 1}
    assert report.rejected_rows == 1
    assert encoder.images_encoded == 12
    store = Store.open(fake_settings.db_path)
    scarf = store.db.execute("SELECT image_status FROM products WHERE id = '99'").fetchone()[0]
    assert scarf == "image_missing"
    rowids, vectors = store.vectors(encoder.fingerprint, "text")
    assert len(rowids) == 13 and vectors.shape == (13, encoder.dim)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    kept = store.db.execute("SELECT kept FROM rejects WHERE reason = 'image_missing'").fetchone()[0]
    assert kept == 1


def test_second_build_encodes_nothing(tiny_catalog, fake_settings):
    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    again = FakeEncoder()
    report = build_index(fake_settings, tiny_catalog, encoder=again)
    assert (again.images_encoded, again.texts_encoded) == (0, 0)
    assert (report.encoded_images, report.encoded_texts, report.added, report.updated) == (0, 0, 0, 0)


def test_added_and_changed_products_are_the_only_ones_encoded(tiny_catalog, fake_settings, make_jpeg):
    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    csv = tiny_catalog / "products.csv"
    extra = []
    for i in range(100, 110):
        (tiny_catalog / "img" / f"{i}.jpg").write_bytes(make_jpeg((i, 50, 50), (40, 40)))
        extra.append(f"{i},New product {i},Apparel,Red,Men,1,img/{i}.jpg")
    csv.write_text(csv.read_text() + "\n".join(extra) + "\n")
    (tiny_catalog / "img" / "1.jpg").write_bytes(make_jpeg((250, 250, 0), (48, 48)))  # a changed image
    encoder = FakeEncoder()
    report = build_index(fake_settings, tiny_catalog, encoder=encoder)
    assert report.added == 10 and report.updated == 1
    assert encoder.images_encoded == 11
    # 10 new titles + 10 new combined texts; the changed image's texts were already cached
    assert encoder.texts_encoded == 20


def test_removed_products_leave_the_index(tiny_catalog, fake_settings):
    build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    csv = tiny_catalog / "products.csv"
    csv.write_text("\n".join(l for l in csv.read_text().splitlines() if not l.startswith("2,")) + "\n")
    report = build_index(fake_settings, tiny_catalog, encoder=FakeEncoder())
    assert report.removed == 1 and report.products == 12
    store = Store.open(fake_settings.db_path)
    assert store.db.execute("SELECT count(*) FROM embeddings WHERE product_rowid NOT IN "
                            "(SELECT rowid FROM products)").fetchone()[0] == 0


def test_killed_build_is_finished_without_redoing_work(tiny_catalog, fake_settings):
    class Killed(Exception):
        pass

    def die_after_first_image_batch(event: ProgressEvent) -> None:
        if event.stage == "encode-images" and event.done >= 4:
            raise Killed()

    first = FakeEncoder()
    with pytest.raises(Killed):
        build_index(fake_settings, tiny_catalog, encoder=first, progress=die_after_first_image_batch, batch_size=4)
    assert first.images_encoded == 4
    store = Store.open(fake_settings.db_path)
    assert len(store.vectors(first.fingerprint, "image")[0]) == 4  # committed before the kill
    store.close()
    second = FakeEncoder()
    report = build_index(fake_settings, tiny_catalog, encoder=second, batch_size=4)
    assert second.images_encoded == 8  # only the 8 that were not done
    assert report.products == 13
    store = Store.open(fake_settings.db_path)
    assert store.db.execute("SELECT count(*) FROM embeddings WHERE kind = 'image'").fetchone()[0] == 12


def test_cancel_stops_at_a_safe_point(tiny_catalog, fake_settings):
    import threading

    cancel = threading.Event()

    def cancel_soon(event: ProgressEvent) -> None:
        if event.stage == "encode-images" and event.done >= 4:
            cancel.set()

    with pytest.raises(Cancelled):
        build_index(fake_settings, tiny_catalog, encoder=FakeEncoder(), progress=cancel_soon, cancel=cancel,
                    batch_size=4)
    report = build_index(fake_settings, tiny_catalog, encoder=FakeEncoder(), batch_size=4)
    assert report.encoded_images == 8


def test_store_refuses_a_newer_schema(tmp_path):
    from mmtui.errors import StoreError

    store = Store.open(tmp_path / "catalog.db", create=True)
    store.set_meta("schema_version", "999")
    store.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(tmp_path / "catalog.db")


def test_missing_data_dir_says_to_build(tmp_path):
    from mmtui.errors import StoreError

    with pytest.raises(StoreError) as info:
        Store.open(tmp_path / "nothing" / "catalog.db")
    assert "build-index" in info.value.hint


def test_the_catalog_is_recorded_so_it_can_be_built_again_from_anywhere(fashion_dir, fake_settings, monkeypatch):
    """A re-encode (after `mmtui use` of a fine-tuned encoder) builds from meta "catalog": it must be the folder
    as given (both Fashion files, not only the first) and absolute, with the column mapping."""
    monkeypatch.chdir(fashion_dir.parent)
    first = build_index(fake_settings, "fashion", encoder=FakeEncoder())
    store = Store.open(fake_settings.db_path)
    catalog = store.get_meta("catalog")
    assert catalog == str(fashion_dir.resolve()) and first.catalog == catalog
    assert store.get_meta("catalog_columns") == "{}"
    monkeypatch.chdir("/")
    again = build_index(fake_settings, catalog, encoder=FakeEncoder())
    assert again.products == first.products == 4 and again.removed == 0  # the text-only row is still there


def test_a_re_encode_keeps_products_its_catalog_path_no_longer_lists(fashion_dir, fake_settings):
    build_index(fake_settings, fashion_dir, encoder=FakeEncoder())  # 4 products: both Fashion files
    again = build_index(fake_settings, fashion_dir / "styles.csv", encoder=FakeEncoder(), keep_missing=True)
    assert again.removed == 0 and again.products == 4
    pruned = build_index(fake_settings, fashion_dir / "styles.csv", encoder=FakeEncoder())
    assert pruned.removed == 1 and pruned.products == 3
