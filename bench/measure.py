"""Measurement primitives: a synchronizing stopwatch, run statistics, model figures, the matmul rate.

Every figure that cannot be measured on this machine is None together with a
reason string: never 0, never a guess.
"""

from __future__ import annotations

import math
import resource
import statistics
import time
from typing import Any, Callable

import numpy as np
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


# ---------------------------------------------------------------- statistics ----

# Two-sided 95% Student-t critical values by degrees of freedom (standard tables).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
        29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_critical_95(dof: int) -> float:
    if dof in _T95:
        return _T95[dof]
    larger = [d for d in _T95 if d > dof]
    if not larger:
        return 1.960
    # between tabulated rows the critical value is close to linear in 1/dof
    upper = min(larger)
    lower = max(d for d in _T95 if d < dof)
    w = (1 / dof - 1 / upper) / (1 / lower - 1 / upper)
    return _T95[upper] + w * (_T95[lower] - _T95[upper])


def mean_ci95(values: list[float]) -> tuple[float | None, list[float] | None]:
    """Mean and the 95% confidence interval of the mean (Student t); no interval for one value."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    half = t_critical_95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, [mean - half, mean + half]


def time_summary(times: list[float]) -> dict[str, float | None]:
    """Median (the headline), min, max, IQR, and MLPerf's olympic mean (drop fastest and slowest)."""
    if not times:
        return {"median_time_s": None, "min_time_s": None, "max_time_s": None, "iqr_time_s": None,
                "olympic_mean_time_s": None}
    arr = np.asarray(times, dtype=float)
    q1, q3 = np.percentile(arr, [25, 75])
    return {
        "median_time_s": float(np.median(arr)),
        "min_time_s": float(arr.min()),
        "max_time_s": float(arr.max()),
        "iqr_time_s": float(q3 - q1),
        "olympic_mean_time_s": float(np.sort(arr)[1:-1].mean()) if len(arr) >= 3 else None,
    }


def aggregate(runs: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """The invocation's verdict: PASS when the mean final accuracy over runs reaches the target."""
    finished = [r for r in runs if r.get("status") == "complete"]
    accuracies = [r["accuracy"] for r in finished]
    mean, ci = mean_ci95(accuracies)
    times = [r["time_to_target_s"] for r in finished if r.get("time_to_target_s") is not None]
    out: dict[str, Any] = {
        "verdict": ("PASS" if mean is not None and mean >= target and len(finished) == len(runs) else "FAIL")
        if runs else "NONE",
        "target": target,
        "runs": len(runs),
        "complete_runs": len(finished),
        "mean_accuracy": mean,
        "accuracy_ci95": ci,
        "accuracy_std": statistics.stdev(accuracies) if len(accuracies) >= 2 else None,
        "pass_fraction": (sum(a >= target for a in accuracies) / len(accuracies)) if accuracies else None,
    }
    out.update(time_summary(times))
    rates = [r["train_images_per_s"] for r in finished if r.get("train_images_per_s")]
    out["median_train_images_per_s"] = float(np.median(rates)) if rates else None
    mfus = [r["mfu"] for r in finished if r.get("mfu")]
    out["median_mfu"] = float(np.median(mfus)) if mfus else None
    # the trained networks' nonzero parameters (bench.sparsity): dense runs too, so checks compare them
    counts = [r["sparsity"] for r in finished if isinstance(r.get("sparsity"), dict)]
    out["mean_active_params"] = statistics.fmean(c["active_params"] for c in counts) if counts else None
    out["mean_active_fraction"] = statistics.fmean(c["active_fraction"] for c in counts) if counts else None
    energies = [r["energy_j"] for r in finished if r.get("energy_j") is not None]
    out["mean_energy_j"] = statistics.fmean(energies) if energies else None
    return out


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
