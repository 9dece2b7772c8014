"""One run on many processes (DDP through torch.distributed.run, gloo on CPU).

Fast tests first: the loaders' shards, the launcher's argument handling and exit codes.
Then real processes: two gloo ranks of the trainer on synthetic data against one process,
the README's 2-process smoke run on Fashion-MNIST, and a rank killed mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.distributed import SINGLE, Dist, _exit_code, worker_argv
from bench.errors import BenchError
from bench.loaders import Augment, dali_available, make_loader

CPU = torch.device("cpu")
FASHION = Path("/usr/share/datasets/fashion-mnist")
REPO = Path(__file__).resolve().parent.parent


def _loader(kind: str, batch_size: int, shard=(0, 1), count: int = 100):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, count)
    return make_loader(kind, images, labels, device=CPU, batch_size=batch_size, mean=torch.full((3,), 100.0),
                       std=torch.full((3,), 50.0), augment=Augment(flip=True, alternating_flip=True, translate=2,
                                                                  cutout=3),
                       shuffle=True, drop_last=True, seed=7, shard=shard)


KINDS = ["resident", "torch"] + (["dali"] if dali_available() else [])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("world", [2, 4])
def test_each_ranks_batches_are_its_slice_of_the_one_process_batches(kind, world):
    """The first epochs of a world-size run are the one-process run's batches, each split in world
    consecutive slices, rank r serving slice r: images, augmentation and labels alike."""
    whole = _loader(kind, 16)
    ranks = [_loader(kind, 16 // world, shard=(r, world)) for r in range(world)]
    assert all(len(r) == len(whole) == 6 for r in ranks)
    for epoch in range(2):  # the alternating flip's second pass too
        passes = [list(r.epoch(epoch)) for r in ranks]
        for step, (images, labels) in enumerate(whole.epoch(epoch)):
            parts = [p[step] for p in passes]
            assert all(len(y) == 16 // world for _, y in parts)
            assert torch.equal(torch.cat([x for x, _ in parts]), images)
            assert torch.equal(torch.cat([y for _, y in parts]), labels)


def test_the_ranks_of_an_epoch_cover_the_served_images_once():
    ranks = [_loader("resident", 8, shard=(r, 2)) for r in range(2)]
    served = torch.cat([idx for r in ranks for idx in r.plan(0).batches])
    whole = torch.cat(_loader("resident", 16).plan(0).batches)
    assert sorted(served.tolist()) == sorted(whole.tolist()) and len(set(served.tolist())) == len(served) == 96


def test_a_shard_needs_drop_last_and_a_rank_inside_the_world():
    with pytest.raises(ValueError, match="rank must be"):
        _loader("resident", 8, shard=(2, 2))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="drop_last"):
        make_loader("resident", rng.integers(0, 256, (10, 4, 4, 1), dtype=np.uint8), np.zeros(10, dtype=np.int64),
                    device=CPU, batch_size=2, mean=torch.zeros(1), std=torch.ones(1), shard=(0, 2))


def test_the_global_batch_splits_evenly_or_is_refused():
    two = Dist(rank=1, world_size=2, backend="gloo")
    assert two.rank_batch(128) == 64 and SINGLE.rank_batch(127) == 127
    with pytest.raises(BenchError, match="does not split over world size 2"):
        two.rank_batch(127)


def test_test_shards_partition_the_test_set():
    images, labels = np.arange(11) * 10, np.arange(11)
    shards = [Dist(rank=r, world_size=3, backend="gloo").test_shard(images, labels) for r in range(3)]
    assert sorted(np.concatenate([y for _, y in shards]).tolist()) == list(range(11))
    assert SINGLE.test_shard(images, labels)[1] is labels


def test_the_workers_never_see_the_launcher_flags():
    argv = ["run", "smoke", "--nproc-per-node", "2", "--nnodes=2", "--node-rank", "1", "--rdzv-endpoint",
            "h:29500", "--dist-timeout", "60", "--device", "cpu", "--runs", "1"]
    assert worker_argv(argv) == ["run", "smoke", "--device", "cpu", "--runs", "1"]


def _failure(code):
    return SimpleNamespace(exitcode=code, signal_name=lambda: "SIGKILL" if code == -9 else "")


def test_exit_code_is_rank_zeros_unless_a_rank_died():
    said = []
    assert _exit_code({0: _failure(1), 1: _failure(1)}, said.append) == 1  # verdict FAIL on every rank
    assert _exit_code({0: _failure(3), 1: _failure(-9)}, said.append) == 3
    assert said == ["rank 1 died (SIGKILL)"]
    assert _exit_code({1: _failure(-9)}, said.append) == 3  # rank 0 was stopped cleanly by the launcher
    assert _exit_code({1: _failure(2)}, said.append) == 2
