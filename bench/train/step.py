"""The training step: one optimizer update on one loader batch, and the learning rates it uses.

Every step form has one signature, `step(model, optimizer, images, labels, config)`, and
returns the data loss (detached); the BPTT step (bench.train.bptt) has the same signature and is
chosen for a sequence recipe (bench.train.setup.step_for). The warm-up, the CPU memory
measurement and the timed loop call it alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from bench.train.optim import RATE_CEILING, minimize


@dataclass(frozen=True)
class StepConfig:
    """How every step of a phase computes: the same for all its steps."""

    smoothing: float                  # label smoothing of the cross-entropy
    autocast: torch.dtype | None      # the autocast dtype, None for fp32
    scaler: Any = None                # a torch.amp.GradScaler for fp16 training, else None
    # the sparsity recipe's L1 term (added to what is minimized, not to the loss reported), or None
    penalty: Callable[[], torch.Tensor | None] | None = None


class TrainStep(Protocol):
    def __call__(self, model: nn.Module, optimizer: Any, images: torch.Tensor, labels: torch.Tensor,
                 config: StepConfig) -> torch.Tensor: ...


def train_step(model: nn.Module, optimizer: Any, images: torch.Tensor, labels: torch.Tensor,
               config: StepConfig) -> torch.Tensor:
    """One step; returns the data loss. The penalty (in fp32 outside autocast) is added to what is
    minimized but not to the loss reported, so curves compare."""
    autocast = config.autocast
    with torch.autocast(images.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        loss = F.cross_entropy(model(images), labels, label_smoothing=config.smoothing)
    minimize(loss, optimizer, config.scaler, config.penalty)
    return loss.detach()


def set_lr(optimizer: Any, multiplier: float, whiten_active: bool) -> None:
    """lr = base_lr x multiplier in every group; the whitening bias frozen (lr 0) after its epochs."""
    for group in optimizer.param_groups:
        frozen = group["name"] == "whiten_bias" and not whiten_active
        # a rate past the ceiling (optim.RATE_CEILING) is an overflow error in torch, not a divergence
        group["lr"] = 0.0 if frozen else min(group["base_lr"] * multiplier, RATE_CEILING)
