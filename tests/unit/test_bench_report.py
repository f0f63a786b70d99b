"""The speed report says where each section's figures come from, also after several --merge runs."""

from __future__ import annotations

from benchmarks.run import markdown, stamped_sections


def _merge_note(names: str, at: str, cmd: str, prev_at: str, load: str) -> str:
    return (f"Sections {names} re-run at {at} (--merge); the others come from `{cmd}` at {prev_at} "
            f"(load average [{load}] at its start).")


def test_sections_from_chained_merge_notes_get_their_own_run():
    previous = {
        "command": "run --sections tui --merge", "started": "T3", "load_average_start": [0.5, 0.6, 0.7],
        "sections": {"query": {"x": 1}, "tui": {"x": 2}, "ann": {"x": 3}, "encode": {"x": 4, "_run": {"at": "T9"}}},
        "notes": ["the lite weights are here",
                  _merge_note("query, tui", "T2", "run (full)", "T1", "3.0, 2.0, 1.0"),
                  _merge_note("tui", "T3", "run --sections query,tui --merge", "T2", "1.5, 1.4, 1.3")],
    }
    runs = {k: v["_run"] for k, v in stamped_sections(previous).items()}
    assert runs["ann"] == {"at": "T1", "command": "run (full)", "load_average": [3.0, 2.0, 1.0]}
    assert runs["query"] == {"at": "T2", "command": "run --sections query,tui --merge", "load_average": [1.5, 1.4, 1.3]}
    assert runs["tui"] == {"at": "T3", "command": "run --sections tui --merge", "load_average": [0.5, 0.6, 0.7]}
    assert runs["encode"] == {"at": "T9"}  # a stamp already there is kept
    assert "_run" not in previous["sections"]["ann"]  # the previous report is not modified


def test_markdown_lists_the_run_of_each_section_only_when_they_differ():
    one = {"at": "T1", "load_average": [1.0, 1.0, 1.0], "command": "run", "git": "abc"}
    report = {"command": "run", "started": "T1", "sections": {"rebuild": {"_run": one}, "memory": {"_run": one}}}
    assert not any("Where each section comes from" in line for line in markdown(report))
    report["sections"]["memory"] = {"_run": {**one, "at": "T2", "git": "def"}}
    lines = markdown(report)
    assert "## Where each section comes from" in lines
    assert any(line.startswith("| memory | T2 | 1.00, 1.00, 1.00 | `run` | def |") for line in lines)
