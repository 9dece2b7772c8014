"""Compile and warm-up, outside the clock: every first call the timed region will make, then
the initial state put back exactly. Also the CPU's training-memory figure, made here on the
warm-up's batch for the same reason: it needs training steps that must not be timed."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from bench.distributed import Dist
from bench.train.evaluation import Evaluating, correct
from bench.train.memory import cpu_training_peak
from bench.train.optim import Lookahead, build_optimizer
from bench.train.setup import RunSetup
from bench.train.step import set_lr


@dataclass
class Compiled:
    """The modules the timed region calls, and how long compiling and warming up took."""

    step_model: nn.Module   # what trains: DDP around the model with several ranks, compiled or not
    eval_model: nn.Module   # what evaluates (sharded evaluation needs no DDP), compiled or not
    compiled: bool
    compile_s: float = 0.0


def compile_and_warm_up(run: RunSetup, recipe: dict, num_classes: int, dist: Dist) -> Compiled:
    t0 = time.perf_counter()
    if run.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # pick conv algorithms once, in the warm-up
    models = _compile(run, dist)
    warm_up(run, models, recipe, num_classes)
    models.compile_s = time.perf_counter() - t0
    return models


def _compile(run: RunSetup, dist: Dist) -> Compiled:
    mode = run.policy.compile
    compiled = mode != "off"
    # dynamic=False: the training and the (padded) evaluation shapes each get a static graph
    train_model = dist.wrap(run.model, run.device, compiled)  # DDP with several ranks, else the model itself
    step_model = torch.compile(train_model, mode=mode, dynamic=False) if compiled else train_model
    # Sharded evaluation has no collective inside the model, so with DDP it runs the module itself.
    eval_model = step_model if train_model is run.model else \
        (torch.compile(run.model, mode=mode, dynamic=False) if compiled else run.model)
    return Compiled(step_model, eval_model, compiled)


def warm_up(run: RunSetup, models: Compiled, recipe: dict, num_classes: int) -> None:
    """Makes, outside the clock, every first call the timed region will make, so that compiling,
    JIT-compiling kernels, loading libraries (cuSOLVER for eigh, cuDNN's plan search) and first
    allocations never land in seed 0's time; then puts back the initial weights and statistics,
    as airbench does. The loaders' random state is untouched (sample_batch puts it back), so a
    seed's run is bit-identical with and without the warm-up."""
    steps = recipe["warmup_steps"]
    if steps == 0:
        return
    model, device, policy = run.model, run.device, run.policy
    initial = copy.deepcopy(model.state_dict())
    generator = torch.Generator(device=device).manual_seed(12345)
    if run.init_images is not None:
        model.data_init(run.init_images)
    # A real batch: the loader's plan, gathers and kernel variant, in the dtype and strides training uses.
    images, labels = run.train_loader.sample_batch()
    optimizer = build_optimizer(model, recipe)
    config = replace(run.step_config, scaler=policy.scaler(device))
    for _ in range(steps):
        random_labels = torch.randint(0, num_classes, labels.shape, generator=generator, device=device)
        set_lr(optimizer, 1.0, whiten_active=True)
        run.step(models.step_model, optimizer, images, random_labels, config)
    if recipe["lookahead"]["every"]:
        Lookahead(model, recipe["lookahead"]["every"], recipe["lookahead"]["decay"]).update(model, decay=0.5)
    # The evaluation: a full batch and a short one (padded to the same shape), with the TTA views.
    test_images, test_labels = run.test_loader.sample_batch()
    eval_model, batch_size = models.eval_model, run.test_loader.batch_size
    with Evaluating(eval_model, device, policy.autocast_dtype):
        correct(eval_model, test_images, test_labels, recipe["tta"], policy.memory_format, batch_size).item()
        correct(eval_model, test_images[:-1], test_labels[:-1], recipe["tta"], policy.memory_format,
                batch_size).item()
    model.load_state_dict(initial)
    if device.type == "cuda":
        torch.cuda.synchronize()


def cpu_memory(run: RunSetup, models: Compiled, recipe: dict) -> dict[str, Any]:
    """The training's own peak memory on CPU (bench.train.memory), from two training steps on the
    warm-up's batch outside the clock; the weights are put back afterwards. On CUDA the
    allocator's peak over the timed region is the figure (torch.cuda.max_memory_allocated)."""
    if run.device.type != "cpu":
        return {"train_peak_memory_method": "torch.cuda.max_memory_allocated over the timed region"}
    model = run.model
    initial = copy.deepcopy(model.state_dict())
    images, labels = run.train_loader.sample_batch()
    optimizer = build_optimizer(model, recipe)
    set_lr(optimizer, 1.0, whiten_active=True)

    def step() -> None:
        run.step(models.step_model, optimizer, images, labels, run.step_config)

    figures = cpu_training_peak(model, optimizer, step)
    model.load_state_dict(initial)
    for p in model.parameters():
        p.grad = None
    return figures
