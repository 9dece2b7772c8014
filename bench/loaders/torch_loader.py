"""The plain PyTorch path: a per-sample Dataset and a DataLoader, as most training scripts have it.

Each image is cropped and mirrored on its own on the host (in `workers` worker
processes when the recipe asks), the uint8 batch is collated into pinned memory
(on CUDA) and copied without blocking; normalization, cast and layout happen on the
device, so the host moves a quarter of the bytes and never does float work.
It is the baseline the faster loaders are measured against, and the fallback
when a data set does not fit in device memory. Its random draws are the resident
loader's (same seeded plan), so the batches do not depend on the loader chosen.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench.loaders.resident import Augment, EpochPlan, ResidentLoader, sample_first_batch
from kernels.augment import cutout_


class _AugmentedImages(Dataset):
    def __init__(self, padded: torch.Tensor, labels: torch.Tensor, plan: EpochPlan, size: tuple[int, int]):
        self.padded, self.labels, self.plan, self.size = padded, labels, plan, size

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        dy, dx = int(self.plan.offsets[0, i]), int(self.plan.offsets[1, i])
        crop = self.padded[i, :, dy:dy + self.size[0], dx:dx + self.size[1]]
        return (crop.flip(-1) if self.plan.flips[i] else crop), self.labels[i]


class TorchLoader:
    name = "torch"

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, device: torch.device, batch_size: int,
                 mean: torch.Tensor, std: torch.Tensor, augment: Augment | None = None, shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, workers: int = 0,
                 shard: tuple[int, int] = (0, 1)):
        # The host copy (padded once) and the seeded epoch plans come from a CPU resident loader.
        self._host = ResidentLoader(images, labels, device=torch.device("cpu"), batch_size=batch_size, mean=mean,
                                    std=std, augment=augment, shuffle=shuffle, drop_last=drop_last, seed=seed,
                                    dtype=dtype, channels_last=channels_last, shard=shard)
        self.device, self.batch_size, self.count = device, batch_size, self._host.count
        self.dtype, self.channels_last, self.workers = dtype, channels_last, workers
        self.mean, self.std = mean.view(1, -1, 1, 1).to(device), std.view(1, -1, 1, 1).to(device)

    def __len__(self) -> int:
        return len(self._host)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        plan = self._host.plan(epoch)
        data = _AugmentedImages(self._host.padded, self._host.labels, plan, self._host.size)
        loader = DataLoader(data, batch_sampler=[idx.tolist() for idx in plan.batches], num_workers=self.workers,
                            pin_memory=self.device.type == "cuda")
        corners = None
        if plan.corners is not None and plan.batches:  # in serving order, on the device, once per pass
            corners = plan.corners[:, torch.cat(plan.batches)].to(self.device, non_blocking=True)
        start = 0
        for images, labels in loader:
            images = images.to(self.device, non_blocking=True)  # uint8: a quarter of float32's bytes
            batch = ((images.float() - self.mean) / self.std).to(self.dtype)
            if corners is not None:
                end = start + len(labels)
                cutout_(batch, corners[0, start:end], corners[1, start:end], self._host.augment.cutout)
                start = end
            if self.channels_last:
                batch = batch.contiguous(memory_format=torch.channels_last)
            yield batch, labels.to(self.device, non_blocking=True)

    def state(self):
        return self._host.state()

    def restore(self, state) -> None:
        self._host.restore(state)

    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return sample_first_batch(self)

    def images(self, count: int) -> torch.Tensor:
        return self._host.images(count).to(self.device)
