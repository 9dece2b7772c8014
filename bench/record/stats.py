"""The verdict rule and its statistics: one definition, used by every record and every study.

An invocation PASSes when the mean final accuracy over its runs reaches the target and every
run completed; the 95% confidence interval of that mean is Student t's. Time is reported as
the median over runs (the headline) with min, max, IQR and MLPerf's olympic mean; never a
best-of-N (DESIGN.md section 3).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np

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
