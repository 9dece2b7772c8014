"""Weight EMA: a shadow copy of the model's floating-point state that evaluations use.

Unlike lookahead (bench.train.optim.Lookahead), which pulls the training weights toward a slow
average, the EMA never touches what trains: every `every` steps the shadow moves toward the
current weights and statistics by (1 - decay), and an evaluation swaps the shadow in and
the training state back out afterwards. Swapping in place keeps one module (and so one
compiled graph) for training and evaluation.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


def _float_state(model: nn.Module) -> list[torch.Tensor]:
    # parameters and floating buffers (BN running statistics); integer counters are left alone,
    # and so are pruning masks (torch.nn.utils.prune's `*_mask` buffers): an average of masks is
    # no mask, and the shadow is evaluated through the live one, so a pruned weight stays zero
    return [t for k, t in model.state_dict(keep_vars=True).items() if t.is_floating_point() and not k.endswith("_mask")]


class WeightEMA:
    def __init__(self, model: nn.Module, every: int, decay: float):
        self.every, self.decay = every, decay
        self.live = [t.detach() for t in _float_state(model)]
        self.shadow = [t.clone() for t in self.live]

    @torch.no_grad()
    def maybe_update(self, step: int) -> None:
        if step % self.every == 0:
            torch._foreach_lerp_(self.shadow, self.live, 1.0 - self.decay)

    @torch.no_grad()
    def commit(self) -> None:
        """The shadow becomes the model's own state for good (after training: what was evaluated
        is what is counted, saved and evaluated on the training set)."""
        torch._foreach_copy_(self.live, self.shadow)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """The shadow weights in the model for the length of the block."""
        with torch.no_grad():
            saved = [t.clone() for t in self.live]
            torch._foreach_copy_(self.live, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, saved)
