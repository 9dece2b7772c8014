"""ResNet-9, the DAWNBench CIFAR-10 network of David Page ("How to train your ResNet").

prep(64) -> layer1(128, pool) + residual(2 x 128) -> layer2(256, pool)
-> layer3(512, pool) + residual(2 x 512) -> global max pool -> linear, logits scaled by 1/8.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(c_in: int, c_out: int, pool: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                               nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    def __init__(self, num_classes: int, in_shape: tuple[int, int, int], widths: tuple[int, ...] = (64, 128, 256, 512),
                 logit_scale: float = 0.125):
        super().__init__()
        w0, w1, w2, w3 = widths
        self.features = nn.Sequential(
            _conv_bn(in_shape[0], w0),
            _conv_bn(w0, w1, pool=True), _Residual(w1),
            _conv_bn(w1, w2, pool=True),
            _conv_bn(w2, w3, pool=True), _Residual(w3),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(w3, num_classes, bias=False)
        self.logit_scale = logit_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x)) * self.logit_scale
