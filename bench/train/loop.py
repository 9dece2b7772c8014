"""The timed region: every training step with its augmentation, the data-dependent init, and
every evaluation that decides the verdict, on one clock (rank 0's) and one GPU monitor.

The loop itself trains, judges and stops; everything else it does (schedule, EMA, lookahead,
pruning, curve evaluations) is a hook (bench.train.hooks). An epoch ends with a curve point;
the loss is synced once per epoch, so every rank takes the same divergence decision.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from bench.distributed import Dist
from bench.gpu_monitor import GpuMonitor
from bench.load import CompetingLoad
from bench.measure import Stopwatch, TimedRegion, compile_count
from bench.progress import Reporter
from bench.train.ema import WeightEMA
from bench.train.evaluation import Evaluator
from bench.train.hooks import CurveEvaluation, Hook, Pruning, hooks_for
from bench.train.optim import build_optimizer
from bench.train.setup import RunSetup, seed_everything
from bench.train.warmup import Compiled


@dataclass
class Outcome:
    """What the timed loop measured."""

    status: str = "complete"          # complete | diverged
    steps: int = 0
    accuracy: float | None = None     # the last deciding evaluation's
    reached_at_s: float | None = None  # the clock at the first deciding evaluation that reached the target
    timed_s: float = 0.0
    train_time_s: float = 0.0
    deciding_eval_s: float = 0.0
    deciding_eval_images: int = 0     # test images through the deciding evaluations (all ranks' shards)
    curve_eval_s: float = 0.0
    clock_start_unix_s: float | None = None
    time_limited: bool = False        # stopped by recipe.time_limit_s (judged where it stood)
    compiles_before: int = 0          # torch.compile's count when the clock started
    gpu: dict[str, Any] = field(default_factory=dict)  # the GPU monitor's summary
    load: dict[str, Any] = field(default_factory=dict)  # the competing load over the timed region (bench.load)
    curve: list[dict[str, Any]] = field(default_factory=list)


class TimedLoop:
    """One run's timed region: made ready outside the clock (optimizer, scaler, EMA, monitor,
    hooks), then `run_timed`, then `finish` after the clock."""

    def __init__(self, run: RunSetup, models: Compiled, recipe: dict, mode: str, target: float, seed: int,
                 reporter: Reporter, dist: Dist):
        self.run, self.models, self.mode, self.target, self.dist = run, models, mode, target, dist
        self.reporter = reporter
        device = run.device
        seed_everything(seed + 1)  # the timed region's randomness does not depend on the warm-up
        self.optimizer = build_optimizer(run.model, recipe)
        self.config = replace(run.step_config, scaler=run.policy.scaler(device))
        ema = WeightEMA(run.model, recipe["ema"]["every"], recipe["ema"]["decay"]) if recipe["ema"]["every"] \
            else None
        self.max_epochs = math.ceil(recipe["epochs"])
        # reach mode: deciding evaluations within an epoch too, every this many steps (0: epoch ends only)
        every = recipe.get("eval_every") or 0
        self.eval_steps = max(1, round(every * run.steps_per_epoch)) if mode == "reach" and every else 0
        self.reached_within: dict[str, Any] | None = None  # the deciding evaluation within an epoch that reached
        self.within_eval_s = 0.0  # this epoch's deciding evaluations within it (not training time)
        self.time_limit_s = recipe.get("time_limit_s")  # absent: no limit
        self.total_steps = math.ceil(recipe["epochs"] * run.steps_per_epoch)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # Energy from NVML's counter at each end of every running stretch; a 10 Hz sampler for memory,
        # utilization and power (a longer interval keeps its cost on a busy CPU negligible).
        self.region = TimedRegion(Stopwatch(device), GpuMonitor(device.index or 0, interval_s=0.1,
                                                                 reporter=reporter))
        self.outcome = Outcome()
        # evaluations see the EMA's weights
        self.evaluator = Evaluator(run.model, models.eval_model, run.test_loader, recipe["tta"],
                                   run.policy.autocast_dtype, run.policy.memory_format, dist,
                                   ema.swapped if ema is not None else nullcontext)
        self.pruning = Pruning(run.sparse, run.model)
        self.curve_evaluation = CurveEvaluation(self.evaluator, self.region)
        self.hooks: list[Hook] = hooks_for(recipe, run.model, self.optimizer, ema, self.pruning,
                                           self.curve_evaluation, run.steps_per_epoch, self.total_steps)

    def run_timed(self, label: str) -> Outcome:
        outcome, region, dist = self.outcome, self.region, self.dist
        outcome.compiles_before = compile_count()
        device = self.run.device
        # what other processes took of the CPU (and who else held the GPU) while the clock ran
        load = CompetingLoad(device.index or 0 if device.type == "cuda" else None,
                             tree_root=os.getppid() if dist.active else None)  # the ranks are the run's own
        with self.reporter.task(label, total=self.total_steps) as progress, load:
            dist.barrier()  # every rank starts the clock together; rank 0's clock is the run's
            region.start()
            outcome.clock_start_unix_s = time.time()
            try:
                # ---------------- timed region ----------------
                if self.run.init_images is not None:
                    self.run.model.data_init(self.run.init_images)
                for epoch in range(self.max_epochs):
                    point = self._train_epoch(epoch, progress)
                    if not math.isfinite(point["loss"]):
                        outcome.status = "diverged"
                        outcome.curve.append(point)
                        break
                    last = outcome.steps >= self.total_steps or outcome.time_limited
                    if self.reached_within is not None:  # judged already, where the epoch stopped
                        point.update(self.reached_within)
                    elif self.mode == "reach" or last:
                        self._judge(point)
                    for hook in self.hooks:
                        hook.after_epoch(point)
                    outcome.curve.append(point)
                    progress.update(epoch=epoch + 1, loss=point["loss"], acc=point["accuracy"])
                    if (self.mode == "reach" and outcome.reached_at_s is not None) or last:
                        break
                dist.barrier()  # the clock stops when every rank has finished
            finally:
                outcome.timed_s = region.stop()  # the monitor's thread and NVML handle go, whatever happened
            # ---------------- end of timed region ----------------
        outcome.load = load.figures()
        outcome.curve_eval_s = self.curve_evaluation.seconds
        outcome.gpu = region.monitor.summary()
        return outcome

    def _train_epoch(self, epoch: int, progress: Any) -> dict[str, Any]:
        """One epoch's steps and the hooks' training work; its curve point, before any evaluation."""
        outcome, run = self.outcome, self.run
        epoch_start = self.region.read()
        loss_sum = torch.zeros((), device=run.device)
        epoch_steps = 0
        for images, labels in run.train_loader.epoch(epoch):
            if outcome.steps >= self.total_steps:
                break
            for hook in self.hooks:
                hook.before_step(outcome.steps)
            loss_sum += run.step(self.models.step_model, self.optimizer, images, labels, self.config)
            outcome.steps += 1
            epoch_steps += 1
            for hook in self.hooks:
                hook.after_step(outcome.steps)
            progress.advance(1)
            if self.eval_steps and outcome.steps % self.eval_steps == 0 and outcome.steps % run.steps_per_epoch \
                    and outcome.steps < self.total_steps and self._judge_within_epoch():
                break  # reached: the epoch stops here, its curve point is this evaluation's
            # a limited run (a tuning trial) reads the clock every step: on CUDA a sync, paid by every
            # trial alike; the run is then judged where it stands, so its accuracy is measured
            if self.time_limit_s is not None and self.region.read() >= self.time_limit_s:
                outcome.time_limited = True
                break
        for hook in self.hooks:
            hook.after_training_epoch(epoch + 1, outcome.steps)
        # one sync per epoch; the mean over ranks, so every rank takes the same divergence decision
        epoch_loss = self.dist.mean_(loss_sum / max(epoch_steps, 1)).item()
        now = self.region.read()
        outcome.train_time_s += now - epoch_start - self.within_eval_s  # its evaluations are not training
        self.within_eval_s = 0.0
        return {"epoch": epoch + 1, "step": outcome.steps, "time_s": now, "loss": epoch_loss, "accuracy": None,
                "start_s": epoch_start, "train_end_s": now, "eval_start_s": None}

    def _judge_within_epoch(self) -> bool:
        """A deciding evaluation within an epoch (recipe.eval_every); whether it reached the target."""
        before = self.outcome.deciding_eval_s
        probe: dict[str, Any] = {}
        self._judge(probe)
        self.within_eval_s += self.outcome.deciding_eval_s - before
        if self.outcome.reached_at_s is None:
            return False
        self.reached_within = {k: probe[k] for k in ("accuracy", "eval_start_s", "time_s")}
        return True

    def _judge(self, point: dict[str, Any]) -> None:
        """An evaluation that decides the verdict: inside the timed region."""
        outcome, region = self.outcome, self.region
        t_eval = region.read()
        accuracy = self.evaluator()
        outcome.deciding_eval_s += region.read() - t_eval
        outcome.deciding_eval_images += self.run.test_loader.count * self.dist.world_size
        point["accuracy"] = outcome.accuracy = accuracy
        point["eval_start_s"] = t_eval
        point["time_s"] = region.read()
        # a pruning recipe's network is judged only once all of its prunings are done
        if accuracy >= self.target and outcome.reached_at_s is None and self.run.sparse.done:
            outcome.reached_at_s = point["time_s"]

    def finish(self) -> None:
        """After the clock: the hooks' last work (the EMA's weights kept, the masks made permanent)."""
        for hook in self.hooks:
            hook.finish()
