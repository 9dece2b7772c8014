"""Loader throughput on CPU, side by side in one run: the images per second each loader serves with
the cifar10-94 augmentation (flip, alternating flip, translate 2), batch 1024, channels-last float32.

  arrays       CIFAR-shaped synthetic uint8 (50,000 x 32x32x3), one pass a round:
               resident (one vectorized gather), torch (per-sample Dataset + DataLoader), dali.
  JPEG folder  10,240 files of the cifar10-jpeg train split (1,024 a class, linked from the extracted
               archive), one pass a round: DALI's file reader + CPU decoder + augmentation, against
               a per-sample Pillow decode + the same augmentation in a torch DataLoader, in the
               main process (workers=0, the baseline) and in 2 worker processes.

Each benchmark's extra_info holds images_per_s and, where the torch row of its group ran first in the
same session, ratio_to_torch. Compare rows of one group: ratios matter, not the absolute figures on a
shared machine. Nothing is asserted on time, so these are benchmarks for `make perf` (marked long;
the loaders' behaviour is tested in tests/test_loaders.py and tests/test_dali.py).

    pytest tests/perf/test_loader_throughput.py --benchmark-only
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from bench.errors import BenchError
from bench.loaders import Augment, channel_stats, dali_available, make_loader

pytestmark = pytest.mark.long

CPU = torch.device("cpu")
BATCH = 1024
AUGMENT = Augment(flip=True, alternating_flip=True, translate=2)  # suites/cifar10-94.toml
ROUNDS = 3
ARRAYS_GROUP = "loader throughput: arrays 50k x 32x32x3, CPU, batch 1024"
JPEG_GROUP = "loader throughput: JPEG folder 10,240 files, CPU, batch 1024"
JPEG_PER_CLASS = 1024  # 10 classes x 1,024 files = 10 full batches a pass

needs_dali = pytest.mark.skipif(not dali_available(), reason="NVIDIA DALI is not installed: "
                                "pip install nvidia-dali-cuda130 (pip install '.[dali]')")
_images_per_s: dict[tuple[str, str], float] = {}  # (group, loader) -> images/s, for the ratios to torch


def _record(benchmark, group: str, loader: str, images_per_pass: int, **info) -> None:
    rate = images_per_pass / benchmark.stats.stats.mean
    _images_per_s[(group, loader)] = rate
    benchmark.extra_info.update(images_per_s=round(rate), **info)
    if loader != "torch" and (group, "torch") in _images_per_s:
        benchmark.extra_info["ratio_to_torch"] = round(rate / _images_per_s[(group, "torch")], 2)


def _drain(batches) -> int:
    return sum(len(labels) for _, labels in batches)


# ---------------------------------------------------------------- arrays ----

@pytest.fixture(scope="module")
def cifar_shaped():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8)
    return images, rng.integers(0, 10, 50_000)


@pytest.mark.parametrize("kind", ["torch", "resident", pytest.param("dali", marks=needs_dali)])
def test_array_loader_throughput(benchmark, cifar_shaped, kind):
    images, labels = cifar_shaped
    mean, std = channel_stats(images[:5000])
    loader = make_loader(kind, images, labels, device=CPU, batch_size=BATCH, mean=mean, std=std, augment=AUGMENT,
                         shuffle=True, drop_last=True, seed=0, channels_last=True)
    epochs = iter(range(1000))
    benchmark.group = ARRAYS_GROUP
    benchmark.pedantic(lambda: _drain(loader.epoch(next(epochs))), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    threads = {"dali_threads": loader.threads} if kind == "dali" else {}
    _record(benchmark, ARRAYS_GROUP, kind, len(loader) * BATCH, torch_threads=torch.get_num_threads(), **threads)


# ---------------------------------------------------------------- JPEG files ----

@pytest.fixture(scope="module")
def jpeg_subset(tmp_path_factory):
    """train/<class>/ folders of links to the first 1,024 JPEGs of each cifar10-jpeg class."""
    from bench.datasets import imagefolder_files

    try:
        train, _, classes = imagefolder_files("cifar10-jpeg")  # extracted once into the cache (about 12 s)
    except BenchError as error:
        pytest.skip(f"cifar10-jpeg is not available: {error}")
    root = tmp_path_factory.mktemp("cifar10-jpeg-subset") / "train"
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for file in sorted((train / cls).glob("*.jpg"))[:JPEG_PER_CLASS]:
            (root / cls / file.name).symlink_to(file)
    return root


class _PillowFolder(Dataset):
    """The usual per-sample path: open and decode with Pillow, reflect-pad, crop, mirror, one image at a time."""

    def __init__(self, files: list[Path], labels: list[int], pad: int, seed: int):
        self.files, self.labels, self.pad = files, labels, pad
        self.rng = np.random.default_rng(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[i]) as image:
            pixels = np.asarray(image.convert("RGB"))
        p = self.pad
        padded = np.pad(pixels, ((p, p), (p, p), (0, 0)), mode="reflect")
        dy, dx = self.rng.integers(0, 2 * p + 1, 2)
        crop = padded[dy:dy + pixels.shape[0], dx:dx + pixels.shape[1]]
        if (i + self.epoch) % 2:  # stands in for the alternating flip: cost, not statistics, is measured
            crop = crop[:, ::-1]
        return torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1), self.labels[i]


def _pillow_pass(data: _PillowFolder, mean: torch.Tensor, std: torch.Tensor, epoch: int, workers: int) -> int:
    data.epoch = epoch
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(epoch))
    served = 0
    for images, labels in DataLoader(data, batch_size=BATCH, sampler=order.tolist(), drop_last=True,
                                     num_workers=workers):
        batch = ((images.float() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1))
        batch = batch.contiguous(memory_format=torch.channels_last)
        served += len(labels)
    return served


@pytest.mark.parametrize("kind", ["torch", "torch-2-workers", pytest.param("dali", marks=needs_dali)])
def test_jpeg_folder_loader_throughput(benchmark, jpeg_subset, kind):
    mean, std = torch.tensor([125.3, 123.0, 113.9]), torch.tensor([63.0, 62.1, 66.7])
    epochs = iter(range(1000))
    if kind == "dali":
        from bench.loaders.dali import DaliFileLoader

        loader = DaliFileLoader(jpeg_subset, device=CPU, batch_size=BATCH, mean=mean, std=std, augment=AUGMENT,
                                shuffle=True, drop_last=True, seed=0, channels_last=True)
        count = len(loader) * BATCH

        def one_pass() -> int:
            return _drain(loader.epoch(next(epochs)))
        info = dict(path="fn.readers.file + fn.decoders.image(cpu) + augment", dali_threads=loader.threads)
    else:
        # workers=0 is the torch loader's default; 2 worker processes match DALI's 2 threads on this machine
        workers = 2 if kind == "torch-2-workers" else 0
        files, labels = _list_jpegs(jpeg_subset)
        data = _PillowFolder(files, labels, AUGMENT.translate, seed=0)
        count = len(files) // BATCH * BATCH

        def one_pass() -> int:
            return _pillow_pass(data, mean, std, next(epochs), workers)
        info = dict(path=f"Pillow decode + numpy augment per sample, DataLoader workers={workers}")
    benchmark.group = JPEG_GROUP
    benchmark.pedantic(one_pass, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    _record(benchmark, JPEG_GROUP, kind, count, torch_threads=torch.get_num_threads(), **info)


def _list_jpegs(root: Path) -> tuple[list[Path], list[int]]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    pairs = [(file, label) for label, cls in enumerate(classes) for file in sorted((root / cls).glob("*.jpg"))]
    return [file for file, _ in pairs], [label for _, label in pairs]
