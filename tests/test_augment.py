"""The augmentation reference and the resident loader: exact flips and translations, full epochs."""

import numpy as np
import torch

from bench.loaders import Augment, ResidentLoader
from kernels.augment import crop_flip_normalize_reference as crop_flip_normalize, cutout_


def test_crop_flip_normalize_matches_a_per_image_loop():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=g)
    pad = 2
    padded = torch.nn.functional.pad(images, (pad,) * 4, mode="reflect")
    idx = torch.tensor([5, 0, 3, 3])
    dy = torch.tensor([0, 4, 2, 1])     # edge offsets 0 and 2 * pad included
    dx = torch.tensor([4, 0, 2, 3])
    flip = torch.tensor([True, False, True, False])
    mean, std = torch.tensor([10.0, 20.0, 30.0]), torch.tensor([2.0, 4.0, 8.0])
    out = crop_flip_normalize(padded, idx, dy, dx, flip, mean, std, (8, 8), channels_last=True)
    assert out.is_contiguous(memory_format=torch.channels_last)
    for b in range(4):
        crop = padded[idx[b], :, dy[b]:dy[b] + 8, dx[b]:dx[b] + 8].float()
        if flip[b]:
            crop = crop.flip(-1)
        expected = (crop - mean.view(3, 1, 1)) / std.view(3, 1, 1)
        torch.testing.assert_close(out[b], expected)


def test_cutout_zeroes_exactly_the_square():
    batch = torch.ones(2, 1, 6, 6)
    cutout_(batch, torch.tensor([1, -2]), torch.tensor([2, 4]), 3)
    assert batch[0, 0, 1:4, 2:5].eq(0).all() and batch[0].sum() == 36 - 9
    assert batch[1, 0, 0:1, 4:6].eq(0).all() and batch[1].sum() == 36 - 2   # clipped at the border


def _loader(augment, seed=0, n=10):
    images = np.arange(n * 4 * 4, dtype=np.uint8).reshape(n, 4, 4, 1)
    return ResidentLoader(images, np.arange(n), device=torch.device("cpu"), batch_size=3, mean=torch.zeros(1),
                          std=torch.ones(1), augment=augment, shuffle=True, seed=seed)


def test_each_epoch_visits_every_sample_once():
    loader = _loader(Augment())
    labels = torch.cat([y for _, y in loader.epoch(0)])
    assert sorted(labels.tolist()) == list(range(10))
    assert len(loader) == 4


def test_seed_makes_epochs_repeatable():
    a = [x for x, _ in _loader(Augment(flip=True, translate=1), seed=7).epoch(0)]
    b = [x for x, _ in _loader(Augment(flip=True, translate=1), seed=7).epoch(0)]
    c = [x for x, _ in _loader(Augment(flip=True, translate=1), seed=8).epoch(0)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def test_alternating_flip_mirrors_each_image_every_other_epoch():
    loader = _loader(Augment(flip=True, alternating_flip=True))
    loader.shuffle = False

    def by_label(epoch):
        return {int(y): x for xs, ys in loader.epoch(epoch) for x, y in zip(xs, ys)}

    e0, e1, e2 = by_label(0), by_label(1), by_label(2)
    for k in range(10):
        assert torch.equal(e1[k], e0[k].flip(-1))
        assert torch.equal(e2[k], e0[k])
