"""The Triton augmentation kernel agrees with the plain-torch reference.

On CPU this runs through Triton's interpreter (TRITON_INTERPRET=1, set before the kernel
module is imported); on a CUDA machine the same tests run the compiled kernel.
"""

import importlib
import os

import pytest
import torch

triton = pytest.importorskip("triton", reason="Triton is not installed")

pytestmark = pytest.mark.cuda  # the compiled kernel on a GPU (scripts/gpu_check.sh); the interpreter on CPU

ON_GPU = torch.cuda.is_available()
if not ON_GPU:
    os.environ["TRITON_INTERPRET"] = "1"

import kernels.triton_augment as triton_augment  # noqa: E402

triton_augment = importlib.reload(triton_augment)  # decorate under the interpreter setting above
from kernels.augment import crop_flip_normalize_reference  # noqa: E402

DEVICE = torch.device("cuda" if ON_GPU else "cpu")


def _case(n=7, c=3, size=(8, 8), pad=2, batch=5, seed=0, edges=False):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, *size), dtype=torch.uint8, generator=g)
    padded = torch.nn.functional.pad(images, (pad,) * 4, mode="reflect") if pad else images
    idx = torch.randint(0, n, (batch,), generator=g)
    if edges:  # both extreme offsets, both flips
        dy = torch.tensor([0, 2 * pad, 0, 2 * pad, pad])[:batch]
        dx = torch.tensor([0, 2 * pad, 2 * pad, 0, pad])[:batch]
        flip = torch.tensor([True, True, False, False, True])[:batch]
    else:
        dy = torch.randint(0, 2 * pad + 1, (batch,), generator=g)
        dx = torch.randint(0, 2 * pad + 1, (batch,), generator=g)
        flip = torch.rand(batch, generator=g) < 0.5
    mean = torch.rand(c, generator=g) * 255
    std = torch.rand(c, generator=g) * 60 + 10
    return [t.to(DEVICE) for t in (padded, idx, dy, dx, flip, mean, std)], size


@pytest.mark.parametrize("edges", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
def test_kernel_matches_reference(edges, dtype, channels_last):
    args, size = _case(edges=edges)
    expected = crop_flip_normalize_reference(*args, size, dtype, channels_last)
    got = triton_augment.crop_flip_normalize_triton(*args, size, dtype, channels_last)
    assert got.dtype == dtype and got.shape == expected.shape
    assert got.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(got.float(), expected.float(), rtol=tol, atol=tol)


def test_kernel_on_non_square_single_channel_without_padding():
    args, size = _case(n=4, c=1, size=(5, 7), pad=0, batch=3, seed=1)
    expected = crop_flip_normalize_reference(*args, size)
    torch.testing.assert_close(triton_augment.crop_flip_normalize_triton(*args, size), expected)


@pytest.mark.parametrize("size, batch", [((224, 224), 2), ((1100, 1000), 1)])
def test_kernel_matches_reference_on_large_images(size, batch):
    # A fixed block per program: ImageNet-sized planes and planes past a million pixels
    # (which one program per plane could not launch) come out exactly as the reference.
    args, size = _case(n=2, c=3, size=size, pad=4, batch=batch, seed=2)
    expected = crop_flip_normalize_reference(*args, size, torch.float32, True)
    got = triton_augment.crop_flip_normalize_triton(*args, size, torch.float32, True)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_batches_past_the_grid_limit_are_launched_in_slices(monkeypatch):
    monkeypatch.setattr(triton_augment, "MAX_GRID_Z", 2)
    args, size = _case(batch=5, seed=3)
    expected = crop_flip_normalize_reference(*args, size)
    torch.testing.assert_close(triton_augment.crop_flip_normalize_triton(*args, size), expected)
