"""How many threads a query's encoding gets: two on an idle 2-core machine, one when other processes keep the
cores busy (threads waiting on each other cost 3-10x there). The machine's load is looked at every few seconds.
"""

from __future__ import annotations

import os
import time

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


_LAST_LOOK: dict = {}  # "look": {at, cpu: own process time, busy, total: /proc/stat ticks}, "estimate": its answer
FIRST_SAMPLE_S = 0.1  # with no earlier look, the machine is watched this long (once, when the model loads)


def _look() -> dict:
    """The machine's CPU ticks (busy, total: /proc/stat's first line, where there is one) and this process's CPU."""
    now = {"at": time.monotonic(), "cpu": time.process_time()}
    try:
        with open("/proc/stat", encoding="ascii") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq (steal and guest left out: not work seen on these cores)
        busy, idle = ticks[0] + ticks[1] + ticks[2] + sum(ticks[5:7]), ticks[3] + ticks[4]
        now["busy"], now["total"] = busy, busy + idle
    except (OSError, ValueError, IndexError):
        pass
    return now


def start_watching_load() -> None:
    """Take a first look at the machine now (opening a service), so choosing threads later needs no sample."""
    if "look" not in _LAST_LOOK:
        _LAST_LOOK["look"] = _look()


def _load_of_others() -> float:
    """How many cores other processes kept busy lately: CPU time /proc/stat counts as busy since the last look
    (over a 0.1 s sample at the first), minus this process's own (its threads must not talk a stream of queries
    down to one thread). Without /proc/stat: the 1-minute load average minus this process's own recent use.

    Not the load average alone: it trails by a minute, so a build that ended 30 s ago still read as a busy machine
    and queries ran on one thread (16.6 instead of 11.9 ms a hybrid query at 10k)."""

    then = _LAST_LOOK.get("look") or {}
    if "estimate" in _LAST_LOOK and time.monotonic() - then["at"] < FIRST_SAMPLE_S:
        return _LAST_LOOK["estimate"]  # too soon to tell anything new
    if "total" not in then and os.path.exists("/proc/stat"):
        then = _look()
        time.sleep(FIRST_SAMPLE_S)
    now = _look()
    wall = now["at"] - then.get("at", now["at"])
    own = (now["cpu"] - then["cpu"]) / wall if wall > 0 else 0.0
    if "total" in now and "total" in then and now["total"] > then["total"]:
        busy = (now["busy"] - then["busy"]) / (now["total"] - then["total"]) * (os.cpu_count() or 1)
        estimate = max(0.0, busy - own)
    else:
        estimate = max(0.0, os.getloadavg()[0] - own)
    _LAST_LOOK.update(look=now, estimate=estimate)
    return estimate


def set_query_threads() -> int:
    """Threads for queries: query_thread_count() torch threads, and one BLAS thread (MMTUI_THREADS overrides).

    numpy's OpenBLAS with 2 threads made a filtered search's exact scoring 5.7 ms instead of 1.5 ms right after
    the torch encode. Returns the torch thread count."""
    import torch
    from threadpoolctl import threadpool_limits

    n = query_thread_count()
    torch.set_num_threads(n)
    threadpool_limits(limits=env_threads() or 1, user_api="blas")
    return n
