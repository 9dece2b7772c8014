"""ResNet-9, the DAWNBench CIFAR-10 network of David Page ("How to train your ResNet").

prep(64) -> layer1(128, pool) + residual(2 x 128) -> layer2(256, pool)
-> layer3(512, pool) + residual(2 x 512) -> global max pool -> linear, logits scaled by 1/8.

The options are the "bag of tricks" of the series' last post, each off by default so the
plain network stays the 24-epoch DAWNBench entry:
- `activation = "celu"`: a smooth ReLU (CELU with `celu_alpha`);
- `ghost_batch = 32`: batch norm statistics over groups of 32 images while training
  (running statistics and evaluation as usual);
- `freeze_bn_scale = true`: batch norm scales fixed at `bn_scale` (only the shifts train);
- `whiten = true`: the prep layer becomes a frozen 3x3 patch-whitening convolution set from
  the training data (the airbench net's `data_init`, 2 * 27 filters in + and - pairs) and a
  trained 1x1 conv-BN to 64 channels.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.models.airbench import whitening_filters
from bench.models.registry import register_model


class GhostBatchNorm(nn.BatchNorm2d):
    """Batch norm whose training statistics come from groups of `ghost` images (Hoffer et al.
    2017): smaller groups add noise that regularizes like a small batch, while the optimizer
    still steps on the whole batch. Running statistics average the groups' statistics."""

    def __init__(self, channels: int, ghost: int, **kwargs):
        super().__init__(channels, **kwargs)
        self.ghost = ghost

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.size(0)
        if not self.training or n <= self.ghost:
            return super().forward(x)
        if n % self.ghost:
            raise ValueError(f"ghost batch norm: a batch of {n} does not split into groups of {self.ghost}; "
                             "make recipe.batch_size a multiple of model.args.ghost_batch")
        groups = n // self.ghost
        c = x.size(1)
        xs = x.float().reshape(groups, self.ghost, c, *x.shape[2:])
        dims = (1, *range(3, xs.dim()))
        mean = xs.mean(dims, keepdim=True)
        var = xs.var(dims, unbiased=False, keepdim=True)
        y = ((xs - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)
        shape = (1, c) + (1,) * (x.dim() - 2)
        if self.weight is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        with torch.no_grad():
            count = self.ghost * xs[0, 0, 0].numel()
            unbiased = var.mean(0).flatten() * count / max(count - 1, 1)
            self.running_mean.lerp_(mean.mean(0).flatten().to(self.running_mean), self.momentum)
            self.running_var.lerp_(unbiased.to(self.running_var), self.momentum)
            self.num_batches_tracked.add_(1)
        return y.to(x.dtype)


class _Options:
    def __init__(self, activation: str, celu_alpha: float, ghost_batch: int, freeze_bn_scale: bool,
                 bn_scale: float):
        if activation not in ("relu", "celu"):
            raise ValueError(f"activation {activation!r}: choose relu or celu")
        if ghost_batch < 0:
            raise ValueError(f"ghost_batch {ghost_batch}: give 0 (off) or a group size")
        self.activation, self.celu_alpha, self.ghost_batch = activation, celu_alpha, ghost_batch
        self.freeze_bn_scale, self.bn_scale = freeze_bn_scale, bn_scale

    def act(self) -> nn.Module:
        return nn.CELU(self.celu_alpha) if self.activation == "celu" else nn.ReLU(inplace=True)

    def norm(self, channels: int) -> nn.BatchNorm2d:
        bn = GhostBatchNorm(channels, self.ghost_batch) if self.ghost_batch else nn.BatchNorm2d(channels)
        nn.init.constant_(bn.weight, self.bn_scale)
        bn.weight.requires_grad = not self.freeze_bn_scale
        return bn

    def conv_bn(self, c_in: int, c_out: int, pool: bool = False, kernel: int = 3) -> nn.Sequential:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                                   self.norm(c_out), self.act()]
        if pool:
            # pool after the activation, as in the DAWNBench code's order (conv, BN, ReLU, pool)
            layers.append(nn.MaxPool2d(2))
        return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, channels: int, options: _Options):
        super().__init__()
        self.body = nn.Sequential(options.conv_bn(channels, channels), options.conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    def __init__(self, num_classes: int, in_shape: tuple[int, int, int], widths: tuple[int, ...] = (64, 128, 256, 512),
                 logit_scale: float = 0.125, activation: str = "relu", celu_alpha: float = 0.075,
                 ghost_batch: int = 0, freeze_bn_scale: bool = False, bn_scale: float = 1.0, whiten: bool = False):
        super().__init__()
        options = _Options(activation, celu_alpha, ghost_batch, freeze_bn_scale, bn_scale)
        w0, w1, w2, w3 = widths
        channels = in_shape[0]
        if whiten:
            # 3x3 patches of C channels: C*9 eigenvectors, each kept with its negative (so a
            # following ReLU/CELU passes both signs), then a learned 1x1 mix down to w0.
            self.whiten = nn.Conv2d(channels, 2 * channels * 9, 3, padding=1, bias=False)
            self.whiten.weight.requires_grad = False  # set from data by data_init(), then frozen
            prep: nn.Module = nn.Sequential(self.whiten, options.conv_bn(2 * channels * 9, w0, kernel=1))
        else:
            prep = options.conv_bn(channels, w0)
        self.features = nn.Sequential(
            prep,
            options.conv_bn(w0, w1, pool=True), _Residual(w1, options),
            options.conv_bn(w1, w2, pool=True),
            options.conv_bn(w2, w3, pool=True), _Residual(w3, options),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(w3, num_classes, bias=False)
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)) * self.logit_scale


class WhitenedResNet9(ResNet9):
    """ResNet-9 with the patch-whitening prep: a class of its own because the trainer finds the
    data-dependent init by the presence of `data_init`."""

    @torch.no_grad()
    def data_init(self, images: torch.Tensor) -> None:
        filters = whitening_filters(images, 3)
        self.whiten.weight.copy_(torch.cat([filters, -filters]).to(self.whiten.weight))


@register_model("resnet9", input_shape=(3, 32, 32), num_classes=10)
def resnet9(num_classes: int, in_shape: tuple[int, int, int], widths: tuple[int, ...] = (64, 128, 256, 512),
            logit_scale: float = 0.125, activation: str = "relu", celu_alpha: float = 0.075, ghost_batch: int = 0,
            freeze_bn_scale: bool = False, bn_scale: float = 1.0, whiten: bool = False) -> ResNet9:
    """The registry's constructor: the plain or the whitened class, with the same options."""
    cls = WhitenedResNet9 if whiten else ResNet9
    return cls(num_classes, in_shape, widths, logit_scale, activation, celu_alpha, ghost_batch, freeze_bn_scale,
               bn_scale, whiten)
