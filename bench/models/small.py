"""Small classic networks: the MLP of the Keras/PyTorch MNIST examples and LeNet-5."""

from __future__ import annotations

import torch
from torch import nn


def mlp(num_classes: int, in_shape: tuple[int, int, int], hidden: tuple[int, ...] = (512, 512),
        dropout: float = 0.0) -> nn.Module:
    """784-512-512-10 with ReLU for 28x28 inputs (the classic MNIST MLP)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_shape[0] * in_shape[1] * in_shape[2]
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


class LeNet5(nn.Module):
    """LeCun et al. 1998: two 5x5 conv layers with average pooling, then 120-84-classes.

    The original expects 32x32 inputs; smaller inputs (28x28 MNIST) are zero-padded
    by the first convolution so the feature map sizes stay those of the paper.
    """

    def __init__(self, num_classes: int, in_shape: tuple[int, int, int]):
        super().__init__()
        channels, height, _ = in_shape
        pad = max(0, (32 - height) // 2)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=pad), nn.Tanh(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),
        )
        side = (height + 2 * pad - 4) // 2
        side = (side - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * side * side, 120), nn.Tanh(),
            nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
