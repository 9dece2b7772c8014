"""The resident loader: the whole split on the training device.

It keeps the whole split as uint8 where training happens (GPU
memory on CUDA, RAM on CPU), draws each epoch's permutation and augmentation
parameters there with its own seeded generator, and builds each batch with one
vectorized gather (kernels.augment): never per-sample Python work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from kernels import crop_flip_normalize, cutout_


@dataclass(frozen=True)
class Augment:
    flip: bool = False
    alternating_flip: bool = False
    translate: int = 0
    cutout: int = 0

    @classmethod
    def from_recipe(cls, augment: dict) -> "Augment":
        return cls(flip=augment["flip"], alternating_flip=augment["alternating_flip"],
                   translate=augment["translate"], cutout=augment["cutout"])


@dataclass(frozen=True)
class EpochPlan:
    batches: list[torch.Tensor]       # each batch's dataset indices
    flips: torch.Tensor               # (N,) bool, by dataset position
    offsets: torch.Tensor             # (2, N) crop offsets (rows, cols) in the padded image
    corners: torch.Tensor | None      # (2, N) cutout corners, or None


def first_batch(batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The first batch of a pass, closing the pass (a loader's workers or pipeline stop cleanly)."""
    try:
        return next(batches)
    finally:
        batches.close()  # type: ignore[attr-defined]


def sample_first_batch(loader) -> tuple[torch.Tensor, torch.Tensor]:
    """Pass 0's first batch, made exactly as training makes it (plan, gathers, kernels, workers or
    pipeline), with the loader's state put back afterwards: the warm-up runs every first call on
    it, and the run's own draws stay as if it had never been made."""
    state = loader.state()
    try:
        return first_batch(loader.epoch(0))
    finally:
        loader.restore(state)


def channel_stats(images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 NHWC images, on the 0..255 scale."""
    flat = images.reshape(-1, images.shape[-1]).astype(np.float64)
    return torch.tensor(flat.mean(0), dtype=torch.float32), torch.tensor(flat.std(0), dtype=torch.float32)


class ResidentLoader:
    name = "resident"

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, device: torch.device, batch_size: int,
                 mean: torch.Tensor, std: torch.Tensor, augment: Augment | None = None, shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, shard: tuple[int, int] = (0, 1)):
        # shard = (rank, world): the plan is the one-process plan, drawn whole on every rank from
        # the same seed, in global batches of batch_size * world; this rank serves its slice of
        # each. So the union of the ranks' batches of a pass is the one-process pass, exactly.
        rank, world = shard
        if not 0 <= rank < world:
            raise ValueError(f"shard {shard}: rank must be in 0..world-1")
        if world > 1 and not drop_last:
            raise ValueError("a sharded pass needs drop_last: a short last global batch would not split evenly")
        self.shard = (rank, world)
        self.device = device
        self.batch_size = batch_size
        self.augment = augment or Augment()
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.dtype = dtype
        self.channels_last = channels_last
        self.count = len(labels)
        self.size = (images.shape[1], images.shape[2])
        pad = self.augment.translate
        # np.array copies: the source may be a read-only buffer, which torch must not alias
        nchw = torch.from_numpy(np.array(images.transpose(0, 3, 1, 2), order="C")).to(device)
        # Pad once for the whole split; each epoch only picks crop offsets.
        self.padded = F.pad(nchw, (pad,) * 4, mode="reflect") if pad else nchw
        self.labels = torch.from_numpy(labels.astype(np.int64)).to(device)
        self.mean = mean.to(device)
        self.std = std.to(device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self._base_flip: torch.Tensor | None = None

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.shard[1]

    def __len__(self) -> int:
        full, rest = divmod(self.count, self.global_batch)
        return full if self.drop_last or rest == 0 else full + 1

    def resident_bytes(self) -> int:
        return self.padded.numel() * self.padded.element_size() + self.labels.numel() * 8

    def _flips(self, epoch: int) -> torch.Tensor:
        if not self.augment.flip:
            return torch.zeros(self.count, dtype=torch.bool, device=self.device)
        if not self.augment.alternating_flip:
            return torch.rand(self.count, generator=self.generator, device=self.device) < 0.5
        if self._base_flip is None:  # random on the first epoch, then each image alternates
            self._base_flip = torch.rand(self.count, generator=self.generator, device=self.device) < 0.5
        return self._base_flip ^ bool(epoch % 2)

    def plan(self, epoch: int) -> EpochPlan:
        """One pass's random draws, in a fixed order from the loader's generator."""
        n, pad = self.count, self.augment.translate
        order = (torch.randperm(n, generator=self.generator, device=self.device) if self.shuffle
                 else torch.arange(n, device=self.device))
        flips = self._flips(epoch)  # per image, indexed by dataset position
        if pad:
            offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=self.generator, device=self.device)
        else:
            offsets = torch.zeros(2, n, dtype=torch.long, device=self.device)
        corners = None
        if self.augment.cutout:
            size = self.augment.cutout
            corners = torch.stack([
                torch.randint(-size + 1, self.size[0], (n,), generator=self.generator, device=self.device),
                torch.randint(-size + 1, self.size[1], (n,), generator=self.generator, device=self.device)])
        first = self.shard[0] * self.batch_size  # this rank's slice of each global batch
        batches = [order[start + first:start + first + self.batch_size]
                   for start in range(0, len(self) * self.global_batch, self.global_batch)]
        return EpochPlan(batches=batches, flips=flips, offsets=offsets, corners=corners)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yields (images, labels) batches for one pass; epoch numbers count from 0."""
        plan = self.plan(epoch)
        order = torch.cat(plan.batches) if plan.batches else torch.zeros(0, dtype=torch.long, device=self.device)
        # One gather per epoch puts every draw in serving order; each step then only slices views
        # (three to five small gathers per step otherwise, each a kernel launch on a GPU).
        dy, dx = plan.offsets[:, order].unbind(0)
        flips, labels = plan.flips[order], self.labels[order]
        corners = plan.corners[:, order] if plan.corners is not None else None
        start = 0
        for idx in plan.batches:
            end = start + len(idx)
            batch = crop_flip_normalize(self.padded, idx, dy[start:end], dx[start:end], flips[start:end], self.mean,
                                        self.std, self.size, self.dtype, self.channels_last)
            if corners is not None:
                cutout_(batch, corners[0, start:end], corners[1, start:end], self.augment.cutout)
            yield batch, labels[start:end]
            start = end

    def state(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Everything later passes depend on: the generator and the alternating flips."""
        return self.generator.get_state(), None if self._base_flip is None else self._base_flip.clone()

    def restore(self, state: tuple[torch.Tensor, torch.Tensor | None]) -> None:
        self.generator.set_state(state[0])
        self._base_flip = state[1]

    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return sample_first_batch(self)

    def images(self, count: int) -> torch.Tensor:
        """The first `count` images, normalized and unaugmented (for data-dependent init)."""
        idx = torch.arange(min(count, self.count), device=self.device)
        zero = torch.full_like(idx, self.augment.translate)
        return crop_flip_normalize(self.padded, idx, zero, zero, torch.zeros_like(idx, dtype=torch.bool),
                                   self.mean, self.std, self.size, torch.float32, False)
