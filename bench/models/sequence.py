"""A recurrent classifier that reads an image as a sequence, with a prediction at every step.

`patch = 0`: one step per image row (28 steps of 28 pixels for Fashion-MNIST);
`patch = p`: one step per p x p patch in raster order (p = 2: 196 steps of 4 pixels), for
long sequences. An LSTM (`hidden` units, `layers` deep) carries the state; a linear layer
maps every step's output to class logits.

The trainer's BPTT modes (bench.train.bptt) use `sequence(x)` and `run(steps, state)`; plain
calls (evaluation, the spec table) get the last step's logits, i.e. the prediction after
the whole image. `features` (the LSTM) and `classifier` (the linear layer) are the
feature/decision split that `model.freeze` uses.
"""

from __future__ import annotations

import torch
from torch import nn

from bench.models.registry import register_model


# 3x32x32 is the input the spec table has always measured it at (the suites train it on 1x28x28)
@register_model("lstm", input_shape=(3, 32, 32), num_classes=10)
class SequenceLSTM(nn.Module):
    def __init__(self, num_classes: int, in_shape: tuple[int, int, int], hidden: int = 128, layers: int = 1,
                 patch: int = 0):
        super().__init__()
        channels, height, width = in_shape
        if patch < 0 or (patch and (height % patch or width % patch)):
            raise ValueError(f"patch {patch}: give 0 (rows) or a size that divides {height}x{width}")
        self.patch = patch
        step_size = channels * width if patch == 0 else channels * patch * patch
        self.steps = height if patch == 0 else (height // patch) * (width // patch)
        self.features = nn.LSTM(step_size, hidden, num_layers=layers, batch_first=True)
        self.classifier = nn.Linear(hidden, num_classes)

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) images -> (N, T, step features)."""
        n, c, h, w = x.shape
        if self.patch == 0:
            return x.permute(0, 2, 1, 3).reshape(n, h, c * w)
        p = self.patch
        patches = x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)  # N, H/p, W/p, C, p, p
        return patches.reshape(n, (h // p) * (w // p), c * p * p)

    def run(self, steps: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits at every step of `steps` (N, t, F) from `state` (zero when None), and the state after."""
        out, state = self.features(steps.contiguous(), state)
        return self.classifier(out), state

    def sequence_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, classes): the prediction after each step of the whole sequence."""
        return self.run(self.sequence(x))[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequence_logits(x)[:, -1]
