"""The training-batch augmentation step: uint8 in, normalized float batch out.

One gather reads each output pixel once from the reflect-padded uint8 images:
crop at a per-image offset (translate), mirror per image (flip), then normalize,
cast and lay out as the trainer wants (channels-last). This plain-torch version
is the reference: CPU runs use it, and fused GPU kernels are tested against it.
"""

from __future__ import annotations

import torch


def crop_flip_normalize_reference(
    padded: torch.Tensor,      # (N, C, H + 2p, W + 2p) uint8: the whole padded training set
    indices: torch.Tensor,     # (B,) int64: which images form the batch
    dy: torch.Tensor,          # (B,) int64 in [0, 2p]: crop row offset in the padded image
    dx: torch.Tensor,          # (B,) int64 in [0, 2p]: crop column offset
    flip: torch.Tensor,        # (B,) bool: mirror left-right
    mean: torch.Tensor,        # (C,) float: per-channel mean on the 0..255 scale
    std: torch.Tensor,         # (C,) float: per-channel std on the 0..255 scale
    out_size: tuple[int, int],
    dtype: torch.dtype = torch.float32,
    channels_last: bool = False,
) -> torch.Tensor:
    height, width = out_size
    channels = padded.size(1)
    device = padded.device
    rows = dy[:, None] + torch.arange(height, device=device)                     # (B, H)
    j = torch.arange(width, device=device)
    cols = dx[:, None] + torch.where(flip[:, None], width - 1 - j, j)            # (B, W)
    batch = padded[indices[:, None, None, None],
                   torch.arange(channels, device=device)[None, :, None, None],
                   rows[:, None, :, None],
                   cols[:, None, None, :]]                                       # (B, C, H, W) uint8
    out = (batch.float() - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    out = out.to(dtype)
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


def cutout_(batch: torch.Tensor, top: torch.Tensor, left: torch.Tensor, size: int) -> torch.Tensor:
    """Zeroes (the mean, after normalization) a size x size square per image, in place."""
    height, width = batch.shape[-2:]
    rows = torch.arange(height, device=batch.device)[None, :]
    cols = torch.arange(width, device=batch.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size)              # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size)            # (B, W)
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]                 # (B, 1, H, W)
    return batch.masked_fill_(mask, 0)
