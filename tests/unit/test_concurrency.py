"""Two processes at once on one data dir, with real processes: searches during builds get k hits or a clear
error (never fewer hits, never a traceback); a second writer waits or fails clearly; a killed writer's lock
never blocks; a read-only data dir can be searched, and writing to it is a clear error."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import mmtui
from mmtui.build.pipeline import build_index
from mmtui.config import Settings
from mmtui.store.datadir import DataDirBusyError, is_locked, writing
from mmtui.encoders import FakeEncoder
from mmtui.errors import IndexMismatchError
from mmtui.query.service import SearchService
from mmtui.store.db import Store

N = 560  # products in make_catalog's catalogs

ROOT = str(Path(mmtui.__file__).resolve().parents[1])


def env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": ROOT, "MMTUI_THREADS": "1", **extra}


def mmtui_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmtui.cli.main", *args]


def python(code: str, *args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=env(), **popen)


@pytest.fixture(scope="module")
def built_shop(tmp_path_factory, make_catalog) -> tuple[Path, Path, Settings]:
    """Catalogs A (N products) and B (A with 80 titles changed and 60 products gone), A built: once a module."""
    root = tmp_path_factory.mktemp("shop")
    a = make_catalog(root / "a")
    b = make_catalog(root / "b", renamed=80, dropped=60)
    settings = Settings(data_dir=root / "index", model="fake")
    build_index(settings, a, encoder=FakeEncoder())
    return a, b, settings


@pytest.fixture
def shop(built_shop, tmp_path) -> tuple[Path, Path, Settings]:
    """built_shop with a data dir of this test's own (a copy: the tests write to it; the catalogs are only read)."""
    a, b, built = built_shop
    shutil.copytree(built.data_dir, tmp_path / "index")
    return a, b, Settings(data_dir=tmp_path / "index", model="fake")


WRITER = """
    import sys, time
    from pathlib import Path
    from mmtui.build.pipeline import build_index
    from mmtui.config import Settings
    data_dir, ready, done, *catalogs = sys.argv[1:]
    while not Path(ready).exists():
        time.sleep(0.05)
    settings = Settings.load(data_dir=data_dir, model="fake")
    for catalog in catalogs:
        build_index(settings, catalog)
    Path(done).write_text("done")
"""

READER = """
    import json, sys, time, traceback
    from pathlib import Path
    from mmtui.config import Settings
    from mmtui.encoders import FakeEncoder
    from mmtui.errors import MmtuiError
    from mmtui.query.service import SearchService
    data_dir, ready, done = sys.argv[1:]
    settings = Settings.load(data_dir=data_dir, model="fake")
    service = SearchService.open(settings, encoder=FakeEncoder())
    Path(ready).write_text("ready")
    outcomes, generations = [], set()
    modes = ["hybrid", "image", "text", "lexical", "fused"]
    i = 0
    while not Path(done).exists() or i < 40:
        mode = modes[i % len(modes)]
        try:
            fresh = i % 3 == 0  # also open a new service now and then: opening while a build writes
            svc = SearchService.open(settings, encoder=FakeEncoder()) if fresh else service
            outcomes.append(len(svc.search("blue shirt", k=10, mode=mode).hits))
            generations.add(str(svc.backend.stamp))
            if fresh:
                svc.close()
        except MmtuiError as exc:
            outcomes.append("error: " + exc.message)
        except Exception:
            outcomes.append("crash: " + traceback.format_exc())
        i += 1
    print(json.dumps({"outcomes": outcomes, "generations": len(generations)}))
"""


@pytest.mark.slow
def test_searches_during_builds_get_k_hits_or_a_clear_error(shop, tmp_path):
    a, b, settings = shop
    ready, done = tmp_path / "ready", tmp_path / "done"
    writer = python(WRITER, str(settings.data_dir), str(ready), str(done), *map(str, (b, a, b)))
    reader = python(READER, str(settings.data_dir), str(ready), str(done), stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, text=True)
    try:
        out, err = reader.communicate(timeout=300)
    finally:
        ready.touch()  # a reader that failed to start must not leave the writer waiting
    assert reader.returncode == 0, err
    assert writer.wait(timeout=300) == 0
    report = json.loads(out)
    crashes = [o for o in report["outcomes"] if str(o).startswith("crash")]
    assert not crashes, crashes[0]
    assert all(o == 10 or str(o).startswith("error: ") for o in report["outcomes"]), report["outcomes"]
    assert report["outcomes"].count(10) >= len(report["outcomes"]) - 2  # errors are rare exceptions, if any
    assert report["generations"] >= 3  # the reader went on across new generations (three builds: up to four)


@pytest.mark.slow
def test_two_builds_at_once_one_waits_and_nothing_is_orphaned(shop, tmp_path):
    a, b, settings = shop
    logs = [tmp_path / "first.err", tmp_path / "second.err"]
    with writing(settings, "test"):  # both start while the data dir is busy, then run one after the other
        builds = [subprocess.Popen(mmtui_cmd("build-index", str(catalog), "--data-dir", str(settings.data_dir),
                                             "--model", "fake", "--json"),
                                   env=env(), stdout=subprocess.DEVNULL, stderr=open(log, "w"))
                  for catalog, log in zip((b, a), logs)]
        deadline = time.monotonic() + 60
        while not all("waiting" in log.read_text() for log in logs) and time.monotonic() < deadline:
            time.sleep(0.1)
    assert [p.wait(timeout=300) for p in builds] == [0, 0]
    for log in logs:
        text = " ".join(log.read_text().split())
        assert f"another process is writing to {settings.data_dir} (pid {os.getpid()}: test)" in text
        assert "Traceback" not in text
    store = Store.open(settings.db_path)
    assert store.stale_vector_count() == 0
    service = SearchService.open(settings, encoder=FakeEncoder())
    products = {r for (r,) in store.db.execute("SELECT rowid FROM products")}
    assert len(products) in (N, N - 60)
    for name in ("image", "text", "fused"):
        assert set(service.indexes[name].labels.tolist()) == products  # no orphans, nothing missing
    assert len(service.search("blue shirt", k=10, mode="image").hits) == 10


def test_no_wait_fails_clearly_and_a_timeout_says_who_writes(shop):
    a, _, settings = shop
    with writing(settings, "train adapter"):
        quick = subprocess.run(mmtui_cmd("build-index", str(a), "--data-dir", str(settings.data_dir), "--model",
                                         "fake", "--no-wait"), env=env(), capture_output=True, text=True, timeout=120)
        slow = subprocess.run(mmtui_cmd("use", "base", "--data-dir", str(settings.data_dir)),
                              env=env(MMTUI_LOCK_TIMEOUT="0.5"), capture_output=True, text=True, timeout=120)
    quick.stderr, slow.stderr = " ".join(quick.stderr.split()), " ".join(slow.stderr.split())  # rich wraps lines
    assert quick.returncode == 1 and "Traceback" not in quick.stderr
    assert f"another process is writing to {settings.data_dir} (pid {os.getpid()}: train adapter)" in quick.stderr
    assert "without --no-wait" in quick.stderr
    assert slow.returncode == 1 and "Traceback" not in slow.stderr
    assert "waiting up to 0.5 s" in slow.stderr and "still writing" in slow.stderr and "after 0.5 s" in slow.stderr


def test_the_lock_of_a_killed_writer_never_blocks(tmp_path):
    settings = Settings(data_dir=tmp_path / "index", model="fake", lock_timeout=0)
    holder = python("""
        import sys, time
        from mmtui.config import Settings
        from mmtui.store.datadir import writing
        with writing(Settings.load(data_dir=sys.argv[1]), "build-index"):
            print("locked", flush=True)
            time.sleep(120)
    """, str(settings.data_dir), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    assert is_locked(settings.data_dir)
    with pytest.raises(DataDirBusyError, match="build-index"):
        with writing(settings, "test"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert not is_locked(settings.data_dir)
    with writing(settings, "test"):  # at once: the kernel released the dead process's lock
        assert is_locked(settings.data_dir)


def test_the_lock_is_reentrant_in_a_thread_and_exclusive_between_threads(tmp_path):
    settings = Settings(data_dir=tmp_path / "index", lock_timeout=0)
    other: list = []
    with writing(settings, "build-index"):
        with writing(settings, "reindex"):  # build_index -> reindex: the same writer
            thread = threading.Thread(target=lambda: other.append(_try_lock(settings)))
            thread.start()
            thread.join()
    assert isinstance(other[0], DataDirBusyError)
    assert _try_lock(settings) is None


def _try_lock(settings):
    try:
        with writing(settings, "other"):
            return None
    except DataDirBusyError as exc:
        return exc


def _read_only_runner(data_dir: Path):
    """A way to run a command with `data_dir` read-only: a read-only bind mount in a private mount namespace
    (root, where allowed), or chmod (other users). None when neither is possible here."""
    if os.geteuid() != 0:
        return "chmod"
    if not shutil.which("unshare"):
        return None
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind {data_dir} {data_dir} && "
                            f"mount -o remount,ro,bind {data_dir} {data_dir} && ! touch {data_dir}/.probe"],
                           capture_output=True)
    return "mount" if probe.returncode == 0 else None


def _run_read_only(how: str, data_dir: Path, args: list[str]) -> subprocess.CompletedProcess:
    if how == "mount":
        script = (f"mount --bind {data_dir} {data_dir} && mount -o remount,ro,bind {data_dir} {data_dir} && "
                  + " ".join(f"'{a}'" for a in args))
        return subprocess.run(["unshare", "-m", "sh", "-c", script], env=env(), capture_output=True, text=True,
                              timeout=120)
    return subprocess.run(args, env=env(), capture_output=True, text=True, timeout=120)


def test_a_read_only_data_dir_can_be_searched_and_writing_to_it_is_a_clear_error(shop):
    a, _, settings = shop
    Store.open(settings.db_path).close()  # a clean close: no -wal / -shm files left
    how = _read_only_runner(settings.data_dir)
    if how is None:
        pytest.skip("cannot make a directory read-only here (root without mount namespaces)")
    if how == "chmod":
        for path in [settings.data_dir, *settings.data_dir.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
    try:
        for mode in ("lexical", "hybrid", "image"):
            found = _run_read_only(how, settings.data_dir, mmtui_cmd(
                "search", "blue shirt", "--mode", mode, "--data-dir", str(settings.data_dir), "--json"))
            assert found.returncode == 0, found.stderr
            assert len(json.loads(found.stdout)["hits"]) == 10
        for args in (["build-index", str(a), "--model", "fake"], ["use", "base"], ["enrich"]):
            failed = _run_read_only(how, settings.data_dir, mmtui_cmd(*args, "--data-dir", str(settings.data_dir)))
            assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
            assert "read-only" in failed.stderr and "searching a read-only index works" in failed.stderr
    finally:
        if how == "chmod":
            for path in [settings.data_dir, *settings.data_dir.rglob("*")]:
                path.chmod(path.stat().st_mode | 0o200)


def test_opening_while_a_writer_switches_models_says_so(shop):
    _, _, settings = shop
    store = Store.open(settings.db_path)
    base = store.get_meta("base_fingerprint")
    with writing(settings, "use adapter-001"):  # the model is switched, its indexes are not committed yet
        store.set_meta("base_fingerprint", "another-model")
        with pytest.raises(IndexMismatchError, match="being rewritten for another model") as info:
            SearchService.open(settings, encoder=None)
        assert "use adapter-001" in info.value.message and "search again" in info.value.hint
    with pytest.raises(IndexMismatchError, match="built for model"):  # no writer: the usual advice
        SearchService.open(settings)
    store.set_meta("base_fingerprint", base)
