"""Loaders turn a data set split into training-ready batches on the device.

Every loader has the same face:
    name: str                      recorded in the result ("resident", "torch", "dali")
    count: int                     images per pass;  batch_size: int;  device: torch.device
    len(loader)                    batches per pass
    loader.epoch(e)                yields (images, labels): images normalized, in the asked dtype and
                                   memory format, labels int64, both on the device; e counts from 0
    loader.images(n)               the first n images, normalized and unaugmented (data-dependent init)
    loader.sample_batch()          pass 0's first batch made as training makes it, the loader's random
                                   state left as it was (the warm-up's input)
    loader.state() / restore(s)    the random state later passes depend on (array loaders)

`make_file_loader("dali", split_dir, **options)` reads an ImageFolder split from disk instead of
arrays (same options, plus shard_id/num_shards); only DALI has one.

`choose_loader("auto", ...)` picks the resident loader when the split fits in device
memory with room to train, DALI for file data sets when it is installed, torch otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bench.errors import BenchError
from bench.loader_kinds import LOADER_KINDS
from bench.loaders.resident import Augment, EpochPlan, ResidentLoader, channel_stats
from bench.loaders.torch_loader import TorchLoader


# Keep the resident copy to a small share of device memory: the rest is for training.
_RESIDENT_SHARE = 0.25


def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False
    return True


def choose_loader(kind: str, train_bytes: int, device: torch.device, file_dataset: bool = False) -> str:
    if kind not in LOADER_KINDS:
        raise BenchError(f"--loader {kind!r}: choose one of {', '.join(LOADER_KINDS)}")
    if kind == "dali" and not dali_available():
        raise BenchError("--loader dali: NVIDIA DALI is not installed; pip install '.[dali]' "
                         "(nvidia-dali-cuda130; for CUDA 12 use nvidia-dali-cuda120)")
    if kind != "auto":
        return kind
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if train_bytes <= _RESIDENT_SHARE * free:
            return "resident"
    elif train_bytes <= _RESIDENT_SHARE * _host_memory_bytes():
        return "resident"
    if file_dataset and dali_available():
        return "dali"
    return "torch"


def _host_memory_bytes() -> int:
    try:
        import os

        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def make_loader(kind: str, images: np.ndarray, labels: np.ndarray, **options: Any):
    if kind == "resident":
        return ResidentLoader(images, labels, **options)
    if kind == "torch":
        return TorchLoader(images, labels, **options)
    if kind == "dali":
        from bench.loaders.dali import DaliLoader  # optional dependency

        return DaliLoader(images, labels, **options)
    raise BenchError(f"unknown loader {kind!r}: choose one of {', '.join(LOADER_KINDS)}")


def make_file_loader(kind: str, root, **options: Any):
    """A loader that reads and decodes an ImageFolder split (train/ or test/) at training time."""
    if kind != "dali":
        raise BenchError(f"loader {kind!r} reads arrays, not image files: use make_loader, or the dali loader")
    from bench.loaders.dali import DaliFileLoader  # optional dependency

    return DaliFileLoader(root, **options)


__all__ = ["Augment", "EpochPlan", "LOADER_KINDS", "ResidentLoader", "TorchLoader", "channel_stats",
           "choose_loader", "dali_available", "make_file_loader", "make_loader"]
