"""How many threads a query's encoding gets: two on an idle 2-core machine, one when other processes keep the
cores busy (threads waiting on each other cost 3-10x there). The machine's load is looked at every few seconds.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

from mmtui.config import env_threads

THREADS_RECHECK_S = 5.0  # how often a service looks at the machine's load again


def query_thread_count(load: float | None = None, cores: int | None = None) -> int:
    """Torch threads for encoding one query: MMTUI_THREADS if set; else 2 when other processes leave about two
    cores idle (1.5 or more, measured lately: see _load_of_others), else 1.

    Two threads encode a query ~25% faster on an idle 2-core machine (12.9 vs 17.0 ms a hybrid query at 10k),
    but on busy cores threads waiting on each other cost 3-10x (benchmarks/results/speed.md)."""

    if env_threads():
        return env_threads()
    cores = cores or os.cpu_count() or 1
    if cores < 2:
        return 1
    if load is None:
        try:
            load = _load_of_others()
        except OSError:  # neither /proc/stat nor a load average on this platform
            return 1
    return 2 if cores - load >= 1.5 else 1  # a core for each thread, give or take the odd other task


FIRST_SAMPLE_S = 0.1  # with no earlier look, the machine is watched this long (once, when the model loads)


@dataclass(frozen=True)
class Reading:
    """One look at the machine: when (monotonic s), this process's CPU time (s), and the machine's CPU ticks
    since boot from /proc/stat's first line (busy, total; None where there is no /proc/stat)."""
    at: float
    cpu: float
    busy: int | None = None
    total: int | None = None


def read_machine() -> Reading:
    """The machine's reading now."""
    at, cpu = time.monotonic(), time.process_time()
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq (steal and guest left out: not work seen on these cores)
        busy, idle = ticks[0] + ticks[1] + ticks[2] + sum(ticks[5:7]), ticks[3] + ticks[4]
    except (OSError, ValueError, IndexError):
        return Reading(at, cpu)
    return Reading(at, cpu, busy, busy + idle)


def load_of_others(then: Reading, now: Reading, cores: int, load_average: Callable[[], float]) -> float:
    """How many cores other processes kept busy between two readings: the machine's busy share of its ticks
    times its cores, minus this process's own CPU use (its threads must not talk a stream of queries down to
    one thread). Without ticks: `load_average()` (the 1-minute one) minus this process's own use."""
    wall = now.at - then.at
    own = (now.cpu - then.cpu) / wall if wall > 0 else 0.0
    if now.total is not None and then.total is not None and now.total > then.total:
        busy = (now.busy - then.busy) / (now.total - then.total) * cores
        return max(0.0, busy - own)
    return max(0.0, load_average() - own)


class LoadWatcher:
    """The load of other processes, from the readings since the last look (the readings, the clock, the wait
    and the load average are injectable: tests give recorded ones)."""

    def __init__(self, read: Callable[[], Reading] = read_machine, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, cores: int | None = None,
                 load_average: Callable[[], float] = lambda: os.getloadavg()[0]) -> None:
        self.read, self.clock, self.sleep, self.load_average = read, clock, sleep, load_average
        self.cores = cores or os.cpu_count() or 1
        self.last: Reading | None = None
        self.estimate: float | None = None

    def start(self) -> None:
        """Take a first look now (opening a service), so choosing threads later needs no sample."""
        if self.last is None:
            self.last = self.read()

    def others(self) -> float:
        """How many cores other processes kept busy since the last look (over a FIRST_SAMPLE_S sample at the
        first). Not the load average alone where there are ticks: it trails by a minute, so a build that
        ended 30 s ago would still read as a busy machine."""
        then = self.last
        if self.estimate is not None and then is not None and self.clock() - then.at < FIRST_SAMPLE_S:
            return self.estimate  # too soon to tell anything new
        if then is None or then.total is None:
            first = self.read()
            if first.total is not None:  # ticks to compare: a short sample
                then = first
                self.sleep(FIRST_SAMPLE_S)
        now = self.read()
        then = then or now
        self.last, self.estimate = now, load_of_others(then, now, self.cores, self.load_average)
        return self.estimate


_WATCHER = LoadWatcher()


def start_watching_load() -> None:
    """Take a first look at the machine now (opening a service), so choosing threads later needs no sample."""
    _WATCHER.start()


def _load_of_others() -> float:
    return _WATCHER.others()


def set_query_threads() -> int:
    """Threads for queries: query_thread_count() torch threads (when torch is loaded: the torch-free query path
    never imports it), and one BLAS thread (MMTUI_THREADS overrides).

    numpy's OpenBLAS with 2 threads made a filtered search's exact scoring 5.7 ms instead of 1.5 ms right after
    the torch encode. Returns the thread count."""
    from threadpoolctl import threadpool_limits

    n = query_thread_count()
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    threadpool_limits(limits=env_threads() or 1, user_api="blas")
    return n
