"""Fused kernels, each beside a plain-torch reference that CPU runs and tests use.

`crop_flip_normalize` dispatches: the Triton kernel for CUDA tensors when Triton is
installed, the reference otherwise. BENCH_KERNELS=reference forces the reference
(to measure what a fusion buys); BENCH_KERNELS=triton forces Triton (on CPU that
needs TRITON_INTERPRET=1, which is how the tests run it).
"""

from __future__ import annotations

import os

import torch

from kernels.augment import crop_flip_normalize_reference, cutout_


def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def use_triton(device: torch.device) -> bool:
    choice = os.environ.get("BENCH_KERNELS", "auto")
    if choice == "reference":
        return False
    if choice == "triton":
        return _triton_available()
    return device.type == "cuda" and _triton_available()


def crop_flip_normalize(padded, indices, dy, dx, flip, mean, std, out_size, dtype=torch.float32,
                        channels_last=False) -> torch.Tensor:
    if use_triton(padded.device):
        from kernels.triton_augment import crop_flip_normalize_triton

        return crop_flip_normalize_triton(padded, indices, dy, dx, flip, mean, std, out_size, dtype, channels_last)
    return crop_flip_normalize_reference(padded, indices, dy, dx, flip, mean, std, out_size, dtype, channels_last)


__all__ = ["crop_flip_normalize", "crop_flip_normalize_reference", "cutout_", "use_triton"]
