"""build-index --ray on a local Ray (2 CPU actors): the same store and the same results as a local build, a job
stopped part-way finished by a re-run that encodes only what is missing, and clear errors. One Ray for the module
(started after the address test, which needs none); the sample_catalog comparison runs the real lite model."""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from mmtui.build.pipeline import build_index
from mmtui.cli.main import cli
from mmtui.config import Settings
from mmtui.errors import MmtuiError

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

SAMPLE = Path(__file__).resolve().parents[2] / "sample_catalog"
ACTORS = 2


def vectors(data_dir: Path) -> dict:
    """(rowid, model, kind) -> (content sha, float32 vector) for every stored vector and feature row."""
    with sqlite3.connect(data_dir / "catalog.db") as db:
        rows = db.execute("SELECT product_rowid, model, kind, content_sha, vector FROM embeddings").fetchall()
    dtype = lambda kind: np.float16 if kind.endswith("-features") else np.float32  # noqa: E731
    return {(r, m, k): (s, np.frombuffer(v, dtype(k)).astype(np.float32)) for r, m, k, s, v in rows}


# How far the same product's stored rows may differ when encoded in another process (other threads, batches, CPU
# kernels), by the numeric path each takes:
# - the towers sum in float32 (a float32 sum of n ~ 384 terms in another order: up to n * 2^-24, ~2^-15, of the
#   largest value in play), the picture tower in bfloat16 where the CPU has it (8 significant bits: a result one
#   bfloat16 step, 2^-8 of it, apart);
# - features are stored as float16, whose step is at most 2^-10 of the value (0.002 for values from 2 to 4): a
#   value near the middle of two steps lands on either (one step apart on 16-25% of text rows in a run);
# - vectors are the heads' float32 output over those features, of unit length: they move by about the features'
#   relative difference (a bfloat16 step for pictures, allowed twice over; far under 2^-12 for texts).
FEATURE_STEP = {"image-features": 2.0 ** -8, "title-features": 2.0 ** -10, "text-features": 2.0 ** -10}
SUM_ORDER = 2.0 ** -15  # of the row's largest value
VECTOR_L2 = {"image": 2.0 ** -7, "title": 2.0 ** -12, "text": 2.0 ** -12}


def assert_same_vectors(local: dict, remote: dict, exact: bool = False) -> None:
    """Every stored row of one build in the other, made from the same content, equal as the numeric path of its
    kind allows (exactly, with `exact`: the same model code in both places, e.g. the fake model)."""
    assert local.keys() == remote.keys()
    for key, (sha, vec) in local.items():
        other = remote[key][1]
        assert remote[key][0] == sha, key
        kind = key[2]
        if exact:
            assert np.allclose(other, vec, rtol=0, atol=1e-6), (key, float(np.abs(other - vec).max()))
        elif kind in FEATURE_STEP:
            allowed = FEATURE_STEP[kind] * np.maximum(np.abs(vec), np.abs(other)) + SUM_ORDER * np.abs(vec).max()
            assert (np.abs(other - vec) <= allowed).all(), (key, float(np.abs(other - vec).max()))
        else:
            assert float(np.linalg.norm(other - vec)) <= VECTOR_L2[kind], (key, float(np.linalg.norm(other - vec)))


# -- errors that need no running Ray ---------------------------------------------------------------
def test_an_address_where_no_cluster_answers_is_a_clear_error_and_nothing_is_written(tmp_path, make_catalog):
    assert not ray.is_initialized()
    catalog = make_catalog(tmp_path / "shop", 20)
    result = CliRunner().invoke(cli, ["build-index", str(catalog), "--data-dir", str(tmp_path / "idx"),
                                      "--model", "fake", "--ray"], env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert result.exit_code != 0
    assert "no Ray cluster answers at RAY_ADDRESS=127.0.0.1:1" in result.output, result.output
    assert "unset it to encode on a local Ray" in result.output
    assert not (tmp_path / "idx" / "catalog.db").exists()
    assert not ray.is_initialized()


def test_without_ray_installed_the_hint_says_how_to_get_it(tmp_path, make_catalog, monkeypatch):
    from mmtui.build.ray_encode import RayEncode

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MmtuiError) as err:
        RayEncode(Settings(data_dir=tmp_path / "idx", model="fake")).__enter__()
    assert "pip install 'mmtui[ray]'" in err.value.hint


# -- on a local Ray --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module: RayEncode uses it as it finds it and leaves it running. Its workers run at
    this process's priority: Ray starts them at nice 15, and on a machine busy with other work they would wait."""
    import os

    before = os.environ.get("RAY_worker_niceness")
    os.environ["RAY_worker_niceness"] = "0"  # read by the raylet ray.init starts
    try:
        ray.init(address="local", num_cpus=ACTORS, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
        yield
        ray.shutdown()
    finally:
        if before is None:
            os.environ.pop("RAY_worker_niceness", None)
        else:
            os.environ["RAY_worker_niceness"] = before


def on_ray(settings: Settings):
    from mmtui.build.ray_encode import RayEncode

    return RayEncode(settings, actors=ACTORS)


def test_an_actor_failing_on_a_later_batch_leaves_what_was_written_and_a_rerun_finishes(
        local_ray, tmp_path, make_catalog):
    from mmtui.build.ray_encode import EncodeActor

    class FailsLater(EncodeActor):  # defined here: shipped to the workers by value
        calls = 0

        def __call__(self, batch):
            self.calls += 1
            if self.calls > 2:
                raise RuntimeError("disk on fire")
            return super().__call__(batch)

    catalog = make_catalog(tmp_path / "shop", 200)
    settings = Settings(data_dir=tmp_path / "ray", model="fake")
    with on_ray(settings) as encode_on:
        encode_on.actor_class = FailsLater
        with pytest.raises(MmtuiError) as err:
            build_index(settings, catalog, batch_size=16, encode_on=encode_on)
        assert "the encode job failed on Ray" in err.value.message and "disk on fire" in err.value.message
        assert "run the same command again" in err.value.hint
        kept = len(vectors(settings.data_dir))
        assert kept < 600  # 200 products x image, title, text

        encode_on.actor_class = EncodeActor
        report = build_index(settings, catalog, batch_size=16, encode_on=encode_on)
    assert report.encoded_images + report.encoded_texts == 600 - kept  # only what was missing
    assert report.encoded_on == f"Ray already running in this process, {ACTORS} CPU actors"

    local = Settings(data_dir=tmp_path / "local", model="fake")
    build_index(local, catalog, batch_size=16)
    assert_same_vectors(vectors(local.data_dir), vectors(settings.data_dir), exact=True)


def test_workers_whose_model_differs_from_the_drivers_refuse_to_encode(local_ray, tmp_path, make_catalog):
    from mmtui.encoders.base import FakeEncoder

    catalog = make_catalog(tmp_path / "shop", 20)
    settings = Settings(data_dir=tmp_path / "idx", model="fake")
    with on_ray(settings) as encode_on, pytest.raises(MmtuiError) as err:  # the workers open "fake" (seed 0)
        build_index(settings, catalog, encoder=FakeEncoder(seed=1), encode_on=encode_on)
    assert "the Ray workers' model differs from this machine's" in err.value.message
    assert len(vectors(settings.data_dir)) == 0


@pytest.mark.slow
@pytest.mark.skipif(not (SAMPLE / "styles.csv").exists(), reason="sample_catalog is not here")
def test_sample_catalog_encoded_on_ray_stopped_and_rerun_equals_a_local_build(local_ray, sample_index, tmp_path,
                                                                             monkeypatch):
    from mmtui.query.service import SearchService

    # what Ray changes is the encoding: the ONNX export of the query model (~15 s, tested in test_onnx_query) is
    # left out, and both services below encode queries with torch
    monkeypatch.setenv("MMTUI_ONNX", "0")
    local = Settings(data_dir=sample_index)  # built by `mmtui build-index` in this process, once for the e2e tests

    settings = Settings(data_dir=tmp_path / "ray")
    cancel = threading.Event()

    def stop_after_some_images(event):
        if event.stage == "encode-images" and event.done >= 200:
            cancel.set()

    with on_ray(settings) as encode_on:
        with pytest.raises(MmtuiError):  # Cancelled: what was written stays
            build_index(settings, SAMPLE, encode_on=encode_on, progress=stop_after_some_images, cancel=cancel)
        images_kept = sum(1 for (_, _, kind) in vectors(settings.data_dir) if kind == "image")
        assert 200 <= images_kept < 800
        report = build_index(settings, SAMPLE, encode_on=encode_on)
    assert report.encoded_images == 800 - images_kept and report.products == 800
    assert json.loads(json.dumps(report.to_json()))["encoded_on"].endswith(f"{ACTORS} CPU actors")

    # What Ray encodes, the towers' features, is the same row for row. The heads over them are adapted to the
    # catalog on the driver, and a training run over features one float16 step apart gives other weights, so
    # another heads key: those vectors are compared where both builds used the same heads, and by results below.
    mine, theirs = vectors(local.data_dir), vectors(settings.data_dir)
    features = lambda rows: {key: row for key, row in rows.items() if key[2] in FEATURE_STEP}  # noqa: E731
    assert_same_vectors(features(mine), features(theirs))
    by_product = lambda rows: {(r, k) for (r, _, k) in rows if k not in FEATURE_STEP}  # noqa: E731
    assert by_product(mine) == by_product(theirs)  # every product has its vectors in both
    same_heads = {key for key in mine.keys() & theirs.keys() if key[2] not in FEATURE_STEP}
    assert_same_vectors({k: mine[k] for k in same_heads}, {k: theirs[k] for k in same_heads})
    queries = ["navy blue shirt for men", "black leather watch", "red dress", "sports shoes", "women handbag",
               "kurta", "white sneakers", "sunglasses", "blue jeans", "perfume"]
    services = SearchService.open(local), SearchService.open(settings)
    for mode in ("image", "text", "lexical", "hybrid", "fused"):
        overlap = []
        for q in queries:
            a, b = ([h.id for h in s.search(q, k=10, mode=mode).hits] for s in services)
            overlap.append(len(set(a) & set(b)) / max(len(a), 1))
        assert np.mean(overlap) >= 0.98, (mode, overlap)
