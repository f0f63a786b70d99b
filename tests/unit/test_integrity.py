"""Damaged index files, stale vectors, removed products, full disks and empty catalogs: a clear error or the
right answer, never a traceback, partial results or scores outside the cosine range; build-index repairs."""

from __future__ import annotations

import errno
import json
import random
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from mmtui.index.ann import VectorIndex
from mmtui.build.pipeline import build_index, reindex
from mmtui.config import Settings
from mmtui.encoders import FakeEncoder
from mmtui.errors import CatalogError, IndexMismatchError, StoreError
from mmtui.index.generations import IndexDamagedError, current
from mmtui.query.service import SearchService
from mmtui.store.db import Store

N = 560  # products in make_catalog's catalogs: above ann.EXACT_BELOW, so the indexes have .hnsw graphs


@pytest.fixture(scope="module")
def built(tmp_path_factory, make_catalog) -> tuple[Path, Path]:
    """(catalog, data dir) built once with the fake model; tests copy the data dir."""
    root = tmp_path_factory.mktemp("integrity")
    catalog = make_catalog(root / "shop")
    settings = Settings(data_dir=root / "index", model="fake")
    build_index(settings, catalog, encoder=FakeEncoder())
    return catalog, settings.data_dir


@pytest.fixture
def data(built, tmp_path) -> tuple[Path, Settings]:
    catalog, source = built
    shutil.copytree(source, tmp_path / "index")
    return catalog, Settings(data_dir=tmp_path / "index", model="fake")


def damage(path: Path, kind: str) -> None:
    if kind == "delete":
        path.unlink()
    elif kind == "truncate":
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
    else:  # flip 20 bytes
        data = bytearray(path.read_bytes())
        for i in random.Random(0).sample(range(len(data)), min(20, len(data))):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))


def search_all(settings: Settings) -> dict[str, object]:
    """Each mode's outcome: the number of hits, or the error raised (anything but MmtuiError fails the test)."""
    service = SearchService.open(settings, encoder=FakeEncoder())
    out: dict[str, object] = {}
    for mode in ("lexical", "image", "text", "fused", "hybrid"):
        try:
            result = service.search("blue shirt", k=10, mode=mode)
        except IndexMismatchError as exc:
            out[mode] = exc
            continue
        assert all(-1.0 <= h.score <= 1.0 for h in result.hits) or mode in ("lexical", "hybrid")
        out[mode] = len(result.hits)
    service.close()
    return out


@pytest.mark.parametrize("filename", ["image.hnsw", "image.vectors.npy", "image.labels.npy", "text.manifest.json",
                                      "fused.hnsw", "lexical.npz"])
@pytest.mark.parametrize("kind", ["delete", "truncate", "flip"])
def test_a_damaged_file_is_a_clear_error_and_build_index_repairs_it(data, filename, kind):
    catalog, settings = data
    damage(current(settings.ann_dir).dir / filename, kind)
    outcome = search_all(settings)
    name = filename.split(".")[0]
    assert outcome["lexical"] == 10  # FTS5 answers when the lexical index is damaged
    for mode in ("image", "text", "fused"):
        if mode == name:
            assert isinstance(outcome[mode], IndexDamagedError)
            assert filename in outcome[mode].message and "build-index" in outcome[mode].hint
        else:
            assert outcome[mode] == 10
    assert isinstance(outcome["hybrid"], IndexDamagedError) if name in ("image", "text") else outcome["hybrid"] == 10

    report = build_index(settings, catalog, encoder=FakeEncoder())
    assert report.encoded_images == report.encoded_texts == 0  # a repair encodes nothing
    assert not current(settings.ann_dir).check(full=True)
    assert search_all(settings) == {mode: 10 for mode in ("lexical", "image", "text", "fused", "hybrid")}


@pytest.mark.parametrize("kind", ["delete", "truncate", "flip"])
def test_a_damaged_pointer_leaves_lexical_search_working(data, kind):
    catalog, settings = data
    damage(settings.ann_dir / "CURRENT.json", kind)
    outcome = search_all(settings)
    assert outcome["lexical"] == 10
    assert all(isinstance(outcome[m], IndexDamagedError) for m in ("image", "text", "fused", "hybrid"))
    build_index(settings, catalog, encoder=FakeEncoder())
    assert search_all(settings)["hybrid"] == 10


def test_reindex_rebuilds_only_what_is_damaged(data):
    _, settings = data
    old = current(settings.ann_dir)
    damage(old.dir / "text.vectors.npy", "flip")
    reindex(settings)
    new = current(settings.ann_dir)
    assert new.name != old.name and not new.check(full=True)
    same = lambda f: (old.dir / f).stat().st_ino == (new.dir / f).stat().st_ino  # noqa: E731 (hard-linked)
    assert same("image.hnsw") and same("fused.vectors.npy") and same("lexical.npz")
    assert not same("text.vectors.npy") and not same("text.hnsw")


def test_vectors_far_outside_the_cosine_range_are_an_error_not_hits():
    vectors = np.eye(8, dtype=np.float32)
    index = VectorIndex.build("image", "m", np.arange(8), vectors)
    index.vectors = index.vectors.copy()
    index.vectors[3, 3] = 6e36  # a flipped exponent byte
    with pytest.raises(IndexDamagedError, match="cosine range"):
        index.search(vectors[3], 3)
    index.vectors[3, 3] = 1.0000004  # float rounding: clamped, not an error
    labels, scores = index.search(vectors[3], 3)
    assert labels[0] == 3 and scores.max() <= 1.0


def test_a_generation_check_finds_a_flipped_byte_in_a_large_file_only_in_full(data, monkeypatch):
    import mmtui.index.generations as generations

    _, settings = data
    monkeypatch.setattr(generations, "SMALL", 100)  # as if the vectors were too large to checksum at each open
    gen = current(settings.ann_dir)
    damage(gen.dir / "image.vectors.npy", "flip")
    assert not gen.check()  # size only at open
    assert gen.check(full=True) == {"image.vectors.npy": "checksum mismatch"}


def test_a_build_repairs_vectors_no_product_matches(data):
    """Vectors of deleted products or of old content (left by two builds at once of older versions) are
    removed by the next run, and never reach an index."""
    catalog, settings = data
    store = Store.open(settings.db_path)
    fp = store.get_meta("base_fingerprint")
    rowid = store.rowid_of(["p1"])["p1"]
    rng = np.random.default_rng(0).standard_normal((2, 32)).astype(np.float32)
    store.put_vectors(fp, "image", [99999], ["gone"], rng[:1])  # an orphan
    store.put_vectors(fp, "text", [rowid], ["an old text"], rng[1:])  # a wrong vector of a live product
    assert store.stale_vector_count() == 2
    store.close()
    report = build_index(settings, catalog, encoder=FakeEncoder())
    assert report.encoded_texts == 1  # p1's text vector, encoded again for its current text
    store = Store.open(settings.db_path)
    assert store.stale_vector_count() == 0
    service = SearchService.open(settings, encoder=FakeEncoder())
    assert 99999 not in set(service.indexes["image"].labels.tolist())
    live = {r for (r,) in store.db.execute("SELECT rowid FROM products")}
    for name in ("image", "text", "fused"):
        assert set(service.indexes[name].labels.tolist()) <= live


def test_products_removed_after_the_index_was_built_never_shorten_the_results(data):
    _, settings = data
    service = SearchService.open(settings, encoder=FakeEncoder())
    for mode in ("image", "text", "lexical", "hybrid"):
        first = [h.id for h in service.search("blue shirt", k=10, mode=mode).hits]
        with service.store.db.conn:
            service.store.delete_products(first[:6])  # as a running build does before its indexes are made
        hits = service.search("blue shirt", k=10, mode=mode).hits
        assert len(hits) == 10 and not set(first[:6]) & {h.id for h in hits}
        assert [h.rank for h in hits] == list(range(1, 11))


def test_a_service_loads_a_new_generation_between_queries(data, tmp_path, make_catalog):
    catalog, settings = data
    service = SearchService.open(settings, encoder=FakeEncoder())
    before = current(settings.ann_dir).name
    extra = make_catalog(tmp_path / "more", N + 1)  # one new product, p560
    build_index(settings, extra, encoder=FakeEncoder())
    assert len(service.indexes["text"]) == N  # nothing changes under a service until its next query starts
    assert len(service.search("red dress", k=10, mode="text").hits) == 10
    assert len(service.indexes["text"]) == N + 1  # the new generation, loaded before that query
    new = service.store.rowid_of(["p560"])["p560"]
    assert service.more_like_this("p560", k=3).hits and service.indexes["image"].vector_of(new) is not None
    assert current(settings.ann_dir).name != before
    build_index(settings, make_catalog(tmp_path / "more", N + 1, renamed=1), encoder=FakeEncoder())  # a third
    kept = [p.name for p in settings.ann_dir.iterdir() if p.name.startswith("gen-")]
    assert len(kept) == 2 and before not in kept  # current + previous: the first generation was removed


def test_a_full_disk_leaves_the_current_generation_and_the_next_run_finishes(data, monkeypatch, tmp_path,
                                                                           make_catalog):
    catalog, settings = data
    before = json.loads((settings.ann_dir / "CURRENT.json").read_text())
    before_dirs = sorted(p.name for p in settings.ann_dir.iterdir())
    real_save = VectorIndex.save

    def full_disk(self, directory):
        if self.manifest.name == "fused":
            raise OSError(errno.ENOSPC, "No space left on device", str(directory / "fused.hnsw"))
        real_save(self, directory)

    monkeypatch.setattr(VectorIndex, "save", full_disk)
    changed = make_catalog(tmp_path / "changed", renamed=40)
    with pytest.raises(StoreError, match="disk is full") as info:
        build_index(settings, changed, encoder=FakeEncoder())
    assert "run the same command again" in info.value.hint
    assert json.loads((settings.ann_dir / "CURRENT.json").read_text()) == before  # nothing half-written is current
    assert sorted(p.name for p in settings.ann_dir.iterdir()) == before_dirs  # the partial one was removed
    assert search_all(settings)["hybrid"] == 10

    monkeypatch.setattr(VectorIndex, "save", real_save)
    report = build_index(settings, changed, encoder=FakeEncoder())
    assert report.encoded_texts == 0  # the vectors were saved by the failed run
    assert current(settings.ann_dir).name != before["generation"]
    assert search_all(settings)["hybrid"] == 10


def test_a_full_disk_in_sqlite_is_a_clear_error(data, monkeypatch, tmp_path, make_catalog):
    catalog, settings = data

    def full(*_args, **_kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "put_vectors", full)
    with pytest.raises(StoreError, match="is full"):
        build_index(settings, make_catalog(tmp_path / "changed", renamed=3), encoder=FakeEncoder())


@pytest.mark.parametrize("content", ["", "id,title,image\n", "id,title,image\n,no id,x.jpg\n,,\n"])
def test_a_catalog_without_products_is_a_clear_error_and_changes_nothing(tmp_path, content):
    suffix = ".jsonl" if not content else ".csv"
    path = tmp_path / f"products{suffix}"
    path.write_text(content)
    settings = Settings(data_dir=tmp_path / "new-index", model="fake")
    with pytest.raises(CatalogError, match="no (usable )?products") as info:
        build_index(settings, path, encoder=FakeEncoder())
    assert "not changed" in info.value.hint
    assert not settings.db_path.exists()


def test_a_data_dir_from_before_generations_is_searched_then_moved_to_generations(data):
    """ann/ of an older version (files directly in it, no pointer): searched as it is; the next build writes a
    generation, and the old files go once nothing can be reading them (the build after)."""
    catalog, settings = data
    gen = current(settings.ann_dir)
    for path in gen.dir.iterdir():
        shutil.copy2(path, settings.ann_dir / path.name)
    (settings.ann_dir / "CURRENT.json").unlink()
    shutil.rmtree(gen.dir)
    assert current(settings.ann_dir).name == "legacy"
    assert search_all(settings)["hybrid"] == 10
    build_index(settings, catalog, encoder=FakeEncoder())
    assert current(settings.ann_dir).name.startswith("gen-") and not current(settings.ann_dir).check(full=True)
    assert (settings.ann_dir / "image.hnsw").exists()  # kept for a reader that opened it just before
    build_index(settings, catalog, encoder=FakeEncoder())
    assert sorted(p.name for p in settings.ann_dir.iterdir() if p.is_file()) == ["CURRENT.json"]
    assert search_all(settings)["hybrid"] == 10


def test_mmtui_check_reports_damage_and_exits_1(data):
    from click.testing import CliRunner

    from mmtui.cli.main import cli

    catalog, settings = data
    ok = CliRunner().invoke(cli, ["check", "--data-dir", str(settings.data_dir)])
    assert ok.exit_code == 0 and ok.output.strip().endswith("ok")
    damage(current(settings.ann_dir).dir / "fused.vectors.npy", "flip")
    bad = CliRunner().invoke(cli, ["check", "--data-dir", str(settings.data_dir), "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.output)["problems"] == {"fused.vectors.npy": "checksum mismatch"}
    text = CliRunner().invoke(cli, ["check", "--data-dir", str(settings.data_dir)])
    assert text.exit_code == 1 and "damaged: fused.vectors.npy: checksum mismatch" in text.output
    assert "run `mmtui build-index CATALOG`" in text.output and "Traceback" not in text.output


def test_build_index_of_an_empty_catalog_prints_a_clear_error(tmp_path):
    from click.testing import CliRunner

    from mmtui.cli.main import cli

    (tmp_path / "products.jsonl").write_text("")
    result = CliRunner().invoke(cli, ["build-index", str(tmp_path / "products.jsonl"), "--data-dir",
                                      str(tmp_path / "idx"), "--model", "fake", "--json"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "holds no products" in result.output and "not changed" in result.output


def test_a_data_dir_on_usearch_searches_and_mmtui_check_covers_its_files(data):
    """The usearch store behind the service (MMTUI_VECTOR_STORE=usearch): reindex writes it, searches read it,
    `mmtui check` finds a damaged graph and the next reindex rebuilds it."""
    import dataclasses

    from click.testing import CliRunner

    from mmtui.cli.main import cli

    _, settings = data
    before = SearchService.open(settings, encoder=FakeEncoder())
    expected = [h.id for h in before.search("red shirt", k=10, mode="image").hits]
    before.close()
    on_usearch = dataclasses.replace(settings, vector_store="usearch")
    reindex(on_usearch)
    gen = current(settings.ann_dir)
    assert {"image.usearch", "text.usearch", "fused.usearch", "image.vectors.f16.npy"} <= set(gen.files)
    assert not gen.has("image.hnsw")
    service = SearchService.open(on_usearch, encoder=FakeEncoder())
    found = [h.id for h in service.search("red shirt", k=10, mode="image").hits]
    assert len(set(found) & set(expected)) >= 9  # the same index content, another graph library
    assert service.search("red shirt", k=10, mode="hybrid").hits
    service.close()
    damage(gen.dir / "image.usearch", "flip")
    bad = CliRunner().invoke(cli, ["check", "--data-dir", str(settings.data_dir), "--json"])
    assert bad.exit_code == 1 and json.loads(bad.output)["problems"] == {"image.usearch": "checksum mismatch"}
    assert reindex(on_usearch)["image"][1] == "hnsw"  # rebuilt: a graph again
    assert CliRunner().invoke(cli, ["check", "--data-dir", str(settings.data_dir)]).exit_code == 0
