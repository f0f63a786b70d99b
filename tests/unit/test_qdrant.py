"""The Qdrant backend (embedded local mode in tmp_path) against the local hnswlib one on sample_catalog: the same
top-10 per mode, the same filtered results, idempotent and resumable syncs, removed products leaving the
collection, and clear errors. No Qdrant server runs here: the qdrant+http:// path is tested as far as its spec
and the error for an unreachable server."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qdrant_client")
pytestmark = pytest.mark.qdrant

from mmtui.query.hybrid import CANDIDATES, RRF_K  # noqa: E402
from mmtui.index.backends.spec import BackendSpec, choose_backend, parse_backend, stored_backend  # noqa: E402
from mmtui.build.pipeline import build_index  # noqa: E402
from mmtui.config import Settings  # noqa: E402
from mmtui.encoders.base import FakeEncoder  # noqa: E402
from mmtui.errors import ConfigError, StoreError  # noqa: E402
from mmtui.store.filters import parse_where  # noqa: E402
from mmtui.index.writer import reindex  # noqa: E402
from mmtui.index.backends.qdrant.client import close_clients, open_client  # noqa: E402
from mmtui.query.service import SearchService  # noqa: E402
from mmtui.store.db import Store  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "sample_catalog"
QUERIES = ["blue shirt for men", "black watch", "red dress women", "sports shoes", "white tshirt", "jeans",
           "casual sandals", "women handbag", "green kurta", "deodorant", "sunglasses", "grey track pants"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(local settings, Qdrant settings): sample_catalog built locally, then the data dir copied and moved to
    embedded Qdrant with the same build (nothing re-encoded)."""
    root = tmp_path_factory.mktemp("qdrant")
    local = Settings(data_dir=root / "local", model="fake")
    build_index(local, SAMPLE, encoder=FakeEncoder())
    q = Settings(data_dir=root / "q", model="fake")
    shutil.copytree(local.data_dir, q.data_dir)
    choose_backend(q, f"qdrant:{root / 'qdata'}")
    report = build_index(q, SAMPLE, encoder=FakeEncoder())
    assert report.encoded_images == 0 and report.encoded_texts == 0  # moving re-encodes nothing
    assert report.index_kind == {"image": "qdrant", "text": "qdrant", "fused": "qdrant"}
    yield local, q
    close_clients()


@pytest.fixture(scope="module")
def services(built):
    local, q = built
    a, b = SearchService.open(local, encoder=FakeEncoder()), SearchService.open(q, encoder=FakeEncoder())
    assert type(a.backend).__name__ == "LocalBackend" and type(b.backend).__name__ == "QdrantBackend"
    return a, b


def _copy(built, tmp_path, name: str) -> Settings:
    """A data dir of its own on a collection of its own (a copy of the local build, moved to Qdrant)."""
    local, _ = built
    settings = Settings(data_dir=tmp_path / name, model="fake")
    shutil.copytree(local.data_dir, settings.data_dir)
    choose_backend(settings, f"qdrant:{tmp_path / (name + '-qdata')}")
    return settings


def _ids(result) -> list[str]:
    return [h.id for h in result.hits]


def _same_ranking(x, y) -> bool:
    """The same scores rank by rank, and the same ids but for the choice among equal scores."""
    xs, ys = [round(h.score, 4) for h in x.hits], [round(h.score, 4) for h in y.hits]
    if xs != ys:
        return False
    # a score that appears once is settled, unless it is the last one (it may tie with the first one left out)
    strict = {h.id for h in x.hits if xs.count(round(h.score, 4)) == 1 and round(h.score, 4) != xs[-1]}
    return strict <= set(_ids(y))


# -- the backend spec ----------------------------------------------------------------------------
def test_backend_specs_parse_and_bad_ones_say_what_to_write(tmp_path):
    assert parse_backend("local") == BackendSpec()
    assert parse_backend("qdrant:qd", cwd=tmp_path) == BackendSpec("qdrant", path=str((tmp_path / "qd").resolve()))
    assert parse_backend("qdrant+http://db.example:6333") == BackendSpec("qdrant", url="http://db.example:6333")
    assert parse_backend("QDRANT+HTTPS://db.example/").url == "https://db.example"
    for bad in ("", "qdrant:", "qdrant", "hnsw", "qdrant+ftp://x:1", "qdrant+http://", "qdrant+http://a b"):
        with pytest.raises(ConfigError) as err:
            parse_backend(bad)
        assert err.value.hint


def test_the_data_dir_records_the_backend_and_its_collection(built):
    _, q = built
    store = Store.open(q.db_path)
    backend = stored_backend(store)
    assert backend.is_qdrant and backend.path.endswith("qdata") and backend.collection.startswith("mmtui-q-")
    assert json.loads(store.get_meta("qdrant_sync"))["points"] == store.product_count()
    store.close()


def test_an_unreachable_server_is_a_clear_error(built, tmp_path):
    with pytest.raises(StoreError) as err:
        open_client(BackendSpec("qdrant", url="http://127.0.0.1:9", collection="c"))
    assert "cannot reach the Qdrant server at http://127.0.0.1:9" in err.value.message and "--backend" in err.value.hint
    # a data dir that records the server: search says the same, through the CLI without a traceback
    from click.testing import CliRunner

    from mmtui.cli.main import cli

    local, _ = built
    d = tmp_path / "remote"
    shutil.copytree(local.data_dir, d)
    choose_backend(Settings(data_dir=d), "qdrant+http://127.0.0.1:9")
    result = CliRunner().invoke(cli, ["search", "shirt", "--mode", "lexical", "--data-dir", str(d)])
    assert result.exit_code != 0 and "cannot reach the Qdrant server" in result.output
    assert "hint:" in result.output and "Traceback" not in result.output


# -- searching ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["image", "text", "lexical", "hybrid", "fused"])
def test_top10_matches_the_local_backend(services, mode):
    a, b = services
    overlaps = [len(set(_ids(a.search(q, k=10, mode=mode))) & set(_ids(b.search(q, k=10, mode=mode)))) / 10
                for q in QUERIES]
    assert np.mean(overlaps) >= 0.9, overlaps


def test_image_queries_and_more_like_this_match_the_local_backend(services):
    a, b = services
    picture = sorted((SAMPLE / "images").glob("*.jpg"))[3]
    for mode in ("image", "text", "hybrid"):
        x, y = a.search_image(picture, k=10, mode=mode), b.search_image(picture, k=10, mode=mode)
        assert len(set(_ids(x)) & set(_ids(y))) >= 9, mode
    product = picture.stem
    x, y = a.more_like_this(product, k=10), b.more_like_this(product, k=10)
    assert y.mode == "image" and product not in _ids(y) and len(set(_ids(x)) & set(_ids(y))) >= 9


@pytest.mark.parametrize("where", ["colour=black", "colour=NAVY BLUE", "gender!=Men", "season!=summer",
                                   "category~wear", "usage~ASUAL", "article_type=Tshirts", "split=test",
                                   "id=18461", "brand~x"])
@pytest.mark.parametrize("mode", ["text", "lexical", "hybrid", "image"])
def test_filters_give_the_local_results(services, where, mode):
    a, b = services
    filters = [parse_where(where)]
    for query in ("blue shirt", "watch for women"):
        x = a.search(query, k=10, mode=mode, filters=filters)
        y = b.search(query, k=10, mode=mode, filters=filters)
        assert _same_ranking(x, y), (where, mode, query, _ids(x), _ids(y))


def test_price_filters_give_the_local_results(built, tmp_path, make_catalog):
    """sample_catalog has no prices: a generated catalog with them, each comparison operator."""
    catalog = make_catalog(tmp_path / "shop", n=120)
    local = Settings(data_dir=tmp_path / "local", model="fake")
    build_index(local, catalog, encoder=FakeEncoder())
    q = Settings(data_dir=tmp_path / "q", model="fake")
    shutil.copytree(local.data_dir, q.data_dir)
    choose_backend(q, f"qdrant:{tmp_path / 'qd'}")
    build_index(q, catalog, encoder=FakeEncoder())
    a, b = SearchService.open(local, encoder=FakeEncoder()), SearchService.open(q, encoder=FakeEncoder())
    for where in ("price<20", "price<=20", "price>80", "price>=80", "price=45", "price!=45"):
        for mode in ("text", "lexical"):
            x = a.search("red shirt number", k=10, mode=mode, filters=[parse_where(where)], understand=False)
            y = b.search("red shirt number", k=10, mode=mode, filters=[parse_where(where)], understand=False)
            assert (x.hits or mode == "lexical") and _same_ranking(x, y), (where, mode, _ids(x), _ids(y))


def test_hybrid_asks_for_every_signal_in_one_request(services, monkeypatch):
    _, b = services
    calls = []
    real = b.backend.client.query_batch_points
    monkeypatch.setattr(b.backend.client, "query_batch_points",
                        lambda *a, **kw: calls.append(len(kw["requests"])) or real(*a, **kw))
    result = b.search("black watch", k=10, mode="hybrid", understand=False)
    assert calls == [len(b.hybrid_weights())] and len(result.hits) == 10
    assert all(abs(sum(h.shares.values()) - 1) < 1e-6 for h in result.hits)


# -- writing ------------------------------------------------------------------------------------------
def test_a_rerun_uploads_nothing(built):
    _, q = built
    store = Store.open(q.db_path)
    before = json.loads(store.get_meta("qdrant_sync"))["points"]
    reindex(q, store=store)
    after = json.loads(store.get_meta("qdrant_sync"))
    assert after["uploaded"] == 0 and after["deleted"] == 0 and after["points"] == before == store.product_count()
    store.close()


def test_an_interrupted_sync_finishes_without_duplicates(built, tmp_path):
    settings = _copy(built, tmp_path, "cut")

    class Killed(Exception):
        pass

    def kill_after_first_batch(event):
        if event.message.startswith("Qdrant: 256/"):
            raise Killed

    with pytest.raises(Killed):
        reindex(settings, progress=kill_after_first_batch)
    reindex(settings)
    store = Store.open(settings.db_path)
    outcome = json.loads(store.get_meta("qdrant_sync"))
    assert outcome["points"] == store.product_count()
    assert 0 < outcome["uploaded"] <= store.product_count() - 256  # the first batch was kept
    store.close()


def test_removed_products_leave_the_collection(built, tmp_path):
    settings = _copy(built, tmp_path, "removed")
    reindex(settings)
    store = Store.open(settings.db_path)
    gone = [r[0] for r in store.db.execute("SELECT id FROM products ORDER BY rowid LIMIT 5")]
    store.delete_products(gone)
    reindex(settings, store=store)
    outcome = json.loads(store.get_meta("qdrant_sync"))
    assert outcome["deleted"] == 5 and outcome["uploaded"] == 0 and outcome["points"] == store.product_count()
    store.close()
    service = SearchService.open(settings, encoder=FakeEncoder())
    for query in ("shirt", "watch", "shoes"):
        assert not set(gone) & set(_ids(service.search(query, k=50, mode="text")))


def test_a_missing_collection_and_a_held_folder_are_clear_errors(built, tmp_path):
    settings = _copy(built, tmp_path, "errs")
    reindex(settings)
    store = Store.open(settings.db_path)
    backend = stored_backend(store)
    store.close()
    open_client(backend).delete_collection(backend.collection)
    with pytest.raises(StoreError) as err:
        SearchService.open(settings, encoder=FakeEncoder())
    assert "missing" in err.value.message and "build-index" in err.value.hint
    close_clients(backend)
    from qdrant_client import QdrantClient

    other = QdrantClient(path=backend.path)  # as another process would hold it
    try:
        with pytest.raises(StoreError) as err:
            SearchService.open(settings, encoder=FakeEncoder())
        assert "open in another process" in err.value.message and "qdrant+http" in err.value.hint
    finally:
        other.close()


def test_build_search_and_eval_through_the_commands_need_no_flag_after_the_build(built, tmp_path):
    from click.testing import CliRunner

    from mmtui.cli.main import cli

    local, _ = built
    d = tmp_path / "cli"
    shutil.copytree(local.data_dir, d)
    runner = CliRunner()
    result = runner.invoke(cli, ["build-index", str(SAMPLE), "--data-dir", str(d), "--backend",
                                 f"qdrant:{tmp_path / 'cli-qdata'}", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["index_kind"]["text"] == "qdrant"
    out = {}
    for name, data_dir in (("local", local.data_dir), ("qdrant", d)):
        found = runner.invoke(cli, ["search", "black watch", "--mode", "lexical", "--data-dir", str(data_dir),
                                    "--json"])
        assert found.exit_code == 0, found.output
        scored = runner.invoke(cli, ["eval", "--split", "test", "--data-dir", str(data_dir), "--json"])
        assert scored.exit_code == 0, scored.output
        out[name] = ([h["score"] for h in json.loads(found.stdout)["hits"]], json.loads(scored.stdout))
    assert out["local"][0] == pytest.approx(out["qdrant"][0], abs=1e-3)
    assert out["qdrant"][1]["n_queries"] == out["local"][1]["n_queries"] > 0
    for metric in ("ndcg@10", "recall@10", "mrr"):
        assert out["qdrant"][1][metric] == pytest.approx(out["local"][1][metric], abs=0.03), metric
    # and back to the local files: searches use them again
    assert runner.invoke(cli, ["build-index", str(SAMPLE), "--data-dir", str(d), "--backend", "local"]).exit_code == 0
    service = SearchService.open(Settings(data_dir=d))
    assert type(service.backend).__name__ == "LocalBackend"
    service.close()


def test_reload_keeps_searching_qdrant_and_server_side_fusion_answers(services):
    _, b = services
    before = _ids(b.search("black watch", k=10, mode="hybrid", understand=False))
    b.reload()
    assert type(b.backend).__name__ == "QdrantBackend" and _ids(b.search("black watch", k=10, mode="hybrid", understand=False)) == before
    fused = b.backend.server_fused("black watch", b.query_vector("black watch"), 10, b.hybrid_weights(),
                                   candidates=CANDIDATES, rrf_k=RRF_K)
    assert len(fused) == 10 and len({r for r, _ in fused}) == 10


def test_a_backend_that_cannot_be_used_is_refused_and_the_data_dir_keeps_its_own(built, tmp_path, monkeypatch):
    """build-index --backend with a server nobody answers at, or without qdrant-client, says so and leaves the
    data dir on its previous backend: a mistyped URL does not break searches that worked."""
    import sys

    from click.testing import CliRunner

    from mmtui.index.backends.spec import stored_backend
    from mmtui.cli.main import cli
    from mmtui.store.db import Store

    local, _ = built
    d = tmp_path / "kept"
    shutil.copytree(local.data_dir, d)
    runner = CliRunner()
    result = runner.invoke(cli, ["build-index", str(SAMPLE), "--data-dir", str(d), "--model", "fake",
                                 "--backend", "qdrant+http://127.0.0.1:9"])
    assert result.exit_code != 0 and "cannot reach the Qdrant server" in result.output
    assert "still uses its previous backend" in result.output and "Traceback" not in result.output
    monkeypatch.setitem(sys.modules, "qdrant_client", None)  # import qdrant_client -> ImportError
    result = runner.invoke(cli, ["build-index", str(SAMPLE), "--data-dir", str(d), "--model", "fake",
                                 "--backend", f"qdrant:{tmp_path / 'q'}"])
    assert result.exit_code != 0 and "needs qdrant-client, which is not installed" in result.output
    assert "mmtui[qdrant]" in result.output
    store = Store.open(d / "catalog.db")
    try:
        assert not stored_backend(store).is_qdrant
    finally:
        store.close()
    result = runner.invoke(cli, ["search", "shirt", "--mode", "lexical", "--data-dir", str(d)])
    assert result.exit_code == 0, result.output
