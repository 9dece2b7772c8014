"""The load a measurement met: the share of the machine's CPU time that other processes took
while a region ran. Every timing bench publishes is only as good as the machine was quiet, so
the probe lives here, below every stage that times something (specs, the trainer, studies).
"""

from __future__ import annotations

import os
import time
from typing import Any

# Above this share of the machine's CPU time taken by other processes a timing is called suspect:
# on 2 cores, 0.2 is 0.4 of a core held elsewhere throughout, enough that a 2-thread torch step
# already waits on a descheduled OpenMP sibling (specs measured 100x slowdowns beside one busy process).
HIGH_LOAD_SHARE = 0.2


class CompetingLoad:
    """The share of the machine's CPU time that *other* processes used during a region.

    Timings on a shared machine are only as good as the machine was quiet: on a 2-core
    box, a second busy process can make a 2-thread torch forward of a small net 100x
    slower (OpenMP threads wait for a descheduled sibling). Measured as the machine's
    busy time (Linux /proc/stat, steal included) less the CPU time of this process and its
    descendants (loader workers, compile workers), per wall second per core: 0 is a quiet
    machine, 0.5 one core of two busy elsewhere. `share` is None where /proc/stat cannot be read.
    With `gpu_index`, the other processes holding a context on that GPU are counted too (NVML;
    `gpu_other_processes` stays None where NVML cannot say).
    """

    def __init__(self, gpu_index: int | None = None, tree_root: int | None = None) -> None:
        self.share: float | None = None
        self.gpu_index = gpu_index
        # with several ranks (torch.distributed.run), the launcher: its other ranks are the run's own work
        self.tree_root = tree_root
        self.gpu_other_processes: int | None = None

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
        """CPU seconds of this process tree: this process and the children it has waited on
        (os.times), plus every live descendant's own and waited-on time (/proc/PID/stat). A
        descendant that ends inside the region moves from the second sum into the first."""
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system + _descendants_cpu_s(os.getpid())

    def __enter__(self) -> "CompetingLoad":
        self._gpu_others = set() if self.gpu_index is None else gpu_other_pids(self.gpu_index)
        self._start = (self._machine_busy_s(), self._tree_cpu_s(), time.perf_counter())
        return self

    def _tree_cpu_s(self) -> float:
        """The CPU seconds that count as the region's own: this process tree's, or with
        `tree_root` every descendant of that process (this one among them)."""
        return self._own_cpu_s() if self.tree_root is None else _descendants_cpu_s(self.tree_root)

    def __exit__(self, *exc: object) -> None:
        busy0, own0, t0 = self._start
        busy1, own1, wall = self._machine_busy_s(), self._tree_cpu_s(), time.perf_counter() - t0
        if self.gpu_index is not None:  # who held the GPU at either end (NVML has no history)
            others = gpu_other_pids(self.gpu_index)
            if others is not None and self._gpu_others is not None:
                self.gpu_other_processes = len(others | self._gpu_others)
        if busy0 is None or busy1 is None or wall <= 0:
            return
        others_s = max(0.0, (busy1 - busy0) - (own1 - own0))
        self.share = min(1.0, others_s / (wall * (os.cpu_count() or 1)))

    def figures(self) -> dict[str, Any]:
        """The run record's `load` block."""
        return {"competing_cpu_share": self.share, "high": is_high(self.share),
                "threshold": HIGH_LOAD_SHARE, "cpus": os.cpu_count(), "gpu_other_processes": self.gpu_other_processes}


def _descendants_cpu_s(root: int) -> float:
    """utime + stime + cutime + cstime of every live descendant of `root` (0 without /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                # the command name may hold spaces and parentheses: the fields start after its last ')'
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        parents[pid] = int(fields[1])
        times[pid] = sum(int(v) for v in fields[11:15]) / tick
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, todo = 0.0, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(children.get(pid, []))
    return total


def gpu_other_pids(index: int) -> set[int] | None:
    """The processes other than this one with a compute or graphics context on GPU `index`
    (NVML); None where NVML is missing or cannot say (no driver, no GPU, not permitted)."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # NVMLError_LibraryNotFound where no driver is installed
        return None
    try:
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        found = [*pynvml.nvmlDeviceGetComputeRunningProcesses(handle),
                 *pynvml.nvmlDeviceGetGraphicsRunningProcesses(handle)]
        return {p.pid for p in found} - {os.getpid()}
    except Exception:
        return None
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass


def is_high(share: float | None) -> bool | None:
    return None if share is None else share > HIGH_LOAD_SHARE


def run_load(run: dict[str, Any]) -> dict[str, Any] | None:
    """A run record's load block; None where the run was not measured for load (files written
    before the load was recorded, or a record without it)."""
    load = run.get("load") if isinstance(run, dict) else None
    return load if isinstance(load, dict) else None


def run_is_high(run: dict[str, Any]) -> bool | None:
    """True: measured under high load; False: measured, low; None: not measured."""
    load = run_load(run)
    return None if load is None else is_high(load.get("competing_cpu_share"))



def busy_note(share: float | None) -> str | None:
    if share is None or share <= HIGH_LOAD_SHARE:
        return None
    return f"busy: {share:.0%} CPU elsewhere"

