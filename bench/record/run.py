"""One run's record: what the trainer measured, laid out as the result file holds it.

The trainer (bench.train) hands over a RunMeasurements; `run_record` is the one place the
run record's keys and their order are written. With several ranks the energy, power and
peak memory are summed or maxed over every rank's own figures (`summed_over_ranks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RunMeasurements:
    """Everything a run record is made of, as the trainer measured it."""

    seed: int
    mode: str                          # reach | fixed: how the verdict's time is read
    target: float
    epochs_budget: float               # recipe.epochs, named when a reach run did not reach
    status: str                        # complete | diverged
    accuracy: float | None             # the last deciding evaluation's
    reached_at_s: float | None         # the clock at the first evaluation that reached the target
    timed_s: float                     # the timed region's seconds (rank 0's clock)
    steps: int
    steps_per_epoch: int
    batch_size: int                    # the global batch
    train_time_s: float
    deciding_eval_s: float
    curve_eval_s: float
    init_s: float
    data_prep_s: float
    init_start_unix_s: float
    clock_start_unix_s: float | None
    compile_s: float
    precision: str
    channels_last: bool
    compile: str
    eval_compiled: bool
    recompiles_in_timed_region: int
    warmup_steps: int
    loader: str
    batch_dtype: str
    peak_host_rss_mb: float
    gpu: dict[str, Any]                # the GPU monitor's summary (bench.gpu_monitor)
    weights_file: str | None
    sparsity: dict[str, Any]
    curve: list[dict[str, Any]]
    train_eval: dict[str, Any]         # the training-set evaluation's figures, or none
    validation: dict[str, Any]         # the validation split's accuracy and seconds, or none (no split)
    peak_memory: dict[str, Any]        # the CUDA allocator's peaks, or why there are none
    cpu_memory: dict[str, Any]         # the CPU training-memory figures, or the CUDA figure's method
    ranks: list[dict[str, Any]] | None  # every rank's own figures with several ranks, else None
    policy_trial: dict[str, Any] | None = None  # how the compute policy was decided (bench.train.policy)
    eval_batch_size: int | None = None
    eval_images: int = 0               # test images through the deciding evaluations
    load: dict[str, Any] | None = None  # the competing load over the timed region (bench.load.CompetingLoad)
    time_limit_s: float | None = None  # recipe.time_limit_s, where the suite set one
    time_limited: bool = False         # the run stopped at that limit


def run_record(m: RunMeasurements) -> dict[str, Any]:
    trained_images = m.steps * m.batch_size
    complete = m.status == "complete"
    reached = complete and m.reached_at_s is not None
    gpu = m.gpu
    record: dict[str, Any] = {
        "seed": m.seed,
        "status": m.status,
        "accuracy": m.accuracy,
        "validation_accuracy": m.validation.get("validation_accuracy"),  # null without a validation split
        "reached_target": reached,
        # only a run that reached the target has a time to it: reach mode where it stopped, budget
        # mode (airbench's rule: a fixed budget) the budget's whole timed region
        "time_to_target_s": (m.reached_at_s if m.mode == "reach" else m.timed_s) if reached else None,
        "steps_to_target": m.steps if reached else None,
        **first_reached(m.curve, m.target, m.sparsity.get("pruned_after_epochs") or []),
        "timed_s": m.timed_s,
        "epochs": round(m.steps / m.steps_per_epoch, 4),
        "steps": m.steps,
        "train_images": trained_images,
        "train_time_s": m.train_time_s,
        "train_images_per_s": trained_images / m.train_time_s if m.train_time_s > 0 else None,
        "deciding_eval_s": m.deciding_eval_s,
        "curve_eval_s": m.curve_eval_s,
        "init_s": m.init_s,
        "data_prep_s": m.data_prep_s,
        "init_start_unix_s": m.init_start_unix_s,
        "clock_start_unix_s": m.clock_start_unix_s,
        "compile_s": m.compile_s,
        "precision": m.precision,
        "channels_last": m.channels_last,
        "compile": m.compile,
        "eval_compiled": m.eval_compiled,
        "recompiles_in_timed_region": m.recompiles_in_timed_region,
        "warmup_steps": m.warmup_steps,
        "loader": m.loader,
        "batch_dtype": m.batch_dtype,
        "peak_host_rss_mb": m.peak_host_rss_mb,
        "energy_j": gpu["energy_j"],
        "energy_method": gpu["energy_method"],
        "mean_power_w": gpu["mean_power_w"],
        "max_power_w": gpu["max_power_w"],
        "power_source": gpu["power_source"],
        "monitored_s": gpu["running_s"],
        "mean_gpu_utilization_pct": gpu["mean_utilization_pct"],
        "nvml_peak_memory_used_mb": gpu["peak_memory_used_mb"],
        "energy_reason": gpu["reason"],
        "weights_file": m.weights_file,
        "sparsity": m.sparsity,
        "curve": m.curve,
        "policy_trial": m.policy_trial,
        "eval_batch_size": m.eval_batch_size,
        "eval_images_per_s": m.eval_images / m.deciding_eval_s if m.deciding_eval_s > 0 else None,
        "load": m.load,
    }
    record.update(m.train_eval)
    record.update(m.validation)  # and validation_eval_s where it was measured
    record.update(m.peak_memory)
    record.update(m.cpu_memory)
    if m.ranks is not None:
        record.update(summed_over_ranks(m.ranks, m.timed_s))
    if m.time_limit_s is not None:  # only where a suite set a limit: other records keep their keys
        record["time_limit_s"] = m.time_limit_s
        record["stopped_at_time_limit"] = m.time_limited
    if complete and m.reached_at_s is None:
        record["note"] = (f"stopped at its time limit of {m.time_limit_s:g} s (recipe.time_limit_s) before reaching "
                          f"{m.target}" if m.time_limited else f"did not reach {m.target} within {m.epochs_budget} epochs")
    return record


def first_reached(curve: list[dict[str, Any]], target: float, pruned_after_epochs: list[int]) -> dict[str, Any]:
    """The first evaluated epoch (a curve or a deciding evaluation) at or above the target: its
    timed clock and step; null when none reached it. A pruning recipe's network counts only
    from its last pruning on (before it, it is not yet the network the recipe makes)."""
    from_epoch = max(pruned_after_epochs, default=0)
    for point in curve:
        if point["epoch"] >= from_epoch and point["accuracy"] is not None and point["accuracy"] >= target:
            return {"first_reached_s": point["time_s"], "first_reached_step": point["step"]}
    return {"first_reached_s": None, "first_reached_step": None}


def summed_over_ranks(ranks: list[dict[str, Any]], total_s: float) -> dict[str, Any]:
    """The run's energy is the sum over every rank's GPU (unknown if any one is); mean power is that
    over rank 0's timed seconds; peak memory and power are the largest one GPU reached."""
    energies = [r["energy_j"] for r in ranks]
    energy = sum(energies) if all(e is not None for e in energies) else None
    memory = [r["peak_memory_mb"] for r in ranks if r["peak_memory_mb"] is not None]
    powers = [r["max_power_w"] for r in ranks if r["max_power_w"] is not None]
    return {"energy_j": energy,
            "mean_power_w": energy / total_s if energy is not None and total_s > 0 else None,
            "max_power_w": max(powers) if powers else None,
            "energy_reason": None if energy is not None else
            next((r["energy_reason"] for r in ranks if r["energy_j"] is None), None),
            "peak_memory_mb": max(memory) if memory else None,
            "peak_memory_reserved_mb": max((r["peak_memory_reserved_mb"] for r in ranks
                                            if r["peak_memory_reserved_mb"] is not None), default=None),
            "ranks": ranks}
