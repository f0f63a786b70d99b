"""What the terminal can draw: ask it, then decide which image protocol to use, and say why.

`probe()` writes three queries to the terminal and reads its answers: XTVERSION (`CSI > 0 q`: its name and
version), the Kitty graphics query (`APC G a=q ... ST`: does it speak the Kitty graphics protocol) and DA1
(`CSI c`: its attributes, 4 = Sixel). Terminals answer in order and nearly all answer DA1, so the DA1 answer
ends the wait; a terminal that answers nothing costs the timeout. `parse_answers()` and `choose()` are pure, so
the decision is tested on answers recorded from real terminals (tests/tui/test_terminal.py).

Why a version matters: textual-image draws Kitty graphics only through Unicode placeholders (`U=1`), which kitty
understands from 0.28.0; kitty 0.26.5 (Debian 12) rejects the key and shows red boxes. Kitty graphics placed
without placeholders stay on screen until deleted (Textual's redraws do not erase them), which textual-image does
not manage, so such terminals get Sixel when they report it, else half-blocks.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

XTVERSION_QUERY = "\x1b[>0q"
GRAPHICS_QUERY = "\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\"  # a 1x1 RGB image, queried, never stored
DA1_QUERY = "\x1b[c"
QUERIES = XTVERSION_QUERY + GRAPHICS_QUERY + DA1_QUERY
PROBE_TIMEOUT_S = 0.5  # a remote terminal over ssh answers in a round trip; one that never answers costs this

_XTVERSION = re.compile(r"\x1bP>\|(.*?)(?:\x1b\\|\x07)", re.S)
_GRAPHICS = re.compile(r"\x1b_G(.*?)(?:\x1b\\|\x07)", re.S)
_DA1 = re.compile(r"\x1b\[\?([\d;]*)c")
PLACEHOLDERS_SINCE = {"kitty": (0, 28, 0), "ghostty": (1, 0, 0)}  # Unicode placeholders (the U=1 key)
SIXEL_ATTRIBUTE = 4


@dataclass(frozen=True)
class Answers:
    """What the terminal said. None: it did not answer that query."""

    xtversion: str | None = None  # e.g. "kitty(0.26.5)", "WezTerm 20240203-110809-5046fc22", "tmux 3.4"
    graphics: str | None = None  # the Kitty graphics query's status: "OK", or an error such as "EINVAL:..."
    da1: tuple[int, ...] | None = None  # DA1 attributes, e.g. (62, 4, 22)
    asked: bool = True  # False: there was no terminal to ask (no /dev/tty, or not a terminal)
    raw: str = ""  # every byte read back, for `mmtui doctor --json`

    def to_json(self) -> dict:
        return {**asdict(self), "da1": list(self.da1) if self.da1 is not None else None}

    @property
    def answered(self) -> bool:
        return any(x is not None for x in (self.xtversion, self.graphics, self.da1))


@dataclass(frozen=True)
class Choice:
    protocol: str  # sixel | tgp | halfcell | unicode | none
    reason: str  # one sentence: why this protocol
    terminal: str = "unknown"  # "kitty 0.26.5", "foot 1.16.2", "tmux 3.3a", "unknown"
    forced: bool = False  # chosen by MMTUI_IMAGES (or a caller), not by the terminal's answers

    def to_json(self) -> dict:
        return asdict(self)


def parse_answers(raw: str, asked: bool = True) -> Answers:
    """The three answers found in what the terminal sent back (in any order, with anything around them)."""
    xtversion = _XTVERSION.search(raw)
    graphics = _GRAPHICS.search(raw)
    da1 = _DA1.search(raw)
    status = None
    if graphics is not None:
        body = graphics.group(1)
        status = body.split(";", 1)[1] if ";" in body else body
    attributes = None
    if da1 is not None:
        attributes = tuple(int(x) for x in da1.group(1).split(";") if x.isdigit())
    return Answers(xtversion=xtversion.group(1).strip() if xtversion else None, graphics=status, da1=attributes,
                   asked=asked, raw=raw)


def terminal_identity(xtversion: str | None) -> tuple[str, str]:
    """("kitty", "0.26.5") from "kitty(0.26.5)", ("wezterm", "20240203-...") from "WezTerm 20240203-..."."""
    if not xtversion:
        return "", ""
    match = re.match(r"\s*([^\s(]+)\s*\(\s*([^)]*)\)", xtversion) or re.match(r"\s*(\S+)\s+(\S+)", xtversion)
    if match:
        return match.group(1).lower(), match.group(2)
    return xtversion.strip().lower(), ""


def version_tuple(text: str) -> tuple[int, ...]:
    """(0, 26, 5) from "0.26.5"; () when it does not start with a number."""
    parts = []
    for piece in re.split(r"[.\-+]", text):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group(0)))
    return tuple(parts)


def in_multiplexer(answers: Answers, env: Mapping[str, str]) -> str:
    """"tmux" or "screen" when the queries went to a multiplexer (which answers for itself), else "".

    A terminal that names itself in XTVERSION is believed over the environment: TMUX may be left over in a
    terminal started from inside tmux."""
    name, _ = terminal_identity(answers.xtversion)
    if name in ("tmux", "screen"):
        return name
    if name:
        return ""
    if env.get("TMUX") or env.get("TERM", "").startswith("tmux"):
        return "tmux"
    if env.get("STY") or env.get("TERM", "").startswith("screen"):
        return "screen"
    return ""


def choose(answers: Answers, env: Mapping[str, str] | None = None, forced: str | None = None) -> Choice:
    """The protocol to draw images with, from the terminal's answers; `forced` (MMTUI_IMAGES) wins."""
    env = os.environ if env is None else env
    name, version = terminal_identity(answers.xtversion)
    label = f"{name} {version}".strip() or "unknown"
    if forced and forced != "auto":
        return Choice(forced, f"MMTUI_IMAGES={forced} chose it", label, forced=True)
    if not answers.asked:
        return Choice("halfcell", "there is no terminal to ask (not run in a terminal): half-blocks need nothing "
                                  "from it", label)
    sixel = answers.da1 is not None and SIXEL_ATTRIBUTE in answers.da1
    multiplexer = in_multiplexer(answers, env)
    if multiplexer:
        if sixel:
            return Choice("sixel", f"inside {multiplexer}, which reports Sixel (DA1 attribute 4) and draws it itself",
                          label)
        return Choice("halfcell", f"inside {multiplexer}: Kitty graphics do not pass through it and it reports no "
                                  "Sixel (tmux 3.4 built with Sixel does)", label)
    if not answers.answered:
        return Choice("halfcell", "the terminal answered none of the queries (XTVERSION, Kitty graphics, DA1)",
                      label)
    kitty_graphics = answers.graphics is not None and answers.graphics.upper().startswith("OK")
    since = PLACEHOLDERS_SINCE.get(name)
    placeholders = since is not None and version_tuple(version) >= since
    if kitty_graphics and placeholders:
        return Choice("tgp", f"{label} speaks Kitty graphics with Unicode placeholders "
                             f"({name} >= {'.'.join(map(str, since))})", label)
    if sixel:
        why = f"{label} reports Sixel (DA1 attribute 4)"
        if kitty_graphics:
            why += "; it also answers the Kitty graphics query, but is not known to draw its Unicode placeholders"
        return Choice("sixel", why, label)
    if kitty_graphics:
        if since is not None:
            why = (f"{label} speaks Kitty graphics but not its Unicode placeholders (from {name} "
                   f"{'.'.join(map(str, since))}), which textual-image draws with, and has no Sixel")
        else:
            why = (f"{label} answers the Kitty graphics query, but Unicode placeholders are known to work only in "
                   "kitty >= 0.28 and Ghostty, and it reports no Sixel")
        return Choice("halfcell", why, label)
    return Choice("halfcell", f"{label} reports neither Sixel (DA1) nor Kitty graphics", label)


def probe(timeout: float = PROBE_TIMEOUT_S, tty_path: str | None = None) -> Answers:
    """Ask the terminal (XTVERSION, Kitty graphics, DA1) and read its answers, until the DA1 answer or `timeout`.

    The terminal is the one the TUI draws on: stdin and stdout when both are terminals, else the controlling
    terminal (/dev/tty: `mmtui doctor --json > file`), or `tty_path`. Must run before Textual owns the terminal
    (its input thread would take the answers)."""
    try:
        import select
        import termios
        import tty
    except ImportError:  # no POSIX terminal control (Windows): nothing to ask with
        return Answers(asked=False)
    opened = None
    try:
        if tty_path is None and _is_tty(sys.__stdin__) and _is_tty(sys.__stdout__):
            read_fd, write_fd = sys.__stdin__.fileno(), sys.__stdout__.fileno()
        else:
            opened = read_fd = write_fd = os.open(tty_path or "/dev/tty", os.O_RDWR | os.O_NOCTTY)
            if not os.isatty(opened):
                return Answers(asked=False)
        saved = termios.tcgetattr(read_fd)
        try:
            tty.setcbreak(read_fd, termios.TCSANOW)  # no echo, no line buffering: the answers arrive byte by byte
            os.write(write_fd, QUERIES.encode())
            raw = _read_until_da1(read_fd, timeout, select.select)
        finally:
            termios.tcsetattr(read_fd, termios.TCSANOW, saved)
    except (OSError, termios.error):
        return Answers(asked=False)
    finally:
        if opened is not None:
            os.close(opened)
    return parse_answers(raw.decode("utf-8", "replace"))


def _is_tty(stream) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):  # closed
        return False


def _read_until_da1(fd: int, timeout: float, select) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while not _DA1.search(data.decode("latin-1")):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        readable, _, _ = select([fd], [], [], remaining)
        if not readable:
            break
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        data += chunk
    return data
