"""The load a measurement met: the share of the machine's CPU time that other processes took
while a region ran. Every timing bench publishes is only as good as the machine was quiet, so
the probe lives here, below every stage that times something (specs, the trainer, studies).
"""

from __future__ import annotations

import os
import time

# Above this share of the machine's CPU time taken by other processes a timing is called suspect:
# on 2 cores, 0.2 is 0.4 of a core held elsewhere throughout, enough that a 2-thread torch step
# already waits on a descheduled OpenMP sibling (specs measured 100x slowdowns beside one busy process).
HIGH_LOAD_SHARE = 0.2


class CompetingLoad:
    """The share of the machine's CPU time that *other* processes used during a region.

    Timings on a shared machine are only as good as the machine was quiet: on a 2-core
    box, a second busy process can make a 2-thread torch forward of a small net 100x
    slower (OpenMP threads wait for a descheduled sibling). Measured as the machine's
    busy time (Linux /proc/stat, steal included) less this process's own CPU time, per
    wall second per core: 0 is a quiet machine, 0.5 one core of two busy elsewhere.
    `share` is None where /proc/stat cannot be read.
    """

    def __init__(self) -> None:
        self.share: float | None = None

    @staticmethod
    def _machine_busy_s() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal ...: all but idle and iowait is busy
        busy = sum(fields[:8]) - fields[3] - fields[4]
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_cpu_s() -> float:
        t = os.times()
        return t.user + t.system

    def __enter__(self) -> "CompetingLoad":
        self._start = (self._machine_busy_s(), self._own_cpu_s(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        busy0, own0, t0 = self._start
        busy1, own1, wall = self._machine_busy_s(), self._own_cpu_s(), time.perf_counter() - t0
        if busy0 is None or busy1 is None or wall <= 0:
            return
        others = max(0.0, (busy1 - busy0) - (own1 - own0))
        self.share = min(1.0, others / (wall * (os.cpu_count() or 1)))

def busy_note(share: float | None) -> str | None:
    if share is None or share <= HIGH_LOAD_SHARE:
        return None
    return f"busy: {share:.0%} CPU elsewhere"

