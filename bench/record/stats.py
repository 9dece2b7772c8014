"""The verdict rule and its statistics: one definition, used by every record and every study.

An invocation PASSes when every run completed and its pass rule holds: `mean` (airbench: the
mean final accuracy over the runs reaches the target, the default), `every` (MLPerf: each run
reaches it) or `fraction:P` (at least a fraction P of the runs reach it). The 95% confidence
interval of the mean accuracy is Student t's, clipped to [0, 1] (an accuracy cannot leave it).
Time to target is reported over the runs that reached the target only, as the median (the
headline) with min, max, IQR and MLPerf's olympic mean; never a best-of-N (docs/design.md#3-the-measurement-contract).
The timed region (`timed_s`, the whole budget in budget mode) has its own median.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np

from bench.suites import parse_pass_rule

# Two-sided 95% Student-t critical values by degrees of freedom (standard tables).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048,
        29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t_critical_95(dof: float) -> float:
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


def mean_ci95(values: list[float], bounds: tuple[float, float] | None = None
              ) -> tuple[float | None, list[float] | None]:
    """Mean and the 95% confidence interval of the mean (Student t); no interval for one value.
    `bounds` clips the interval to what the quantity can be (an accuracy: (0, 1))."""
    if not values:
        return None, None
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, None
    half = ci95_half_width(values)
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return mean, [low, high]


def ci95_half_width(values: list[float]) -> float | None:
    """Half the width of the unclipped 95% CI of the mean (Student t); None below two values."""
    if len(values) < 2:
        return None
    return t_critical_95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))


def welch_diff_ci95(a: list[float], b: list[float]) -> tuple[float | None, list[float] | None]:
    """The difference of two means, mean(a) - mean(b), and its 95% confidence interval by Welch's
    t (unequal variances; Welch-Satterthwaite degrees of freedom); no interval below two values on
    either side. Two groups without any spread give the interval [difference, difference]."""
    if not a or not b:
        return None, None
    difference = statistics.fmean(a) - statistics.fmean(b)
    if len(a) < 2 or len(b) < 2:
        return difference, None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return difference, [difference, difference]
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = t_critical_95(max(1.0, dof)) * se  # fractional dof: interpolated in 1/dof like the table's gaps
    return difference, [difference - half, difference + half]


ACCURACY_BOUNDS = (0.0, 1.0)


def accuracy_ci95(values: list[float]) -> tuple[float | None, list[float] | None]:
    """The mean accuracy and its 95% CI, clipped to [0, 1]: what every table and plot shows."""
    return mean_ci95(values, ACCURACY_BOUNDS)


def rule_holds(rule: str, mean: float | None, pass_fraction: float | None, target: float) -> bool:
    """The pass rule over the complete runs' accuracies (their mean, the fraction at or above target)."""
    kind, fraction = parse_pass_rule(rule)
    if mean is None or pass_fraction is None:
        return False
    if kind == "mean":
        return mean >= target
    if kind == "every":
        return pass_fraction >= 1.0
    # a relative tolerance: 3 of 5 meets fraction:0.6 despite float rounding, and a tiny P is not
    # swallowed (a fixed 1e-12 let fraction:1e-12 pass runs that never reached the target)
    return pass_fraction >= fraction * (1 - 1e-9)


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


def aggregate(runs: list[dict[str, Any]], target: float, pass_rule: str = "mean") -> dict[str, Any]:
    """The invocation's verdict: PASS when every run completed and the pass rule holds.
    The time figures are over the runs that reached the target (`reached_runs` of them)."""
    finished = [r for r in runs if r.get("status") == "complete"]
    accuracies = [r["accuracy"] for r in finished]
    mean, ci = accuracy_ci95(accuracies)
    pass_fraction = (sum(a >= target for a in accuracies) / len(accuracies)) if accuracies else None
    times = [r["time_to_target_s"] for r in finished if r.get("time_to_target_s") is not None]
    timed = [r["timed_s"] for r in finished if r.get("timed_s") is not None]
    out: dict[str, Any] = {
        "verdict": ("PASS" if rule_holds(pass_rule, mean, pass_fraction, target) and len(finished) == len(runs)
                    else "FAIL") if runs else "NONE",
        "target": target,
        "pass_rule": pass_rule,
        "runs": len(runs),
        "complete_runs": len(finished),
        "reached_runs": len(times),
        "mean_accuracy": mean,
        "accuracy_ci95": ci,
        "accuracy_std": statistics.stdev(accuracies) if len(accuracies) >= 2 else None,
        "pass_fraction": pass_fraction,
    }
    out.update(time_summary(times))
    out["median_timed_s"] = float(np.median(timed)) if timed else None
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


def runs_auto_stop(accuracies: list[float], ci_width: float, max_runs: int, runs: int) -> dict[str, Any]:
    """`bench run --runs auto`: after `runs` runs (`accuracies` of the complete ones), whether to
    stop and why. Stops once at least 3 runs are done and the 95% CI half-width of the mean
    accuracy is at most `ci_width` ("ci_width"), or when `max_runs` runs are done ("max_runs");
    `stopped` is None while more seeds are wanted. The half-width is the unclipped one (a clip at
    100% would narrow it without any more evidence)."""
    half = ci95_half_width(accuracies)
    stopped = None
    if runs >= 3 and half is not None and half <= ci_width:
        stopped = "ci_width"
    elif runs >= max_runs:
        stopped = "max_runs"
    return {"ci_width": ci_width, "max_runs": max_runs, "runs": runs, "half_width": half, "stopped": stopped}
