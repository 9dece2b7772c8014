"""Measurement primitives: a synchronizing stopwatch, model figures, the matmul rate, host memory.

The statistics over runs (the verdict and its intervals) are the record's: bench/record/stats.py.

Every figure that cannot be measured on this machine is None together with a
reason string: never 0, never a guess.
"""

from __future__ import annotations

import resource
import statistics
import time
from typing import Any, Callable

import torch
from torch import nn


class Stopwatch:
    """Wall clock that can pause; on CUDA it synchronizes before every reading,
    so it measures finished work, not kernel launches."""

    def __init__(self, device: torch.device):
        self._sync: Callable[[], None] = (torch.cuda.synchronize if device.type == "cuda" else (lambda: None))
        self._elapsed = 0.0
        self._started: float | None = None

    def start(self) -> "Stopwatch":
        self._sync()
        self._started = time.perf_counter()
        return self

    def pause(self) -> float:
        self._sync()
        assert self._started is not None, "pause() before start()"
        self._elapsed += time.perf_counter() - self._started
        self._started = None
        return self._elapsed

    resume = start

    @property
    def running(self) -> bool:
        return self._started is not None

    def read(self) -> float:
        """Elapsed seconds so far (synchronized), without stopping."""
        if self._started is None:
            return self._elapsed
        self._sync()
        return self._elapsed + time.perf_counter() - self._started


class TimedRegion:
    """The timed region's stopwatch and GPU monitor, started, paused and resumed together, so
    the energy, power and utilization cover exactly the seconds that time_to_target covers.
    The stopwatch synchronizes first, so the monitor's readings come after the GPU's work."""

    def __init__(self, clock: Stopwatch, monitor: Any):
        self.clock, self.monitor = clock, monitor

    def start(self) -> None:
        self.monitor.start()
        self.clock.start()

    def read(self) -> float:
        return self.clock.read()

    def pause(self) -> float:
        elapsed = self.clock.pause()
        self.monitor.pause()
        return elapsed

    def resume(self) -> None:
        self.monitor.resume()
        self.clock.resume()

    def stop(self) -> float:
        """Ends the region; the monitor always stops (its thread and NVML handle are released)."""
        try:
            return self.clock.pause() if self.clock.running else self.clock.read()
        finally:
            self.monitor.stop()


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    watch = Stopwatch(device).start()
    value = fn()
    return value, watch.pause()


# ---------------------------------------------------------------- model figures ----

def count_params(model: nn.Module) -> dict[str, int]:
    params = list(model.parameters())
    return {
        "params": sum(p.numel() for p in params),
        "trainable_params": sum(p.numel() for p in params if p.requires_grad),
        "active_params": int(sum(int(torch.count_nonzero(p)) for p in params)),
    }


def forward_flops_per_image(model: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """Forward FLOPs for one image (FlopCounterMode counts a multiply-add as 2 FLOPs).

    Counted at batch 2 in eval mode and halved, so batch-norm uses running statistics
    and nothing depends on batch-level reductions. Training costs about 3x this.
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(2, *in_shape, device=device))
        return counter.get_total_flops() // 2
    finally:
        model.train(was_training)


def matmul_flops_per_s(device: torch.device, dtype: torch.dtype = torch.bfloat16, size: int | None = None,
                       repeats: int = 10) -> float:
    """The dense matmul rate this device reaches here (median of timed repeats): the
    denominator of MFU, measured rather than taken from a data sheet."""
    size = size or (8192 if device.type == "cuda" else 1024)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    times = []
    for _ in range(repeats):
        watch = Stopwatch(device).start()
        a @ b
        times.append(watch.pause())
    return 2 * size ** 3 / statistics.median(times)


def compile_count() -> int:
    """How many frames torch.compile has compiled in this process so far (first compiles and
    recompiles alike: Dynamo counts each cache miss it converts); 0 before anything compiled."""
    import sys

    utils = sys.modules.get("torch._dynamo.utils")  # never import Dynamo just to read its counter
    return int(utils.counters["frames"]["total"]) if utils is not None else 0


def peak_host_rss_mb() -> float:
    """The process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
