"""Learning-rate schedules as multipliers of the base rate, one value per optimizer step.

All take the step count, steps per epoch and total steps, so a schedule written in
epochs and one written as fractions of training resolve the same way for any
batch size.
"""

from __future__ import annotations

import math

import numpy as np


def lr_multiplier(schedule: dict, step: int, steps_per_epoch: int, total_steps: int) -> float:
    kind = schedule["kind"]
    progress = step / max(total_steps, 1)
    epoch = step / max(steps_per_epoch, 1)
    if kind == "constant":
        return 1.0
    if kind == "piecewise":  # linear between [fraction, multiplier] knots: triangular / one-cycle-linear
        fracs, mults = zip(*schedule["knots"])
        return float(np.interp(progress, fracs, mults))
    if kind == "onecycle":  # torch.optim.lr_scheduler.OneCycleLR with total_steps, cosine annealing
        start = 1.0 / schedule["div_factor"]
        end = start / schedule["final_div_factor"]
        peak_step = schedule["pct_start"] * total_steps - 1  # torch's phase boundaries
        if step <= peak_step:  # a warm-up of one step or less is at the peak already (torch divides by 0)
            return _cosine(start, 1.0, step / peak_step if peak_step > 0 else 1.0)
        return _cosine(1.0, end, (step - peak_step) / max(total_steps - 1 - peak_step, 1e-9))
    if kind == "step":  # multiply by gamma at each milestone epoch
        passed = sum(1 for m in schedule["milestones"] if epoch >= m)
        return schedule["gamma"] ** passed
    if kind == "cosine_restarts":  # SGDR (Loshchilov & Hutter): cosine periods of t0, t0*t_mult, ...
        t, period = _within_period(epoch, schedule["t0"], schedule["t_mult"])
        low = schedule["min_factor"]
        return low + (1 - low) * (1 + math.cos(math.pi * t / period)) / 2
    raise ValueError(f"unknown schedule kind {kind!r}")


def _within_period(epoch: float, t0: float, t_mult: float) -> tuple[float, float]:
    """Where `epoch` falls in SGDR's periods t0, t0*t_mult, ...: (epochs into the period, its
    length), in closed form: counting periods one by one never ended for a tiny t0."""
    if t_mult == 1:
        return math.fmod(epoch, t0), t0
    # periods before this one: n with t0 * (t_mult^n - 1) / (t_mult - 1) <= epoch
    n = math.floor(math.log1p(epoch * (t_mult - 1) / t0) / math.log(t_mult))
    start = t0 * math.expm1(n * math.log(t_mult)) / (t_mult - 1)
    period = t0 * t_mult ** n
    return min(max(epoch - start, 0.0), period), period


def _cosine(start: float, end: float, fraction: float) -> float:
    return end + (start - end) * (1 + math.cos(math.pi * min(max(fraction, 0.0), 1.0))) / 2
