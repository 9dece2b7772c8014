"""Backpropagation through time: how a sequence model's training step feeds its sequences.

The trainer calls `bptt_train_step` instead of its plain step (bench.train.step) when
`recipe.bptt.mode` is not "none"; the signature is the plain step's, so the schedule, the warm-up, the timed region
and the records are the trainer's own. Every step of every sequence carries the sequence's
label (cross-entropy at each step); a loader batch of N sequences of T steps becomes:

  full       one forward over all T steps, one backward, one optimizer step;
  truncated  windows [0, L), [L, 2L), ...: each a forward from the previous window's final
             state (detached: gradients stop at the window's start), a backward and an
             optimizer step. Memory holds one window's graph.
  sliding    windows of L starting every S steps (S <= L): the loss covers only the steps no
             earlier window trained on (the last S, all L for the first), while gradients
             reach back through the whole window: Williams and Peng's TBPTT(k1=S, k2=L).
             The carried state is the one S steps into the previous window, so each window
             is run as its first S steps, then the rest.
  shuffled   windows of L starting every S steps (S = L when 0; one more window ending at T
             if they do not reach it), each from a zero state, drawn from all N sequences and
             shuffled into batches of N windows: one optimizer step per batch. Windows are
             independent samples, so batches mix sequences and positions; the shuffle is
             within the loader batch (the loader owns the epoch's order).

Evaluation is the same for all modes: the model reads the whole sequence and the last
step's prediction counts. The returned loss is the mean of the optimizer steps' losses.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BenchError
from bench.train.optim import minimize
from bench.train.step import StepConfig

MODES = ("full", "truncated", "sliding", "shuffled")


def _loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Cross-entropy at every step: logits (N, t, K), one label per sequence."""
    steps = logits.size(1)
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), labels.repeat_interleave(steps),
                           label_smoothing=smoothing)


def _detach(state: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(s.detach() for s in state)


def windows(total: int, length: int, step: int) -> list[tuple[int, int]]:
    """Window bounds [start, end) of `length` every `step` steps over `total`, the last one
    ending at `total` (shifted back when the strides do not land on it)."""
    if length >= total:
        return [(0, total)]
    starts = list(range(0, total - length + 1, step))
    if starts[-1] + length < total:
        starts.append(total - length)
    return [(s, s + length) for s in starts]


def updates_per_batch(bptt: dict[str, Any], total: int) -> int:
    """Optimizer updates one loader batch makes under `bptt` for sequences of `total` steps (what
    bptt_train_step does; a run's recorded `steps` counts loader batches)."""
    mode, length = bptt.get("mode", "none"), bptt.get("length") or total
    step = bptt.get("step") or length
    if mode == "truncated":
        return math.ceil(total / length)
    if mode == "sliding":
        count = 0
        for start in range(0, total, step):
            count += 1
            if min(start + length, total) == total:
                break
        return count
    if mode == "shuffled":
        return len(windows(total, length, step))
    return 1


def sequence_length(input_shape: list[int], patch: int = 0) -> int:
    """The steps a sequence model reads an image as (bench.models.sequence): its rows, or its
    patches in raster order."""
    _, height, width = input_shape
    return height if not patch else (height // patch) * (width // patch)


def bptt_train_step(model: nn.Module, optimizer: Any, images: torch.Tensor, labels: torch.Tensor,
                    config: StepConfig, *, bptt: dict[str, Any]) -> torch.Tensor:
    """One loader batch of sequences, fed per `bptt` (the modes above); the mean of the updates' losses."""
    net = getattr(model, "_orig_mod", model)  # the module behind torch.compile's wrapper
    if not hasattr(net, "sequence_logits"):
        raise BenchError(f"recipe.bptt.mode {bptt['mode']!r} needs a sequence model (e.g. model.name = "
                         f"\"lstm\"); '{type(net).__name__}' reads whole images")
    device_type = images.device.type
    autocast, scaler, penalty, smoothing = config.autocast, config.scaler, config.penalty, config.smoothing

    def update(compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        with torch.autocast(device_type, dtype=autocast or torch.float32, enabled=autocast is not None):
            loss = compute()
        minimize(loss, optimizer, scaler, penalty)  # the L1 term in each update
        return loss.detach()

    seq = net.sequence(images)
    total = seq.size(1)
    mode, length = bptt["mode"], bptt["length"]
    step = bptt["step"] or length
    losses: list[torch.Tensor] = []
    if mode == "full":
        losses.append(update(lambda: _loss(net.run(seq)[0], labels, smoothing)))
    elif mode == "truncated":
        state = None
        for start in range(0, total, length):
            def window(start: int = start) -> torch.Tensor:
                nonlocal state
                logits, state = net.run(seq[:, start:start + length], state)
                return _loss(logits, labels, smoothing)
            losses.append(update(window))
            state = _detach(state)
    elif mode == "sliding":
        state, trained_to = None, 0
        for start in range(0, total, step):
            end = min(start + length, total)
            carry = min(start + step, end)

            def window(start: int = start, end: int = end, carry: int = carry) -> torch.Tensor:
                nonlocal state
                logits, next_state = net.run(seq[:, start:carry], state)
                if carry < end:
                    rest, _ = net.run(seq[:, carry:end], next_state)
                    logits = torch.cat([logits, rest], 1)
                state = next_state
                return _loss(logits[:, trained_to - start:], labels, smoothing)
            losses.append(update(window))
            state = _detach(state)
            trained_to = end
            if end == total:
                break
    elif mode == "shuffled":
        bounds = windows(total, length, step)
        n = seq.size(0)
        pieces = torch.cat([seq[:, s:e] for s, e in bounds])  # (W*N, L, F): window-major
        piece_labels = labels.repeat(len(bounds))
        order = torch.randperm(len(pieces), device=pieces.device)
        for chunk in order.split(n):
            losses.append(update(lambda chunk=chunk: _loss(net.run(pieces[chunk])[0], piece_labels[chunk],
                                                           smoothing)))
    else:
        raise BenchError(f"recipe.bptt.mode {mode!r}: choose one of none, {', '.join(MODES)}")
    return torch.stack(losses).mean()
