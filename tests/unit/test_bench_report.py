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


def test_the_cold_section_judges_on_wall_time_and_shows_before_and_after():
    from benchmarks import bench_cold
    from benchmarks.run import targets

    def case(wall, cpu, load):
        return {"wall_median_s": wall, "wall_min_s": wall, "cpu_median_s": cpu, "cpu_min_s": cpu, "rss_mb_median": 200,
                "load_median": load, "notes": [], "hits": ["1", "2"]}

    run = {"at": "T1", "load_average": [9.0, 9.0, 9.0], "command": "run"}
    cold = {"data_dir": "d", "rounds": 3, "query": "q", "image": "i.jpg", "load_average_start": [9.0, 9, 9],
            "load_average_end": [8.0, 8, 8], "sources": {"this version": "/new", "baseline": "/old"},
            "cases": {"this version": {"search_text": case(2.5, 0.6, 9.0), "help": case(0.15, 0.1, 9.0)},
                      "baseline": {"search_text": case(9.0, 2.9, 9.0), "help": case(0.16, 0.1, 9.0)}},
            "same_hits": {"search_text": True}, "hits_overlap": {"search_text": 2},
            "baseline_report": {"path": "old.json", "tui": {"model_ready_s": 4.9, "_run": run}}, "_run": run}
    report = {"command": "run", "started": "T1", "query_model": "lite",
              "sections": {"cold": cold, "tui": {"median": {"model_ready_s": 1.4}, "best": {"model_ready_s": 1.3},
                                                 "runs": [{}, {}, {}], "_run": run}}}
    rows = {t["target"]: t for t in targets(report)}
    busy = rows["cold `mmtui search` <= 1 s wall (quiet 2-core machine)"]
    assert busy["met"] is None and "not quiet" in busy["why"]  # 2.5 s wall at load 9, 0.6 s of CPU
    assert rows["`mmtui --help` < 0.2 s wall"]["met"] is True
    assert rows["TUI model ready <= 1.5 s after launch"]["met"] is True
    lines = bench_cold.markdown(cold, report)
    assert "| cold `mmtui search TEXT` wall / CPU s | 9.0 / 2.9 | 2.5 / 0.6 |" in lines
    assert "| TUI model ready after launch, s (median) | 4.9 | 1.4 |" in lines
