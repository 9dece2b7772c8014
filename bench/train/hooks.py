"""What the timed loop does besides the training steps and the deciding evaluation, behind one
small interface: the learning-rate schedule, the weight EMA, lookahead, the sparsity recipe's
prunings and trace, and the curve's logging-only evaluations.

The loop (bench.train.loop) calls every hook at each point in the order of `hooks_for`'s list;
that order is part of the arithmetic (the EMA moves before lookahead resets the weights; the
final lookahead pull comes before a pruning).
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from bench.measure import TimedRegion
from bench.sparsity import Sparsifier, active_count, layer_nonzeros, parameter_counts
from bench.train.ema import WeightEMA
from bench.train.evaluation import Evaluator
from bench.train.optim import Lookahead
from bench.train.schedules import lr_multiplier
from bench.train.step import set_lr


class Hook:
    """One concern of the timed loop; every method does nothing unless the hook has work there."""

    def before_step(self, step: int) -> None:
        """Before training step number `step` (0-based)."""

    def after_step(self, steps_done: int) -> None:
        """After a training step; `steps_done` counts it."""

    def after_training_epoch(self, epochs_done: int, steps_done: int) -> None:
        """After an epoch's steps: still training work, counted in the train time."""

    def after_epoch(self, point: dict[str, Any]) -> None:
        """The epoch's curve point, with its loss and any deciding evaluation's accuracy; not
        called for the epoch whose loss diverged."""

    def finish(self) -> None:
        """After the timed region, before anything is counted or saved."""


class Schedule(Hook):
    """lr = base_lr x the schedule's multiplier x the retraining factor after a pruning; the
    whitening bias trains for its first epochs only."""

    def __init__(self, optimizer: Any, recipe: dict, steps_per_epoch: int, total_steps: int, sparse: Sparsifier):
        self.optimizer, self.schedule, self.sparse = optimizer, recipe["schedule"], sparse
        self.steps_per_epoch, self.total_steps = steps_per_epoch, total_steps
        self.whiten_steps = recipe["whiten_bias_epochs"] * steps_per_epoch

    def before_step(self, step: int) -> None:
        multiplier = lr_multiplier(self.schedule, step, self.steps_per_epoch, self.total_steps)
        set_lr(self.optimizer, multiplier * self.sparse.lr_factor(), whiten_active=step < self.whiten_steps)


class MovingAverage(Hook):
    """The weight EMA (bench.train.ema): its shadow moves every `every` steps; after training the
    model keeps the shadow, the weights the test set saw."""

    def __init__(self, ema: WeightEMA):
        self.ema = ema

    def after_step(self, steps_done: int) -> None:
        self.ema.maybe_update(steps_done)

    def finish(self) -> None:
        self.ema.commit()


class LookaheadPull(Hook):
    """airbench's lookahead (bench.train.optim.Lookahead); training ends on the slow weights."""

    def __init__(self, lookahead: Lookahead, model: nn.Module, total_steps: int):
        self.lookahead, self.model, self.total_steps = lookahead, model, total_steps

    def after_step(self, steps_done: int) -> None:
        self.lookahead.maybe_update(self.model, steps_done, self.total_steps)

    def after_training_epoch(self, epochs_done: int, steps_done: int) -> None:
        if steps_done >= self.total_steps:
            self.lookahead.update(self.model, decay=1.0)  # end on the slow weights


class Pruning(Hook):
    """The sparsity recipe's prunings (training work: in the timed region and the train time) and
    its trace of nonzero parameters after each epoch, counted on the device and read after the clock."""

    def __init__(self, sparse: Sparsifier, model: nn.Module):
        self.sparse, self.model = sparse, model
        self.trace: list[torch.Tensor] = []
        self.pruned = False

    def after_training_epoch(self, epochs_done: int, steps_done: int) -> None:
        self.pruned = self.sparse.maybe_prune(epochs_done)
        if self.sparse.active:  # a dense recipe cannot change which weights are nonzero
            self.trace.append(active_count(self.model))

    def after_epoch(self, point: dict[str, Any]) -> None:
        if self.pruned:
            point["pruned"] = True

    def finish(self) -> None:
        self.sparse.finalize()  # masks made permanent before anything is counted or saved

    def figures(self, curve: list[dict[str, Any]]) -> dict[str, Any]:
        """The record's sparsity figures (after `finish`); each curve point gets its active fraction.
        The runner turns the layers' nonzeros into FLOPs (bench.runner.add_active_flops)."""
        sparsity = {"method": self.sparse.method, "pruned_after_epochs": self.sparse.pruned_at,
                    **parameter_counts(self.model), "layer_nonzeros": layer_nonzeros(self.model)}
        for point, active in zip(curve, torch.stack(self.trace).tolist() if self.trace else []):
            point["active_fraction"] = active / sparsity["params"]
        return sparsity


class CurveEvaluation(Hook):
    """An evaluation after every epoch that no deciding evaluation judged: logging only, so it is
    paused out of the timed region (time and energy alike) and timed apart."""

    def __init__(self, evaluator: Evaluator, region: TimedRegion):
        self.evaluator, self.region = evaluator, region
        self.seconds = 0.0  # their time, apart from the timed region

    def after_epoch(self, point: dict[str, Any]) -> None:
        if point["accuracy"] is not None:  # a deciding evaluation was made
            return
        self.region.pause()
        t_eval = time.perf_counter()
        point["accuracy"] = self.evaluator()
        self.seconds += time.perf_counter() - t_eval
        self.region.resume()


def hooks_for(recipe: dict, model: nn.Module, optimizer: Any, ema: WeightEMA | None, pruning: Pruning,
              curve_evaluation: CurveEvaluation, steps_per_epoch: int, total_steps: int) -> list[Hook]:
    """The recipe's hooks, in the order the loop calls them."""
    hooks: list[Hook] = [Schedule(optimizer, recipe, steps_per_epoch, total_steps, pruning.sparse)]
    if ema is not None:
        hooks.append(MovingAverage(ema))
    if recipe["lookahead"]["every"]:
        lookahead = Lookahead(model, recipe["lookahead"]["every"], recipe["lookahead"]["decay"])
        hooks.append(LookaheadPull(lookahead, model, total_steps))
    hooks.append(pruning)
    if recipe["curve_eval"]:
        hooks.append(curve_evaluation)
    return hooks
