"""The real `mmtui tui` in a pseudo-terminal that answers like Debian 12's kitty 0.26.5: images in half-blocks, and
never textual-image's U=1 placements (kitty 0.26 rejects the key and draws red boxes)."""

from __future__ import annotations

import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mmtui.build.pipeline import build_index
from mmtui.config import Settings
from mmtui.encoders import FakeEncoder

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty") or sys.platform == "win32", reason="needs a pty")

REPO = Path(__file__).resolve().parents[2]
KITTY_0_26 = b"\x1b_Gi=31;OK\x1b\\\x1bP>|kitty(0.26.5)\x1b\\\x1b[?62;c"  # its answers to XTVERSION, graphics, DA1
LATER = b"\x1b_Gi=31;OK\x1b\\\x1b[?62;c"  # textual-image asks DA1 and the graphics query again


class Terminal:
    """The terminal side of a pty: keeps what the app writes, answers each DA1 query as kitty 0.26.5 does."""

    def __init__(self, master: int) -> None:
        self.master, self.output, self.asked = master, bytearray(), 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output += data
            for _ in range(data.count(b"\x1b[c")):
                os.write(self.master, KITTY_0_26 if self.asked == 0 else LATER)
                self.asked += 1


def _events(trace: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _wait(trace: Path, proc, name: str, timeout: float = 90.0) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        found = [e for e in _events(trace) if e["event"] == name and (name != "results" or e.get("n"))]
        if found:
            return found[-1]
        assert proc.poll() is None, f"mmtui tui exited with {proc.returncode}"
        time.sleep(0.05)
    raise AssertionError(f"no {name!r} event in {timeout} s: {[e['event'] for e in _events(trace)]}")


def test_the_tui_in_kitty_0_26_draws_half_blocks_and_sends_no_placeholders(tiny_catalog, tmp_path):
    import fcntl
    import termios

    data_dir = tmp_path / "index"
    build_index(Settings(data_dir=data_dir, model="fake"), tiny_catalog, encoder=FakeEncoder())
    trace = tmp_path / "trace.jsonl"
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 1000, 600))
    env = {**os.environ, "PYTHONPATH": str(REPO), "MMTUI_TRACE": str(trace), "TERM": "xterm-kitty"}
    for key in ("MMTUI_IMAGES", "TMUX", "STY"):
        env.pop(key, None)
    proc = subprocess.Popen([sys.executable, "-m", "mmtui.cli.main", "tui", "--data-dir", str(data_dir)],
                            stdin=slave, stdout=slave, stderr=slave, env=env, cwd=REPO, start_new_session=True)
    os.close(slave)
    terminal = Terminal(master)
    try:
        chosen = _wait(trace, proc, "protocol")
        _wait(trace, proc, "interactive")
        os.write(master, b"red shirt")
        _wait(trace, proc, "results")
        time.sleep(1.0)  # the thumbnails are drawn after the rows
        os.write(master, b"\x11")  # ctrl+q
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
    assert chosen["protocol"] == "halfcell" and "0.28" in chosen["reason"]
    output = bytes(terminal.output)
    assert b"U=1" not in output and b"a=T" not in output  # no Kitty image was placed, with or without placeholders
    assert "▀".encode() in output  # the thumbnails, as half-blocks
