"""Fused training-batch augmentation as a Triton kernel.

The same op as kernels.augment.crop_flip_normalize (the reference): per output pixel,
one uint8 read from the reflect-padded training set at the crop offset (mirrored
column when flipped), normalize, cast, and one write into the output in whatever
layout its strides say (channels-last for the trainer).

Grid: (pixel blocks of one plane, channel, image), a fixed BLOCK of pixels a program.
A fixed block keeps registers constant whatever the image size: one program per whole
plane (a block of next_power_of_2(H * W)) spilled at 224x224 and could not launch past
about a million pixels. Images go on the grid's last axis, which CUDA caps at 65,535,
so larger batches are launched in slices.

It runs on CUDA tensors, and on CPU tensors under TRITON_INTERPRET=1, which is how CI
checks it against the reference.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

BLOCK = 1024          # pixels a program: 4 warps x 32 threads x 8 pixels each
MAX_GRID_Z = 65_535   # CUDA's limit on the grid's y and z extents


@triton.jit
def _crop_flip_normalize_kernel(
    src_ptr, idx_ptr, dy_ptr, dx_ptr, flip_ptr, mean_ptr, inv_std_ptr, out_ptr,
    height, width,
    src_sn, src_sc, src_sh, src_sw,
    out_sn, out_sc, out_sh, out_sw,
    BLOCK: tl.constexpr,
):
    block = tl.program_id(0)
    c = tl.program_id(1)
    b = tl.program_id(2)
    image = tl.load(idx_ptr + b).to(tl.int64)  # int64 offsets: a large set passes 2**31 bytes
    dy = tl.load(dy_ptr + b)
    dx = tl.load(dx_ptr + b)
    flip = tl.load(flip_ptr + b)
    mean = tl.load(mean_ptr + c)
    inv_std = tl.load(inv_std_ptr + c)
    offs = block * BLOCK + tl.arange(0, BLOCK)
    mask = offs < height * width
    row = offs // width
    col = offs % width
    src_col = dx + tl.where(flip != 0, width - 1 - col, col)
    src = src_ptr + image * src_sn + c * src_sc + (dy + row) * src_sh + src_col * src_sw
    pixel = tl.load(src, mask=mask, other=0).to(tl.float32)
    value = (pixel - mean) * inv_std
    dst = out_ptr + b.to(tl.int64) * out_sn + c * out_sc + row * out_sh + col * out_sw
    tl.store(dst, value.to(out_ptr.dtype.element_ty), mask=mask)


def crop_flip_normalize_triton(padded: torch.Tensor, indices: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor,
                               flip: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, out_size: tuple[int, int],
                               dtype: torch.dtype = torch.float32, channels_last: bool = False) -> torch.Tensor:
    height, width = out_size
    batch, channels = indices.numel(), padded.size(1)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty(batch, channels, height, width, dtype=dtype, device=padded.device, memory_format=memory)
    if batch == 0:
        return out
    inv_std = (1.0 / std.float()).contiguous()
    mean = mean.float().contiguous()
    indices, dy, dx = indices.contiguous(), dy.contiguous(), dx.contiguous()
    flip = flip.to(torch.int8).contiguous()
    blocks = triton.cdiv(height * width, BLOCK)
    for start in range(0, batch, MAX_GRID_Z):
        end = min(start + MAX_GRID_Z, batch)
        _crop_flip_normalize_kernel[(blocks, channels, end - start)](
            padded, indices[start:end], dy[start:end], dx[start:end], flip[start:end], mean, inv_std, out[start:end],
            height, width,
            *padded.stride(), *out.stride(),
            BLOCK=BLOCK,
        )
    return out
