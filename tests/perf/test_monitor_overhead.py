"""What a running GpuMonitor costs the work it watches.

The same fixed CPU workload (a loop of small matmuls on one thread) is timed bare and
with a monitor sampling in the background, at the default 50 ms interval and at a 10x
faster one. NVML is a fake: either a true no-op, or one whose every query sleeps 50 µs
and so, like the real ctypes calls, releases the GIL and must win it back -- three GIL
hand-overs per sample, each of which makes the busy main thread wait for the monitor
thread to be scheduled. On an idle machine that costs microseconds; on an oversubscribed
one, milliseconds. Each benchmark's extra_info holds `overhead_ratio`: median monitored
round / median bare round, the rounds interleaved so that a neighbour's load hits both
alike. Nothing is asserted on time: a benchmark for `make perf` (marked long; that the monitor
samples and stops is tested in tests/test_gpu_monitor.py).

    pytest tests/perf/test_monitor_overhead.py --benchmark-only
"""

from __future__ import annotations

import statistics
import sys
import time

import pytest
import torch

from bench import gpu_monitor
from bench.gpu_monitor import GpuMonitor
from tests.test_gpu_monitor import FakeNvml

pytestmark = pytest.mark.long
NVML_CALL_S = 50e-6
ROUNDS = 5


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=[0.0, NVML_CALL_S], ids=["nvml-noop", "nvml-50us"])
def nvml_call_s(request, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml(call_cost_s=request.param))
    monkeypatch.setattr(gpu_monitor, "_cuda_available", lambda: True)
    return request.param


def make_workload():
    """About 0.1-0.2 s of one-thread matmuls in many short ops, as a training step is."""
    a = torch.randn(128, 128)

    def work() -> None:
        x = a
        for _ in range(5000):
            x = torch.tanh(x @ a) * 0.5
    return work


def seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


@pytest.mark.parametrize("interval_s", [0.05, 0.005])
def test_monitor_overhead(benchmark, nvml_call_s, interval_s):
    work = make_workload()
    work()  # warm the allocator and the kernels

    def monitored() -> None:
        with GpuMonitor(interval_s=interval_s):
            work()

    bare_s, monitored_s, samples = [], [], []
    for _ in range(ROUNDS):  # interleaved pairs: drift and neighbours affect both sides alike
        bare_s.append(seconds(work))
        with GpuMonitor(interval_s=interval_s) as monitor:
            monitored_s.append(seconds(work))
        samples.append(monitor.summary()["samples"])

    benchmark.group = "GpuMonitor overhead (fake NVML)"
    benchmark.pedantic(monitored, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(
        interval_s=interval_s,
        nvml_call_s=nvml_call_s,
        bare_median_s=statistics.median(bare_s),
        monitored_median_s=statistics.median(monitored_s),
        overhead_ratio=statistics.median(monitored_s) / statistics.median(bare_s),
        samples_per_round=statistics.median(samples),
    )
    assert min(samples) >= 2  # the monitor did run: a start and an end reading at least
