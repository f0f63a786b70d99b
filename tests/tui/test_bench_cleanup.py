"""The TUI benchmark never leaves its `mmtui tui` child running: not after close, not when the harness dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.bench_tui import REPO, TuiProcess

# Stands in for the TUI: ignores ctrl+q and SIGTERM, starts a grandchild, writes both pids, then sleeps.
STUBBORN = ("import os, signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            "open(os.environ['PIDS'], 'w').write(f'{os.getpid()} {g.pid}'); time.sleep(120)")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its parent counts as gone
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # "pid (comm) state ...": comm may hold spaces, and a process being reaped reads as ""
    fields = stat.rpartition(")")[2].split()
    return bool(fields) and fields[0] not in ("Z", "X")


def wait_for(path: Path, timeout: float = 10.0) -> list[int]:
    end = time.time() + timeout
    while time.time() < end:
        if path.is_file() and path.read_text().strip():
            return [int(x) for x in path.read_text().split()]
        time.sleep(0.02)
    raise TimeoutError(path)


def gone(pids: list[int], timeout: float = 10.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(sys.platform != "linux", reason="pty and process groups as on Linux")
def test_close_kills_a_child_that_ignores_quit_and_sigterm_and_its_group(tmp_path, monkeypatch):
    monkeypatch.setenv("PIDS", str(tmp_path / "pids"))
    tui = TuiProcess(tmp_path, tmp_path / "trace.jsonl", python_args=("-c", STUBBORN))
    pids = wait_for(tmp_path / "pids")
    start = time.time()
    tui.close(grace=0.2)
    assert tui.proc.returncode is not None
    assert gone(pids), "the TUI or its child survived close()"
    assert time.time() - start < 10


@pytest.mark.skipif(sys.platform != "linux", reason="prctl PDEATHSIG and signals as on Linux")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_the_child_dies_when_the_harness_is_killed(tmp_path, how):
    """A harness killed by `timeout` (SIGTERM) or SIGKILL runs no finally: the child must go anyway."""
    pids_file = tmp_path / "pids"
    harness = ("import sys, time; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
               "from benchmarks.bench_tui import TuiProcess; "
               f"t = TuiProcess(Path(sys.argv[2]), Path(sys.argv[2]) / 't.jsonl', python_args=('-c', {STUBBORN!r})); "
               "time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", harness, str(REPO), str(tmp_path)],
                              env={**os.environ, "PIDS": str(pids_file)})
    try:
        tui_pid, _grandchild = pids = wait_for(pids_file)
        parent.send_signal(how)
        parent.wait(15)
        assert gone([tui_pid]), "the TUI outlived the harness"
        if how == signal.SIGTERM:  # the harness's handler kills the whole group
            assert gone(pids), "a process the TUI started outlived the harness"
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in locals().get("pids", []):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
