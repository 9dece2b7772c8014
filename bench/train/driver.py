"""One run, start to end: set-up -> compile and warm-up -> the timed loop -> the run record."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from bench.distributed import SINGLE, Dist
from bench.measure import compile_count, peak_host_rss_mb
from bench.progress import NullReporter, Reporter
from bench.record.run import RunMeasurements, run_record
from bench.train.evaluation import train_accuracy, validation_accuracy
from bench.train.loop import Outcome, TimedLoop
from bench.train.setup import PreparedData, RunSetup, set_up
from bench.train.warmup import Compiled, compile_and_warm_up, cpu_memory


def train_run(suite_resolved: dict, data: PreparedData, seed: int, device: torch.device,
              reporter: Reporter | None = None, label: str = "run", loader: str = "auto",
              save_weights: Callable[[nn.Module], Path] | None = None, dist: Dist = SINGLE,
              retrial: bool = False) -> dict[str, Any]:
    """Trains one seed and returns its run record (status complete or diverged). With
    `save_weights`, the final (evaluated) weights are handed to it after the timed region.

    With several ranks (`dist`), every rank calls this alike: each serves its slice of the
    global batch, DDP averages the gradients, the evaluations are sharded and summed, and the
    returned record (the same accuracy and curve on every rank) has rank 0's clock. `retrial`: the
    compute policy's trial runs again, whatever the cache holds (bench run --retrial)."""
    reporter = reporter or NullReporter()
    recipe = suite_resolved["recipe"]
    run = set_up(suite_resolved, data, seed, device, loader, dist, retrial)
    models = compile_and_warm_up(run, recipe, data.num_classes, dist)
    cpu_memory_figures = cpu_memory(run, models, recipe)

    timed = TimedLoop(run, models, recipe, suite_resolved["mode"], suite_resolved["target"], seed, reporter, dist)
    outcome = timed.run_timed(label)

    ranks = _rank_figures(dist, outcome, device)
    peak_memory = _memory_figures(device)  # read before the training-set evaluation, no part of the run
    timed.finish()  # from here on the model holds the weights the test set saw, its masks made permanent
    sparsity = timed.pruning.figures(outcome.curve)
    weights_file = None
    if save_weights is not None and dist.is_main:  # one rank's copy: every rank holds the same weights
        weights_file = str(save_weights(run.model))
    # the evaluations after the clock at the batch the policy decided: the recipe may say "auto"
    evaluated = {**recipe, "eval_batch_size": run.eval_batch_size}
    train_eval: dict[str, Any] = {}
    if recipe["train_eval"] and outcome.status == "complete":
        train_eval = train_accuracy(models.step_model, data.dataset, evaluated, run.loader_kind, run.loader_options,
                                    run.policy.autocast_dtype, run.policy.memory_format, dist)
    validation: dict[str, Any] = {}
    if data.dataset.validation_labels is not None and outcome.status == "complete":
        validation = validation_accuracy(models.step_model, data.dataset, evaluated, run.loader_kind,
                                         run.loader_options, run.policy.autocast_dtype, run.policy.memory_format, dist)
    return run_record(_measurements(suite_resolved, seed, run, models, outcome, after_clock=dict(
        weights_file=weights_file, sparsity=sparsity, train_eval=train_eval, validation=validation,
        peak_memory=peak_memory,
        cpu_memory=cpu_memory_figures, ranks=ranks)))


def _measurements(suite_resolved: dict, seed: int, run: RunSetup, models: Compiled, outcome: Outcome,
                  after_clock: dict[str, Any]) -> RunMeasurements:
    """The run's measurements for its record; `after_clock` holds the figures made after the timed
    region. The compile count and the host's peak memory are read now, after the training-set
    evaluation."""
    recipe, policy = suite_resolved["recipe"], run.policy
    return RunMeasurements(
        seed=seed, mode=suite_resolved["mode"], target=suite_resolved["target"], epochs_budget=recipe["epochs"],
        status=outcome.status, accuracy=outcome.accuracy, reached_at_s=outcome.reached_at_s,
        timed_s=outcome.timed_s, steps=outcome.steps, steps_per_epoch=run.steps_per_epoch,
        batch_size=recipe["batch_size"], train_time_s=outcome.train_time_s,
        deciding_eval_s=outcome.deciding_eval_s, curve_eval_s=outcome.curve_eval_s, init_s=run.init_s,
        data_prep_s=run.data_prep_s, init_start_unix_s=run.init_start_unix_s,
        clock_start_unix_s=outcome.clock_start_unix_s, compile_s=models.compile_s, precision=policy.precision,
        channels_last=policy.channels_last, compile=policy.compile, eval_compiled=models.compiled,
        recompiles_in_timed_region=compile_count() - outcome.compiles_before, warmup_steps=recipe["warmup_steps"],
        loader=run.train_loader.name, batch_dtype=str(policy.autocast_dtype or torch.float32).replace("torch.", ""),
        peak_host_rss_mb=peak_host_rss_mb(), gpu=outcome.gpu, curve=outcome.curve, policy_trial=run.policy_trial,
        eval_batch_size=run.eval_batch_size, eval_images=outcome.deciding_eval_images, load=outcome.load,
        time_limit_s=recipe.get("time_limit_s"), time_limited=outcome.time_limited, **after_clock)


def _rank_figures(dist: Dist, outcome: Outcome, device: torch.device) -> list[dict[str, Any]] | None:
    """Every rank's own GPU figures, gathered on every rank (None in one process)."""
    if not dist.active:
        return None
    gpu = outcome.gpu
    mine = {"rank": dist.rank, "timed_s": outcome.timed_s, "train_time_s": outcome.train_time_s,
            "energy_j": gpu["energy_j"], "max_power_w": gpu["max_power_w"], "energy_reason": gpu["reason"],
            **_memory_figures(device)}
    return dist.gather(mine)


def _memory_figures(device: torch.device) -> dict[str, Any]:
    if device.type != "cuda":
        return {"peak_memory_mb": None, "peak_memory_reserved_mb": None,
                "memory_reason": "no CUDA device: torch's peak GPU memory is measured on CUDA only "
                                 "(train_peak_memory_mb is the CPU figure)"}
    return {"train_peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_reserved_mb": torch.cuda.max_memory_reserved(device) / 2**20,
            "memory_reason": None}
