"""Small classic networks: the MLP of the Keras/PyTorch MNIST examples and LeNet-5."""

from __future__ import annotations

import torch
from torch import nn

from bench.models.registry import register_model


@register_model("lenet5", input_shape=(1, 32, 32), num_classes=10)
class LeNet5(nn.Module):
    """LeCun et al. 1998: two 5x5 conv layers with pooling, then 120-84-classes.

    The original expects 32x32 inputs; smaller inputs (28x28 MNIST) are zero-padded
    by the first convolution so the feature map sizes stay those of the paper.
    `activation` and `pool` pick the paper's tanh and average pooling (the default) or
    the ReLU and max pooling of the form most framework tutorials train on CIFAR-10;
    the parameter count is the same either way.
    """

    def __init__(self, num_classes: int, in_shape: tuple[int, int, int], activation: str = "tanh",
                 pool: str = "avg"):
        super().__init__()
        acts = {"tanh": nn.Tanh, "relu": nn.ReLU}
        pools = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}
        if activation not in acts:
            raise ValueError(f"activation {activation!r}: choose tanh or relu")
        if pool not in pools:
            raise ValueError(f"pool {pool!r}: choose avg or max")
        act, pool_layer = acts[activation], pools[pool]
        channels, height, _ = in_shape
        pad = max(0, (32 - height) // 2)
        self.features = nn.Sequential(
            nn.Conv2d(channels, 6, 5, padding=pad), act(), pool_layer(2),
            nn.Conv2d(6, 16, 5), act(), pool_layer(2),
        )
        side = (height + 2 * pad - 4) // 2
        side = (side - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * side * side, 120), act(),
            nn.Linear(120, 84), act(), nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("mlp", input_shape=(1, 28, 28), num_classes=10)
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
