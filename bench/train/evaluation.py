"""Evaluation: exact top-1 accuracy over a whole split, with test-time augmentation.

Every evaluation has one input shape (a short last batch is padded), so a compiled model is
never recompiled and no cuDNN plan is chosen inside the timed region; the warm-up
(bench.train.warmup) makes the first call of each shape before the clock.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, ContextManager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.distributed import SINGLE, Dist
from bench.loaders import make_loader


def _mirror_logits(model: nn.Module, x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    return 0.5 * (model(x).float() + model(x.flip(-1).contiguous(memory_format=memory_format)).float())


def tta_logits(model: nn.Module, x: torch.Tensor, level: int,
               memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """0: plain; 1: mean with the mirror image; 2: also two views translated by one pixel.
    Every view is laid out in `memory_format` like `x`, so a compiled model sees one layout."""
    if level == 0:
        return model(x).float()
    logits = _mirror_logits(model, x, memory_format)
    if level == 1:
        return logits
    height, width = x.shape[-2:]
    # CPU autocast runs reflection padding in float32: cast back, so every view has the batch's dtype
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect").to(x.dtype)
    shifted = [view.contiguous(memory_format=memory_format)
               for view in (padded[..., :height, :width], padded[..., 2:, 2:])]
    translated = torch.stack([_mirror_logits(model, s, memory_format) for s in shifted]).mean(0)
    return 0.5 * logits + 0.5 * translated


def correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, tta: int,
            memory_format: torch.memory_format, batch_size: int) -> torch.Tensor:
    """Correct predictions in one batch. A short last batch is padded to the loader's batch size
    with blank images labelled -1 (never counted correct), so evaluation has one input shape: a
    compiled model is never recompiled and a cuDNN plan is never chosen inside the timed region."""
    short = batch_size - len(labels)
    if short > 0:
        images = torch.cat([images, images.new_zeros((short, *images.shape[1:]))]).contiguous(
            memory_format=memory_format)
        labels = torch.cat([labels, labels.new_full((short,), -1)])
    return (tta_logits(model, images, tta, memory_format).argmax(1) == labels).sum()


class Evaluating:
    """Eval mode, inference mode (no autograd bookkeeping at all: no version counters, no views
    tracked) and the run's autocast, for the length of a `with` block."""

    def __init__(self, model: nn.Module, device: torch.device, autocast: torch.dtype | None):
        self.model = model
        self.contexts = [torch.inference_mode(), torch.autocast(device.type, dtype=autocast or torch.float32,
                                                         enabled=autocast is not None)]

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()
        for context in self.contexts:
            context.__enter__()

    def __exit__(self, *exc: object) -> None:
        for context in reversed(self.contexts):
            context.__exit__(*exc)
        self.model.train(self.was_training)


def evaluate(model: nn.Module, loader, tta: int, autocast: torch.dtype | None,
             memory_format: torch.memory_format = torch.contiguous_format, dist: Dist = SINGLE) -> float:
    """Exact top-1 accuracy over the whole split. With several ranks each holds a shard of the
    split, and the correct counts and shard sizes are summed over the ranks."""
    counts = torch.tensor([0, loader.count], dtype=torch.long, device=loader.device)
    with Evaluating(model, loader.device, autocast):
        for images, labels in loader.epoch():
            counts[0] += correct(model, images, labels, tta, memory_format, loader.batch_size)
    correct_count, count = dist.sum_(counts).tolist()
    return correct_count / count


def train_accuracy(model: nn.Module, dataset, recipe: dict, loader_kind: str, loader_options: dict[str, Any],
                   autocast: torch.dtype | None, memory_format: torch.memory_format, dist: Dist) -> dict[str, Any]:
    """Top-1 on a fixed subset of the training images (unaugmented, the test split's TTA), after
    the timed region: a fitting measure for data-size studies that costs the contract nothing.
    With several ranks it is sharded and summed like the test evaluation."""
    t0 = time.perf_counter()
    images, labels = dataset.train_images, dataset.train_labels
    if recipe["train_eval"] < len(labels):
        # the same images for every seed and run: the first N of a seed-0 permutation
        chosen = np.sort(np.random.default_rng(0).permutation(len(labels))[:recipe["train_eval"]])
        images, labels = images[chosen], labels[chosen]
    count = len(labels)
    # arrays through the same loader kind (a file-reading DALI run still holds the decoded arrays)
    loader = make_loader(loader_kind, *dist.test_shard(images, labels), batch_size=recipe["eval_batch_size"],
                         **loader_options)
    accuracy = evaluate(model, loader, recipe["tta"], autocast, memory_format, dist)
    return {"train_accuracy": accuracy, "train_eval_images": count, "train_eval_s": time.perf_counter() - t0}


def validation_accuracy(model: nn.Module, dataset, recipe: dict, loader_kind: str, loader_options: dict[str, Any],
                        autocast: torch.dtype | None, memory_format: torch.memory_format, dist: Dist) -> dict[str, Any]:
    """Top-1 on the validation split carved out of the training set (bench.runner.subset), with the
    final weights and the test split's TTA, after the timed region: a measure to choose on, no part
    of time to target. Sharded and summed over the ranks like the test evaluation."""
    t0 = time.perf_counter()
    loader = make_loader(loader_kind, *dist.test_shard(dataset.validation_images, dataset.validation_labels),
                         batch_size=recipe["eval_batch_size"], **loader_options)
    accuracy = evaluate(model, loader, recipe["tta"], autocast, memory_format, dist)
    return {"validation_accuracy": accuracy, "validation_eval_s": time.perf_counter() - t0}


@dataclass
class Evaluator:
    """A test-split evaluation as the timed loop makes it: the model's buffers synced over the
    ranks, and through `weights` (the EMA's shadow swapped in, or nothing) for its length."""

    model: nn.Module          # the module whose buffers are synced
    eval_model: nn.Module     # what runs the batches (compiled or not)
    test_loader: Any
    tta: int
    autocast: torch.dtype | None
    memory_format: torch.memory_format
    dist: Dist
    weights: Callable[[], ContextManager[Any]] = nullcontext

    def __call__(self) -> float:
        with self.weights():
            self.dist.sync_buffers(self.model)
            return evaluate(self.eval_model, self.test_loader, self.tta, self.autocast, self.memory_format, self.dist)
