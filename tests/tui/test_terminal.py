"""The image protocol chosen from what terminals answer to XTVERSION, the Kitty graphics query and DA1.

The answers are byte for byte what these terminals send back to mmtui.tui.terminal.QUERIES (the reply formats
of XTVERSION `DCS > | name ST`, the Kitty graphics query `APC G i=31;OK ST` and DA1 `CSI ? attrs c`, with each
terminal's own name, version and attributes)."""

from __future__ import annotations

import os
import threading

import pytest

from mmtui.tui import terminal
from mmtui.tui.terminal import Answers, choose, parse_answers, probe
from mmtui.tui.thumbnails import detect_graphics, image_widget_class

OK = "\x1b_Gi=31;OK\x1b\\"
RECORDED = {
    "kitty 0.26.5": OK + "\x1bP>|kitty(0.26.5)\x1b\\" + "\x1b[?62;c",  # Debian 12's kitty
    "kitty 0.35.2": OK + "\x1bP>|kitty(0.35.2)\x1b\\" + "\x1b[?62;52;c",
    "ghostty 1.1.3": OK + "\x1bP>|ghostty 1.1.3\x1b\\" + "\x1b[?62;22;52c",
    "wezterm": "\x1bP>|WezTerm 20240203-110809-5046fc22\x1b\\" + "\x1b[?65;4;6;18;22c",
    "wezterm with kitty graphics": OK + "\x1bP>|WezTerm 20240203-110809-5046fc22\x1b\\" + "\x1b[?65;4;6;18;22c",
    "konsole": OK + "\x1bP>|Konsole 25.12.3\x1b\\" + "\x1b[?62;1;4c",
    "foot": "\x1bP>|foot(1.16.2)\x1b\\" + "\x1b[?62;4;22c",
    "xterm": "\x1bP>|XTerm(379)\x1b\\" + "\x1b[?64;1;2;6;9;15;16;17;18;21;22;28c",
    "xterm -ti vt340": "\x1bP>|XTerm(379)\x1b\\" + "\x1b[?63;1;2;3;4;6;9;15;16;22;28c",
    "tmux 3.3a": "\x1bP>|tmux 3.3a\x1b\\" + "\x1b[?1;2c",
    "tmux 3.4 with sixel": "\x1bP>|tmux 3.4\x1b\\" + "\x1b[?1;2;4c",
    "gnome terminal": "\x1b[?65;1;9c",
    "silent": "",
}
TMUX_ENV = {"TMUX": "/tmp/tmux-1000/default,1,0", "TERM": "tmux-256color"}


@pytest.mark.parametrize("name, env, protocol, why", [
    ("kitty 0.26.5", {"TERM": "xterm-kitty"}, "halfcell", "not its Unicode placeholders (from kitty 0.28.0)"),
    ("kitty 0.35.2", {"TERM": "xterm-kitty"}, "tgp", "Unicode placeholders"),
    ("ghostty 1.1.3", {"TERM": "xterm-ghostty"}, "tgp", "Unicode placeholders"),
    ("wezterm", {"TERM_PROGRAM": "WezTerm"}, "sixel", "reports Sixel"),
    ("wezterm with kitty graphics", {"TERM_PROGRAM": "WezTerm"}, "sixel", "not known to draw its Unicode"),
    ("konsole", {}, "sixel", "reports Sixel"),
    ("foot", {"TERM": "foot"}, "sixel", "foot 1.16.2 reports Sixel"),
    ("xterm", {"TERM": "xterm"}, "halfcell", "neither Sixel"),
    ("xterm -ti vt340", {"TERM": "xterm"}, "sixel", "xterm 379 reports Sixel"),
    ("tmux 3.3a", TMUX_ENV, "halfcell", "inside tmux"),
    ("tmux 3.4 with sixel", TMUX_ENV, "sixel", "inside tmux, which reports Sixel"),
    ("gnome terminal", {"TERM": "xterm-256color"}, "halfcell", "neither Sixel"),
    ("silent", {"TERM": "xterm-256color"}, "halfcell", "answered none of the queries"),
])
def test_each_terminal_gets_the_protocol_it_can_draw(name, env, protocol, why):
    choice = choose(parse_answers(RECORDED[name]), env)
    assert choice.protocol == protocol, choice.reason
    assert why in choice.reason
    assert not choice.forced


def test_answers_are_read_whatever_their_order_and_surroundings():
    raw = "noise\x1b[?62;4;22cmore" + "\x1bP>|foot(1.16.2)\x1b\\" + "\x1b_Gi=31;ENOENT:no such image\x1b\\"
    answers = parse_answers(raw)
    assert answers.xtversion == "foot(1.16.2)"
    assert answers.da1 == (62, 4, 22)
    assert answers.graphics == "ENOENT:no such image"
    assert terminal.terminal_identity(answers.xtversion) == ("foot", "1.16.2")
    assert terminal.terminal_identity("tmux 3.3a") == ("tmux", "3.3a")
    assert terminal.version_tuple("0.26.5") < terminal.version_tuple("0.28") <= terminal.version_tuple("0.28.0")


def test_a_graphics_error_is_not_support():
    raw = "\x1b_Gi=31;EINVAL:unsupported\x1b\\\x1bP>|kitty(0.35.2)\x1b\\\x1b[?62;c"
    assert choose(parse_answers(raw), {}).protocol == "halfcell"


def test_a_terminal_that_names_itself_outranks_a_stale_tmux_variable():
    # a terminal started from inside tmux keeps TMUX, but its own answers come back
    choice = choose(parse_answers(RECORDED["kitty 0.35.2"]), TMUX_ENV)
    assert choice.protocol == "tgp"
    assert choose(parse_answers(RECORDED["silent"]), TMUX_ENV).reason.startswith("inside tmux")


def test_mmtui_images_forces_a_choice_and_says_so(monkeypatch):
    forced = choose(parse_answers(RECORDED["kitty 0.26.5"]), {}, forced="tgp")
    assert forced.protocol == "tgp" and forced.forced and "MMTUI_IMAGES=tgp" in forced.reason
    monkeypatch.setenv("MMTUI_IMAGES", "sixel")
    asked = []
    choice = detect_graphics(ask=lambda: asked.append(1) or Answers())
    assert choice.protocol == "sixel" and choice.forced and not asked  # the terminal is not even asked
    monkeypatch.setenv("MMTUI_IMAGES", "auto")
    assert detect_graphics(ask=lambda: parse_answers(RECORDED["foot"])).protocol == "sixel"


def test_no_terminal_means_half_blocks():
    choice = choose(Answers(asked=False), {})
    assert choice.protocol == "halfcell" and "no terminal" in choice.reason


def test_kitty_0_26_never_gets_the_placeholder_widget(monkeypatch):
    """Debian 12's kitty rejects textual-image's U=1 placements (red boxes): it must get half-blocks."""
    monkeypatch.delenv("MMTUI_IMAGES", raising=False)
    choice = detect_graphics(ask=lambda: parse_answers(RECORDED["kitty 0.26.5"]))
    import textual_image.widget as tiw

    assert image_widget_class(choice.protocol) is tiw.HalfcellImage
    assert image_widget_class(detect_graphics(ask=lambda: parse_answers(RECORDED["kitty 0.35.2"])).protocol) \
        is tiw.TGPImage


def _fake_terminal(master: int, reply: str, stop: threading.Event, heard: list[bytes]) -> None:
    """Reads the queries on the master side of a pty and answers like a terminal would."""
    import select

    data = b""
    while not stop.is_set() and not data.endswith(terminal.DA1_QUERY.encode()):
        readable, _, _ = select.select([master], [], [], 0.05)
        if readable:
            data += os.read(master, 1024)
    heard.append(data)
    if reply:
        os.write(master, reply.encode())


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("name", ["kitty 0.26.5", "silent"])
def test_probe_asks_a_real_pty_and_reads_until_the_da1_answer(name):
    import termios

    master, slave = os.openpty()
    path = os.ttyname(slave)
    before = termios.tcgetattr(slave)
    stop, heard = threading.Event(), []
    thread = threading.Thread(target=_fake_terminal, args=(master, RECORDED[name], stop, heard), daemon=True)
    thread.start()
    try:
        answers = probe(timeout=0.3 if name == "silent" else 5.0, tty_path=path)
    finally:
        stop.set()
        thread.join(2)
        after = termios.tcgetattr(slave)
        os.close(master)
        os.close(slave)
    assert heard and heard[0] == terminal.QUERIES.encode()
    assert after == before  # the terminal's mode is put back
    if name == "silent":
        assert answers.asked and not answers.answered
        assert choose(answers, {}).protocol == "halfcell"
    else:
        assert answers.xtversion == "kitty(0.26.5)" and answers.graphics == "OK" and answers.da1 == (62,)
        assert choose(answers, {}).protocol == "halfcell"


def test_probe_without_a_terminal_says_it_could_not_ask(tmp_path):
    answers = probe(timeout=0.1, tty_path=str(tmp_path / "no-such-tty"))
    assert not answers.asked
