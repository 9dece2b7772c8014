"""The airbench-style CIFAR-10 network (Keller Jordan, "94% on CIFAR-10 in 3.29 seconds").

A frozen 2x2 patch-whitening convolution (its filters are the eigenvectors of the
training patches' covariance, scaled to unit variance, in + and - pairs), then three
conv groups (conv -> max pool -> BN -> GELU -> conv -> BN -> GELU) of widths
64/256/256, a global max pool and a linear head whose logits are scaled by 1/9.
Batch norms have a fixed unit scale (only the shift trains) and keep 60% of their
running statistics per step.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.models.registry import register_model


class _BatchNorm(nn.BatchNorm2d):
    def __init__(self, channels: int, keep: float = 0.6, eps: float = 1e-12):
        # torch's momentum is the weight of the new batch: keep 60% of the running stats.
        super().__init__(channels, eps=eps, momentum=1 - keep)
        self.weight.requires_grad = False


class _Conv(nn.Conv2d):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, kernel_size=3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        # Identity init of the first c_in filters: the group starts close to a skip path.
        with torch.no_grad():
            nn.init.dirac_(self.weight[: self.weight.size(1)])


class _ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = _Conv(c_in, c_out)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = _BatchNorm(c_out)
        self.conv2 = _Conv(c_out, c_out)
        self.norm2 = _BatchNorm(c_out)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.norm1(self.pool(self.conv1(x))))
        return self.act(self.norm2(self.conv2(x)))


@register_model("airbench", input_shape=(3, 32, 32), num_classes=10)
class AirbenchNet(nn.Module):
    def __init__(self, num_classes: int, in_shape: tuple[int, int, int], widths: tuple[int, ...] = (64, 256, 256),
                 whiten_kernel: int = 2, logit_scale: float = 1 / 9):
        super().__init__()
        channels = in_shape[0]
        whiten_width = 2 * channels * whiten_kernel ** 2
        self.whiten = nn.Conv2d(channels, whiten_width, kernel_size=whiten_kernel, padding=0, bias=True)
        self.whiten.weight.requires_grad = False  # set from data by data_init(), then frozen
        self.act = nn.GELU()
        groups = []
        c_in = whiten_width
        for width in widths:
            groups.append(_ConvGroup(c_in, width))
            c_in = width
        self.groups = nn.Sequential(*groups)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.head = nn.Linear(c_in, num_classes, bias=False)
        self.logit_scale = logit_scale

    @torch.no_grad()
    def data_init(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Whitening filters from normalized training images (N, C, H, W), float."""
        k = self.whiten.kernel_size[0]
        c = images.size(1)
        patches = images.float().unfold(2, k, 1).unfold(3, k, 1)  # N, C, H', W', k, k
        patches = patches.transpose(1, 3).reshape(-1, c * k * k)   # rows ordered (C, kh, kw) per patch
        patches = patches - patches.mean(0, keepdim=True)
        cov = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov.double())
        eigenvalues, eigenvectors = eigenvalues.flip(0).float(), eigenvectors.T.flip(0).float()
        filters = eigenvectors.reshape(c * k * k, c, k, k) / torch.sqrt(eigenvalues + eps).view(-1, 1, 1, 1)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.groups(self.act(self.whiten(x)))
        return self.head(self.pool(x).flatten(1)) * self.logit_scale


@torch.no_grad()
def whitening_filters(images: torch.Tensor, k: int, eps: float = 5e-4, chunk: int = 500) -> torch.Tensor:
    """The C*k*k eigenvectors of the covariance of the k x k patches of `images` (N, C, H, W),
    each scaled by 1/sqrt(eigenvalue + eps), largest first, as (C*k*k, C, k, k) conv filters.
    The covariance is summed over chunks of images, so 3x3 patches of 5000 CIFAR images never
    exist all at once (that would be about 0.5 GB of floats). AirbenchNet.data_init keeps its
    one-shot float32 form, so that its past results stay reproducible bit for bit."""
    c = images.size(1)
    dim = c * k * k
    total = torch.zeros(dim, dtype=torch.float64, device=images.device)
    outer = torch.zeros(dim, dim, dtype=torch.float64, device=images.device)
    count = 0
    for start in range(0, len(images), chunk):
        patches = images[start:start + chunk].float().unfold(2, k, 1).unfold(3, k, 1)  # n, C, H', W', k, k
        patches = patches.transpose(1, 3).reshape(-1, dim).double()  # rows ordered (C, kh, kw) per patch
        total += patches.sum(0)
        outer += patches.T @ patches
        count += len(patches)
    mean = total / count
    cov = outer / count - torch.outer(mean, mean)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    eigenvalues, eigenvectors = eigenvalues.flip(0).float(), eigenvectors.T.flip(0).float()
    return eigenvectors.reshape(dim, c, k, k) / torch.sqrt(eigenvalues + eps).view(-1, 1, 1, 1)
