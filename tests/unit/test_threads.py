"""How many threads a query gets (mmtui.query.threads), from recorded readings of a 2-core machine: the tests
never measure the machine they run on. /proc/stat counts 100 ticks a second per core."""

from __future__ import annotations

import pytest

from mmtui.query import threads
from mmtui.query.threads import FIRST_SAMPLE_S, LoadWatcher, Reading, load_of_others, query_thread_count


def no_load_average() -> float:
    raise AssertionError("the load average is read only where there are no CPU ticks")


@pytest.fixture(autouse=True)
def no_env_threads(monkeypatch):
    monkeypatch.delenv("MMTUI_THREADS", raising=False)


def test_a_core_kept_busy_by_another_process_means_one_query_thread():
    then, now = Reading(at=10.0, cpu=3.0, busy=5_000, total=20_000), Reading(11.0, 3.0, 5_100, 20_200)
    others = load_of_others(then, now, cores=2, load_average=no_load_average)
    assert others == pytest.approx(1.0)
    assert query_thread_count(load=others, cores=2) == 1


def test_our_own_work_does_not_count_as_others():
    """This process kept one core busy (1 s of CPU in 1 s): a stream of queries keeps its two threads."""
    then, now = Reading(at=10.0, cpu=3.0, busy=5_000, total=20_000), Reading(11.0, 4.0, 5_100, 20_200)
    others = load_of_others(then, now, cores=2, load_average=no_load_average)
    assert others == pytest.approx(0.0)
    assert query_thread_count(load=others, cores=2) == 2


def test_a_build_that_ended_is_not_a_busy_machine_when_ticks_say_so():
    """The 1-minute load average trails: ticks over the last look decide, where there are any."""
    then, now = Reading(at=0.0, cpu=0.0, busy=100, total=10_000), Reading(2.0, 0.0, 110, 10_400)
    assert load_of_others(then, now, cores=2, load_average=lambda: 1.9) == pytest.approx(0.05)


def test_without_ticks_the_load_average_minus_our_own_use():
    then, now = Reading(at=0.0, cpu=0.0), Reading(at=2.0, cpu=1.0)
    assert load_of_others(then, now, cores=2, load_average=lambda: 1.8) == pytest.approx(1.3)
    assert load_of_others(then, now, cores=2, load_average=lambda: 0.2) == 0.0


def test_the_watcher_samples_once_then_compares_with_its_last_look():
    readings = iter([Reading(0.0, 0.0, 0, 1_000), Reading(0.1, 0.0, 20, 1_020),  # first: a 0.1 s sample
                     Reading(5.0, 2.0, 520, 2_000)])  # 4.9 s later, this process used 2 s of it
    slept = []
    watcher = LoadWatcher(read=lambda: next(readings), clock=lambda: 5.0, sleep=slept.append, cores=2,
                          load_average=no_load_average)
    assert watcher.others() == pytest.approx(2.0)  # 20 of 20 ticks busy on 2 cores, none of it ours
    assert slept == [FIRST_SAMPLE_S]
    assert watcher.others() == pytest.approx(500 / 980 * 2 - 2.0 / 4.9)
    assert slept == [FIRST_SAMPLE_S]  # the last look is the baseline now: no second sample


def test_a_look_too_soon_returns_the_last_estimate():
    readings = iter([Reading(0.0, 0.0, 0, 1_000), Reading(0.1, 0.0, 10, 1_020)])
    watcher = LoadWatcher(read=lambda: next(readings), clock=lambda: 0.15, sleep=lambda s: None, cores=2,
                          load_average=no_load_average)
    first = watcher.others()
    assert watcher.others() == first  # no third reading was taken (the iterator would have raised)


def test_a_service_opening_takes_the_first_look():
    readings = [Reading(0.0, 0.0, 0, 1_000), Reading(1.0, 0.0, 100, 1_200)]
    watcher = LoadWatcher(read=lambda: readings.pop(0), clock=lambda: 1.0,
                          sleep=lambda s: pytest.fail("no sample: the first look was taken"), cores=2,
                          load_average=no_load_average)
    watcher.start()
    assert watcher.others() == pytest.approx(1.0)


def test_the_module_watcher_is_what_query_thread_count_reads(monkeypatch):
    readings = [Reading(0.0, 0.0, 0, 1_000), Reading(1.0, 0.0, 200, 1_200)]
    monkeypatch.setattr(threads, "_WATCHER", LoadWatcher(read=lambda: readings.pop(0), clock=lambda: 1.0,
                                                         sleep=lambda s: None, cores=2,
                                                         load_average=no_load_average))
    threads.start_watching_load()
    assert query_thread_count(cores=2) == 1  # both cores busy with other work


def test_a_real_reading_has_the_fields_the_arithmetic_needs():
    reading = threads.read_machine()
    assert reading.at > 0 and reading.cpu >= 0
    assert (reading.busy is None) == (reading.total is None)
