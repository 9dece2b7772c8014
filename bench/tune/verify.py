"""The best recipe verified as the verdicts are made: ordinary runs on the test split, on judged
seeds no trial used, with the default recipe beside it, interleaved (tuned, default, tuned, ...),
so that whatever the machine does meanwhile falls on both alike (bench.runner.run_race).

The speed-up is the default's median time to target over the tuned recipe's, with a 95% interval
from a bootstrap over the seeds, each seed's pair of runs (side by side in time) resampled
together; it needs at least 3 seeds at which both reached the target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError

MIN_RUNS = 3
BOOTSTRAP = 10_000


def check_runs(runs: int) -> None:
    if runs < MIN_RUNS:
        raise BenchError(f"--verify-runs {runs}: give at least {MIN_RUNS} (an interval needs 3 seeds; default 5)")


def speedup(default_times: list[float | None], tuned_times: list[float | None]) -> dict[str, Any]:
    """Median default time over median tuned time, over the seeds where both reached the target,
    with a paired bootstrap 95% interval (None with fewer than MIN_RUNS pairs)."""
    pairs = [(d, t) for d, t in zip(default_times, tuned_times) if d is not None and t is not None and t > 0]
    if not pairs:
        return {"ratio": None, "ci95": None, "pairs": 0}
    d, t = np.array(pairs).T
    ratio = float(np.median(d) / np.median(t))
    if len(pairs) < MIN_RUNS:
        return {"ratio": ratio, "ci95": None, "pairs": len(pairs)}
    rng = np.random.default_rng(0)  # the interval is part of the record: the same files give the same one
    picks = rng.integers(0, len(pairs), (BOOTSTRAP, len(pairs)))
    ratios = np.median(d[picks], axis=1) / np.median(t[picks], axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return {"ratio": ratio, "ci95": [float(low), float(high)], "pairs": len(pairs)}


def summary(record: dict[str, Any], path: Path | None) -> dict[str, Any]:
    agg = record.get("aggregate") or {}
    return {"file": str(path) if path else None, "suite": record["suite"]["name"], "hash": record["suite"]["hash"],
            "status": record["status"], "verdict": agg.get("verdict"), "mean_accuracy": agg.get("mean_accuracy"),
            "accuracy_ci95": agg.get("accuracy_ci95"), "median_time_s": agg.get("median_time_s"),
            "reached_runs": agg.get("reached_runs"), "runs": len(record.get("runs", [])),
            "seeds": [r["seed"] for r in record.get("runs", [])],
            "times": [r.get("time_to_target_s") for r in record.get("runs", [])]}


def verify(tuned_path: Path, base_ref: str, runs: int, seed: int, folder: Path, device: str, reporter: Any,
           command: list[str]) -> dict[str, Any]:
    """Runs the tuned suite and the default side by side; their summaries and the speed-up."""
    from bench.load import CompetingLoad
    from bench.runner import run_race
    from bench.suites import load_suite

    tuned, default = load_suite(str(tuned_path)), load_suite(base_ref)
    with CompetingLoad() as load:
        results = run_race([tuned, default], runs=runs, seed=seed, device_choice=device, results_dir=folder,
                           reporter=reporter, command=command)
    (tuned_record, tuned_file), (default_record, default_file) = results
    out = {"tuned": summary(tuned_record, tuned_file), "default": summary(default_record, default_file),
           "competing_cpu_share": load.share}
    out["speedup"] = speedup(out["default"]["times"], out["tuned"]["times"])
    return out
