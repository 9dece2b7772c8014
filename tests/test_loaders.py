"""One loader interface: the torch loader serves the resident loader's batches; auto picks sensibly."""

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.loaders import Augment, choose_loader, dali_available, make_loader

CPU = torch.device("cpu")


def _both(augment, **kw):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 50)
    common = dict(device=CPU, batch_size=16, mean=torch.full((3,), 100.0), std=torch.full((3,), 50.0),
                  augment=augment, shuffle=True, drop_last=True, seed=3, **kw)
    return make_loader("resident", images, labels, **common), make_loader("torch", images, labels, **common)


@pytest.mark.parametrize("augment", [Augment(), Augment(flip=True, translate=2),
                                     Augment(flip=True, alternating_flip=True, translate=1, cutout=3)])
def test_torch_loader_serves_the_resident_batches(augment):
    resident, plain = _both(augment, channels_last=True)
    assert len(resident) == len(plain) == 3
    for epoch in range(2):
        for (a, ya), (b, yb) in zip(resident.epoch(epoch), plain.epoch(epoch), strict=True):
            torch.testing.assert_close(a, b)
            assert torch.equal(ya, yb)
            assert b.is_contiguous(memory_format=torch.channels_last)


def test_auto_prefers_resident_when_it_fits():
    assert choose_loader("auto", 1000, CPU) == "resident"
    assert choose_loader("auto", 10**18, CPU) in ("torch", "dali")
    assert choose_loader("torch", 1000, CPU) == "torch"


def test_unknown_loader_and_missing_dali_are_one_line():
    with pytest.raises(BenchError, match="choose one of"):
        choose_loader("fast", 1, CPU)
    if not dali_available():
        with pytest.raises(BenchError, match=r"pip install '\.\[dali\]'"):
            choose_loader("dali", 1, CPU)


@pytest.mark.parametrize("kind", [0, 1], ids=["resident", "torch"])
def test_sample_batch_is_pass_zeros_first_batch_and_changes_no_later_draw(kind):
    augment = Augment(flip=True, alternating_flip=True, translate=1, cutout=3)
    loader, first_twin, untouched = (_both(augment)[kind] for _ in range(3))
    images, labels = loader.sample_batch()
    first, first_labels = next(iter(first_twin.epoch(0)))
    assert torch.equal(images, first) and torch.equal(labels, first_labels)
    for epoch in range(3):  # alternating flips included: the sample left no trace
        for (a, ya), (b, yb) in zip(loader.epoch(epoch), untouched.epoch(epoch), strict=True):
            assert torch.equal(a, b) and torch.equal(ya, yb)


def test_resident_batches_in_the_compute_dtype():
    resident, plain = _both(Augment(flip=True, translate=2), dtype=torch.bfloat16, channels_last=True)
    for loader in (resident, plain):
        images, _ = next(iter(loader.epoch(0)))
        assert images.dtype == torch.bfloat16 and images.is_contiguous(memory_format=torch.channels_last)
