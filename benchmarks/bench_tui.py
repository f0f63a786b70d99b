"""TUI launch-to-interactive and keystroke-to-results: the real `mmtui tui` in a pseudo-terminal.

The parent starts `python -m mmtui.cli.main tui --data-dir INDEX` in a pty (120x40, so imports, Textual's real
driver and rendering all count), with MMTUI_TRACE set: the app then appends one JSON line per event to a
file (mmtui/tui/trace.py; off by default). Keys are written to the pty as a terminal sends them. Times:
- interactive: from the moment the parent starts the process to the first refresh of the search screen
  with the query box focused (keys typed from then on are handled at once);
- first results: "blue shirt" + Enter typed at that moment -> the first results frame (lexical while the
  model loads, as the TUI does), from process start;
- service open, model loaded, first hybrid results (model in use);
- keystroke -> results (model loaded): the last key of a query -> the first results frame for it (includes
  the TUI's debounce), and Enter -> results (no debounce).
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

from .bench_util import REPO, TINY_CONFIGS, WORK, log, percentiles, queries

TARGETS = {"interactive_s": 1.0, "first_results_s": 1.5}
DEBOUNCE_S = 0.25  # mirrors mmtui.tui.screens.search.DEBOUNCE_S (not imported: that would import textual here)


_LIVE: set["TuiProcess"] = set()  # launched and not yet reaped: killed at exit, on SIGTERM/SIGHUP, whatever happens
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGKILL when the harness dies, even by SIGKILL, so no TUI is orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _kill_all() -> None:
    for tui in list(_LIVE):
        tui.kill()


def _on_signal(signum: int, frame: object) -> None:
    _kill_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)  # then die of it as before


def _install_cleanup() -> None:
    """Once: kill the children at exit and on SIGTERM/SIGHUP (a `timeout` or a closed terminal runs no finally)."""
    if getattr(_install_cleanup, "done", False):
        return
    _install_cleanup.done = True  # type: ignore[attr-defined]
    atexit.register(_kill_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


def sample_index(model: str) -> Path:
    """A data dir with sample_catalog built with `model` (cached under .work)."""
    from mmtui.build.pipeline import build_index
    from mmtui.config import Settings

    from .bench_util import ensure_query_model, load_model

    encoder = load_model(model)
    root = WORK / f"tui-{model}-{encoder.fingerprint}"  # new weights, new index
    if not (root / "built.json").is_file():
        log(f"tui: building sample_catalog with {model}")
        report = build_index(Settings(data_dir=root), REPO / "sample_catalog", encoder=encoder)
        (root / "built.json").write_text(json.dumps(report.to_json()))
    ensure_query_model(Settings(data_dir=root), encoder)  # a store cached by an older version has none
    return root


class TuiProcess:
    """`mmtui tui` in a pty: write keys, read the trace file's events.

    The pty answers the device-attributes query (no sixel) as a typical terminal does at once; the kitty
    graphics query gets no answer (textual-image then waits its 0.1 s timeout, as in most terminals)."""

    def __init__(self, data_dir: Path, trace: Path, size: tuple[int, int] = (120, 40),
                 python_args: tuple[str, ...] = ()) -> None:
        self.trace = trace
        trace.unlink(missing_ok=True)
        self.master, slave = pty.openpty()
        cols, rows = size
        # pixel size too, as most terminals report it (textual-image reads the cell size from it)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, cols * 10, rows * 20))
        env = {**os.environ, "PYTHONPATH": str(REPO), "MMTUI_OPENCLIP_CONFIGS": str(TINY_CONFIGS),
               "MMTUI_TRACE": str(trace), "TERM": "xterm-256color",
               "COLUMNS": str(cols), "LINES": str(rows)}
        for key in ("TMUX", "MMTUI_IMAGES"):  # the default: the image protocol is detected (asks the terminal)
            env.pop(key, None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # mmtui's own modules run from bytecode, as in any install
        _install_cleanup()
        self.t0 = time.time()
        try:
            # its own session (the pty is its terminal) and process group: killed as a group, helpers included
            self.proc = subprocess.Popen([sys.executable, *python_args, "-m", "mmtui.cli.main", "tui", "--data-dir",
                                          str(data_dir)], cwd=REPO, env=env, stdin=slave, stdout=slave,
                                         stderr=slave, start_new_session=True, close_fds=True,
                                         preexec_fn=_die_with_parent)
        except BaseException:
            os.close(slave)
            os.close(self.master)
            raise
        _LIVE.add(self)
        try:
            os.close(slave)
            self.screen = bytearray()  # everything the app wrote (kept for the tail on failure)
            self._reader = threading.Thread(target=self._drain, daemon=True)
            self._reader.start()
            self._seen = 0
        except BaseException:
            self.close()
            raise

    def _drain(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.5)
                if ready:
                    data = os.read(self.master, 65536)
                    if not data:
                        return
                    self.screen += data
                    if b"\x1b[c" in data:  # answer "what are you" as a VT220-like terminal without sixel does
                        os.write(self.master, b"\x1b[?62;22c")
                    del self.screen[:-20000]
            except OSError:
                return

    def send(self, keys: str) -> float:
        t = time.time()
        os.write(self.master, keys.encode())
        return t

    def events(self) -> list[dict]:
        try:
            return [json.loads(line) for line in self.trace.read_text().splitlines() if line.strip()]
        except FileNotFoundError:
            return []

    def wait(self, match, timeout: float = 60.0, after: float = 0.0) -> dict:
        """The first event (at or after `after`) for which match(event) is true; polls every 2 ms."""
        end = time.time() + timeout
        while time.time() < end:
            for e in self.events():
                if e["t"] >= after and match(e):
                    return e
            if self.proc.poll() is not None:
                raise RuntimeError(f"mmtui tui exited with {self.proc.returncode}: {self.tail()}")
            time.sleep(0.002)
        last = [(e["event"], e.get("query"), e.get("mode")) for e in self.events()[-6:]]
        raise TimeoutError(f"no matching TUI event within {timeout} s; last events: {last}")

    def tail(self) -> str:
        """The end of what the app drew, escape sequences blanked (enough to see the last frame's text)."""
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", " ", bytes(self.screen[-12000:]).decode("utf-8", "replace"))
        return re.sub(r"[\s▁▔▎▊]+", " ", text)[-1500:]

    def close(self, grace: float = 3.0) -> None:
        """Quit (ctrl+q), then SIGTERM, then SIGKILL the whole process group; always reaps it and closes the pty."""
        try:
            if self.proc.poll() is None:
                try:
                    self.send("\x11")  # ctrl+q
                    self.proc.wait(grace)
                except (OSError, subprocess.TimeoutExpired):
                    pass
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGTERM then SIGKILL to the process group (the TUI and anything it started), reap, close the pty.

        The group is signalled only while its leader is not reaped, so its id cannot belong to someone else."""
        try:
            if self.proc.poll() is None:
                for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
                    try:
                        os.killpg(self.proc.pid, sig)  # start_new_session: its group id is its pid
                    except (ProcessLookupError, PermissionError):
                        break
                    try:
                        self.proc.wait(wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
        finally:
            _LIVE.discard(self)
            try:
                os.close(self.master)
            except OSError:
                pass


def one_launch(data_dir: Path, trace: Path, n_keys: int) -> dict:
    tui = TuiProcess(data_dir, trace)
    out: dict = {}
    try:
        ev = tui.wait(lambda e: e["event"] == "interactive")
        out["interactive_s"] = ev["t"] - tui.t0
        out["interactive_focused"] = ev.get("focused")
        run = tui.wait(lambda e: e["event"] == "run", 1)
        out["imports_s"] = run["t"] - tui.t0
        tui.send("blue shirt\r")
        ev = tui.wait(lambda e: e["event"] == "results" and e["query"] == "blue shirt" and e["n"] > 0)
        out["first_results_s"] = ev["t"] - tui.t0
        out["first_results_mode"] = ev["mode"]
        out["service_s"] = tui.wait(lambda e: e["event"] == "service_open")["t"] - tui.t0
        out["model_ready_s"] = tui.wait(lambda e: e["event"] == "model_ready", 180)["t"] - tui.t0
        ev = tui.wait(lambda e: e["event"] == "results" and e["query"] == "blue shirt" and e["mode"] == "hybrid")
        out["hybrid_results_s"] = ev["t"] - tui.t0
        key_ms, enter_ms, final_ms, took_ms = [], [], [], []
        focus_moved = ev.get("focused") != "query"
        qs = queries(2 * n_keys, seed=3)
        lost = []
        for i, q in enumerate(qs):
            # Back to an empty, focused box. Enter moves the focus to the results when results were showing (the
            # results event says where the focus is): "/" brings it back. ctrl+u empties the box; past the debounce
            # the tips replace the results. No escape key: a terminal's lone ESC is held by the input parser and
            # can land after the keys typed next.
            if focus_moved:
                tui.send("/")
                time.sleep(0.3)
            tui.send("\x15")
            time.sleep(0.6)
            focus_moved = False
            try:
                if i % 2 == 0:  # keystroke: the query minus its last key, settled, then the last key
                    start = tui.send(q[:-1])
                    tui.wait(lambda e, s=q[:-1]: e["event"] == "results" and e["query"] == s.strip()
                             and not e["quick"], 15, after=start)
                    time.sleep(0.3)
                    t = tui.send(q[-1])
                    ev = tui.wait(lambda e: e["event"] == "results" and e["query"] == q, 15, after=t)
                    key_ms.append((ev["t"] - t) * 1000)
                    ev = tui.wait(lambda e: e["event"] == "results" and e["query"] == q and not e["quick"], 15,
                                  after=t)
                    final_ms.append((ev["t"] - t) * 1000)
                else:  # Enter: the whole query typed at once, then Enter
                    tui.send(q)
                    t = tui.send("\r")
                    ev = tui.wait(lambda e: e["event"] == "results" and e["query"] == q, 15, after=t)
                    enter_ms.append((ev["t"] - t) * 1000)
                    took_ms.append(ev.get("took_ms") or 0.0)
                    ev = tui.wait(lambda e: e["event"] == "results" and e["query"] == q and not e["quick"], 15,
                                  after=t)
                    time.sleep(0.3)
                focus_moved = ev.get("focused") != "query"
            except TimeoutError:  # keys that went elsewhere (focus moved while typing): count it, start again
                lost.append(q)
                focus_moved = True
        out["lost_queries"] = lost
        out["keystroke_ms"] = percentiles(key_ms)
        out["keystroke_final_ms"] = percentiles(final_ms)
        out["enter_ms"] = percentiles(enter_ms)
        out["enter_search_ms"] = percentiles(took_ms)  # the service's own time for those results (SearchResult.took_ms)
    except Exception as exc:  # noqa: BLE001 - keep what was measured, say what broke
        out["error"] = f"{type(exc).__name__}: {exc}"[:800]
        out["screen_tail"] = tui.tail()
    finally:
        tui.close()
    return out


def run(model: str, launches: int = 5, n_keys: int = 12) -> dict:
    data_dir = sample_index(model)
    trace = WORK / "tui-trace.jsonl"
    # An installed package has its bytecode compiled (pip does it; Python writes it on first import). A machine
    # with PYTHONDONTWRITEBYTECODE set would have every launch compile mmtui's modules again: compile them once.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "mmtui")], check=True,
                   env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"})
    runs = []
    for i in range(launches):
        r = one_launch(data_dir, trace, n_keys if i == launches - 1 else 0)
        log(f"tui: launch {i + 1}: {json.dumps({k: round(v, 3) for k, v in r.items() if isinstance(v, float)})}")
        if "interactive_s" not in r or "first_results_s" not in r:
            return {"skipped": f"the TUI run failed: {r.get('error')}", "screen_tail": r.get("screen_tail")}
        runs.append(r)
    keys = [k for k in runs[0] if isinstance(runs[0][k], float)]
    best = {k: min(r[k] for r in runs if k in r) for k in keys}
    median = {k: sorted(r[k] for r in runs if k in r)[len(runs) // 2] for k in keys}
    last = runs[-1]
    return {"model": model, "data_dir": str(data_dir), "runs": runs, "best": best, "median": median,
            "keystroke_ms": last.get("keystroke_ms"), "keystroke_final_ms": last.get("keystroke_final_ms"),
            "enter_ms": last.get("enter_ms"), "enter_search_ms": last.get("enter_search_ms"), "debounce_s": DEBOUNCE_S,
            "lost_queries": last.get("lost_queries", []), "errors": [r["error"] for r in runs if "error" in r]}


def targets(result: dict) -> list[dict]:
    out = []
    for key, limit, label in (("interactive_s", 1.0, "TUI interactive <= 1 s"),
                              ("first_results_s", 1.5, "TUI first results <= 1.5 s after launch"),
                              ("model_ready_s", 1.5, "TUI model ready <= 1.5 s after launch")):
        if "skipped" in result or key not in result.get("median", {}):
            out.append({"target": label, "value": "not measured", "met": None, "why": result.get("skipped")})
        else:
            v, m = result["best"][key], result["median"][key]
            load = (result.get("_run") or {}).get("load_average") or []
            at = f", at load {load[0]:.1f}" if load else ""
            out.append({"target": label, "value": f"{v:.2f} s best, {m:.2f} s median of {len(result['runs'])}{at}",
                        "met": m <= limit})
    return out


def markdown(result: dict) -> list[str]:
    if "skipped" in result:
        return [f"Not measured: {result['skipped']}"]
    b, m = result["best"], result["median"]
    lines = [f"sample_catalog (800 products) built with `{result['model']}`; `mmtui tui` in a 120x40 pseudo-terminal "
             f"(fresh process each launch, mmtui's bytecode compiled beforehand as in an install; the image protocol "
             "detected as by default: the pty answers the device-attributes question as a VT220 without Sixel and, "
             "like xterm, ignores the Kitty graphics query, whose 0.1 s timeout textual-image waits out on a thread "
             f"while the app imports; so half-cell images), {len(result['runs'])} "
             "launches; times from process start, read from the app's MMTUI_TRACE events (after the frame is "
             "refreshed).", "",
             "| step | best s | median s |", "|---|---|---|"]
    for key, label in (("imports_s", "python + imports (cli, textual, mmtui.tui)"),
                       ("interactive_s", "interactive (search screen drawn, query box focused)"),
                       ("service_s", "store + indexes open"),
                       ("first_results_s", "first results (query + Enter typed when interactive)"),
                       ("model_ready_s", "model loaded (a background thread)"),
                       ("hybrid_results_s", "full hybrid results")):
        if key in b:
            lines.append(f"| {label} | {b[key]:.2f} | {m[key]:.2f} |")
    k, f, e = result.get("keystroke_ms") or {}, result.get("keystroke_final_ms") or {}, result.get("enter_ms") or {}
    if k.get("n"):
        lines += ["", f"Model loaded, {k['n']} queries each: last keystroke -> first results frame p50 {k['p50']} ms, "
                  f"p90 {k['p90']} ms (includes the {result['debounce_s'] * 1000:.0f} ms debounce; the full hybrid "
                  f"frame p50 {f.get('p50')} ms); Enter -> results p50 {e.get('p50')} ms, p90 {e.get('p90')} ms, of which "
                  f"the search itself (SearchResult.took_ms) p50 {(result.get('enter_search_ms') or {}).get('p50')} ms "
                  "(the rest: key handling, the lexical-first step, updating the 20 result rows in place, layout and drawing)."]
    if result.get("lost_queries"):
        lines += ["", f"{len(result['lost_queries'])} queries of the key loop never showed results (their keys went "
                  "elsewhere, e.g. the focus moved under load) and are left out: "
                  + ", ".join(f"`{q}`" for q in result["lost_queries"])]
    if result.get("errors"):
        lines += ["", "Errors during the runs: " + "; ".join(f"`{x}`" for x in result["errors"])]
    return lines


if __name__ == "__main__":  # one launch over a built data dir: python -m benchmarks.bench_tui DATA_DIR
    print(json.dumps(one_launch(Path(sys.argv[1]), Path("/tmp/mmtui-tui-trace.jsonl"), int(sys.argv[2]) if len(sys.argv) > 2 else 4), indent=1))
