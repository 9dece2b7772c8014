"""Classic ImageNet networks, defined here in plain ``torch.nn`` (no torchvision).

The architectures match torchvision's (``torchvision.models``) layer for layer, so
with 1000 classes and 3 input channels the parameter counts are torchvision's
published ones exactly (see the table in ``tests/test_zoo.py``). Module names and
nesting are this project's own, so torchvision state dicts do not load as is.

Every constructor is registered (``bench.models.registry``) with its usual input
(3x224x224; 3x299x299 for inception_v3; 3x32x32 for tiny) and classes (1000; 10 for
tiny), takes the registry's one signature ``(num_classes, in_shape, **options)`` and
returns a module whose forward gives logits of shape ``(batch, num_classes)``. The one
exception is ``inception_v3`` in *train* mode, which (like torchvision) returns the tuple ``(logits, aux_logits)`` while its
auxiliary head is enabled; in eval mode it returns logits only.

Each model has two attributes for the network specification table:

* ``model.features``   -- the feature-extraction layers (an ``nn.Module``);
* ``model.classifier`` -- the decision head (an ``nn.Module``).

``inception_v3`` also has ``model.aux_head`` (``None`` with ``aux_logits=False``).

How layers are counted (:func:`layer_counts`)
---------------------------------------------
Layers are counted by module, mechanically, so one rule serves every network:

* **feature layers** = the number of ``nn.Conv2d`` modules outside the decision
  head -- every convolution counts once, including 1x1 bottleneck/projection
  convs, ResNet's downsample (shortcut) 1x1 convs, depthwise convs, DenseNet
  transition convs and every branch of an Inception block;
* **decision layers** = the number of ``nn.Linear`` modules plus the
  ``nn.Conv2d`` modules inside ``model.classifier`` (SqueezeNet's final 1x1 conv
  classifier counts as a decision layer);
* inception_v3's auxiliary head (``model.aux_head``) is excluded: only the main
  path is counted.

Pooling, normalization, activation and dropout layers are not counted. So
``layer_counts(resnet18(1000, (3, 224, 224))) == (20, 1)``: the "18" in the name counts the 17
convolutions on the main path plus the fc layer; the 3 downsample shortcut
convolutions bring the module count to 20. Likewise resnet34 is (36, 1) and
resnet50 (53, 1). vgg16 is (13, 3), alexnet (5, 3), tiny (2, 2).

Notes on fidelity to torchvision
--------------------------------
* googlenet is built without the two auxiliary heads (as torchvision's published
  weights are) and, like torchvision, its "5x5" Inception branch uses a 3x3 conv.
  No ``transform_input`` re-normalisation is applied (torchvision's default for
  untrained models) in googlenet or inception_v3.
* resnet50 is "v1.5": the bottleneck's stride sits on the 3x3 conv.
* Initialisation follows each torchvision model's scheme (kaiming-normal,
  fan_out for VGG/ResNet/MobileNetV2 convs; truncated normal for the Inception
  nets; kaiming-uniform + N(0, 0.01) classifier conv for SqueezeNet; PyTorch
  defaults for AlexNet). Big ``nn.Linear`` layers are allocated uninitialised
  and initialised once, so vgg16 builds in 1-2 s on 2 CPU cores.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from bench.models.registry import register_model

__all__ = [
    "layer_counts",
    "alexnet", "vgg16", "googlenet", "inception_v3", "resnet18", "resnet34", "resnet50",
    "densenet121", "squeezenet1_1", "mobilenet_v2", "tiny",
]


# ----------------------------------------------------------------------------- helpers

def _linear(in_features: int, out_features: int, std: float | None = None) -> nn.Linear:
    """A Linear layer initialised exactly once.

    ``std=None`` keeps PyTorch's default initialisation; otherwise weights are
    N(0, std) and the bias zero. Memory is allocated without the default
    initialisation pass first (it would be thrown away), which halves the cost
    for vgg16's 100M-weight first fc layer.
    """
    layer = nn.utils.skip_init(nn.Linear, in_features, out_features)
    if std is None:
        layer.reset_parameters()
    else:
        nn.init.normal_(layer.weight, 0.0, std)
        nn.init.zeros_(layer.bias)
    return layer


def _init_bn(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _kaiming_convs(module: nn.Module, mode: str = "fan_out") -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _ConvBN(nn.Sequential):
    """Bias-free conv, batch norm, then an optional activation (the Inception nets' BasicConv2d
    uses eps=1e-3; ResNet-style and MobileNet blocks use the BatchNorm default 1e-5)."""

    def __init__(self, cin: int, cout: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0, groups: int = 1, eps: float = 1e-5,
                 act: type[nn.Module] | None = nn.ReLU):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=eps),
        ]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


def _check(num_classes: int, in_channels: int) -> None:
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if in_channels < 1:
        raise ValueError(f"in_channels must be >= 1, got {in_channels}")


# ----------------------------------------------------------------------------- AlexNet

class AlexNet(nn.Module):
    """Krizhevsky et al. 2012, in the one-GPU form of torchvision (64-192-384-256-256 channels)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        _check(num_classes, in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), _linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), _linear(4096, 4096), nn.ReLU(inplace=True),
            _linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("alexnet", input_shape=(3, 224, 224), num_classes=1000, family="zoo")
def alexnet(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """AlexNet: 5 conv + 3 fc layers, 61,100,840 parameters at 1000 classes."""
    return AlexNet(num_classes, in_shape[0])


# ----------------------------------------------------------------------------- VGG

_VGG16_PLAN: Sequence[int | str] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                                    512, 512, 512, "M", 512, 512, 512, "M")


class VGG(nn.Module):
    """Simonyan & Zisserman 2014 (configuration D for VGG-16), without batch norm."""

    def __init__(self, plan: Sequence[int | str], num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.5):
        super().__init__()
        _check(num_classes, in_channels)
        layers: list[nn.Module] = []
        width = in_channels
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(width, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                width = int(item)
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            _linear(width * 7 * 7, 4096, std=0.01), nn.ReLU(inplace=True), nn.Dropout(dropout),
            _linear(4096, 4096, std=0.01), nn.ReLU(inplace=True), nn.Dropout(dropout),
            _linear(4096, num_classes, std=0.01),
        )
        _kaiming_convs(self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("vgg16", input_shape=(3, 224, 224), num_classes=1000, family="zoo")
def vgg16(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """VGG-16 (no batch norm): 13 conv + 3 fc layers, 138,357,544 parameters at 1000 classes."""
    return VGG(_VGG16_PLAN, num_classes, in_shape[0])


# ----------------------------------------------------------------------------- GoogLeNet

class _GoogLeNetBlock(nn.Module):
    """Inception module of GoogLeNet: 1x1 | 1x1->3x3 | 1x1->3x3 ("5x5" branch) | pool->1x1."""

    def __init__(self, cin: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int, pool_proj: int):
        super().__init__()
        bn = dict(eps=1e-3)
        self.branch1 = _ConvBN(cin, c1, 1, **bn)
        self.branch2 = nn.Sequential(_ConvBN(cin, c3_reduce, 1, **bn), _ConvBN(c3_reduce, c3, 3, padding=1, **bn))
        # torchvision (and hence its weights and parameter count) uses 3x3 here, not the paper's 5x5
        self.branch3 = nn.Sequential(_ConvBN(cin, c5_reduce, 1, **bn), _ConvBN(c5_reduce, c5, 3, padding=1, **bn))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, padding=1, ceil_mode=True), _ConvBN(cin, pool_proj, 1, **bn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """Szegedy et al. 2014 with batch norm, as in torchvision, without the auxiliary classifiers."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2):
        super().__init__()
        _check(num_classes, in_channels)
        bn = dict(eps=1e-3)
        block = _GoogLeNetBlock
        self.features = nn.Sequential(OrderedDict([
            ("conv1", _ConvBN(in_channels, 64, 7, stride=2, padding=3, **bn)),
            ("pool1", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("conv2", _ConvBN(64, 64, 1, **bn)),
            ("conv3", _ConvBN(64, 192, 3, padding=1, **bn)),
            ("pool2", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("inception3a", block(192, 64, 96, 128, 16, 32, 32)),
            ("inception3b", block(256, 128, 128, 192, 32, 96, 64)),
            ("pool3", nn.MaxPool2d(3, 2, ceil_mode=True)),
            ("inception4a", block(480, 192, 96, 208, 16, 48, 64)),
            ("inception4b", block(512, 160, 112, 224, 24, 64, 64)),
            ("inception4c", block(512, 128, 128, 256, 24, 64, 64)),
            ("inception4d", block(512, 112, 144, 288, 32, 64, 64)),
            ("inception4e", block(528, 256, 160, 320, 32, 128, 128)),
            ("pool4", nn.MaxPool2d(2, 2, ceil_mode=True)),
            ("inception5a", block(832, 256, 160, 320, 32, 128, 128)),
            ("inception5b", block(832, 384, 192, 384, 48, 128, 128)),
        ]))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), _linear(1024, num_classes))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        _init_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("googlenet", input_shape=(3, 224, 224), num_classes=1000, family="zoo")
def googlenet(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """GoogLeNet / Inception v1 (batch-norm variant, no aux heads): 6,624,904 parameters at 1000 classes."""
    return GoogLeNet(num_classes, in_shape[0])


# ----------------------------------------------------------------------------- Inception v3

def _bc(cin: int, cout: int, kernel_size: int | tuple[int, int], stride: int = 1,
        padding: int | tuple[int, int] = 0) -> _ConvBN:
    return _ConvBN(cin, cout, kernel_size, stride=stride, padding=padding, eps=1e-3)


class _InceptionA(nn.Module):  # 35x35 grid: 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | avgpool->1x1
    def __init__(self, cin: int, pool_features: int):
        super().__init__()
        self.b1 = _bc(cin, 64, 1)
        self.b5 = nn.Sequential(_bc(cin, 48, 1), _bc(48, 64, 5, padding=2))
        self.b3 = nn.Sequential(_bc(cin, 64, 1), _bc(64, 96, 3, padding=1), _bc(96, 96, 3, padding=1))
        self.bp = nn.Sequential(nn.AvgPool2d(3, 1, padding=1), _bc(cin, pool_features, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b5(x), self.b3(x), self.bp(x)], 1)


class _InceptionB(nn.Module):  # grid reduction 35 -> 17
    def __init__(self, cin: int):
        super().__init__()
        self.b3 = _bc(cin, 384, 3, stride=2)
        self.b3dbl = nn.Sequential(_bc(cin, 64, 1), _bc(64, 96, 3, padding=1), _bc(96, 96, 3, stride=2))
        self.bp = nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3(x), self.b3dbl(x), self.bp(x)], 1)


class _InceptionC(nn.Module):  # 17x17 grid with factorised 7x7 convolutions
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.b1 = _bc(cin, 192, 1)
        self.b7 = nn.Sequential(_bc(cin, c7, 1), _bc(c7, c7, (1, 7), padding=(0, 3)),
                                _bc(c7, 192, (7, 1), padding=(3, 0)))
        self.b7dbl = nn.Sequential(_bc(cin, c7, 1),
                                   _bc(c7, c7, (7, 1), padding=(3, 0)), _bc(c7, c7, (1, 7), padding=(0, 3)),
                                   _bc(c7, c7, (7, 1), padding=(3, 0)), _bc(c7, 192, (1, 7), padding=(0, 3)))
        self.bp = nn.Sequential(nn.AvgPool2d(3, 1, padding=1), _bc(cin, 192, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b7(x), self.b7dbl(x), self.bp(x)], 1)


class _InceptionD(nn.Module):  # grid reduction 17 -> 8
    def __init__(self, cin: int):
        super().__init__()
        self.b3 = nn.Sequential(_bc(cin, 192, 1), _bc(192, 320, 3, stride=2))
        self.b7x3 = nn.Sequential(_bc(cin, 192, 1), _bc(192, 192, (1, 7), padding=(0, 3)),
                                  _bc(192, 192, (7, 1), padding=(3, 0)), _bc(192, 192, 3, stride=2))
        self.bp = nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3(x), self.b7x3(x), self.bp(x)], 1)


class _InceptionE(nn.Module):  # 8x8 grid with expanded 1x3 / 3x1 filter banks
    def __init__(self, cin: int):
        super().__init__()
        self.b1 = _bc(cin, 320, 1)
        self.b3_in = _bc(cin, 384, 1)
        self.b3_a = _bc(384, 384, (1, 3), padding=(0, 1))
        self.b3_b = _bc(384, 384, (3, 1), padding=(1, 0))
        self.b3dbl_in = nn.Sequential(_bc(cin, 448, 1), _bc(448, 384, 3, padding=1))
        self.b3dbl_a = _bc(384, 384, (1, 3), padding=(0, 1))
        self.b3dbl_b = _bc(384, 384, (3, 1), padding=(1, 0))
        self.bp = nn.Sequential(nn.AvgPool2d(3, 1, padding=1), _bc(cin, 192, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y3 = self.b3_in(x)
        yd = self.b3dbl_in(x)
        return torch.cat([self.b1(x), self.b3_a(y3), self.b3_b(y3), self.b3dbl_a(yd), self.b3dbl_b(yd),
                          self.bp(x)], 1)


class _InceptionAux(nn.Module):
    """Auxiliary classifier on the 17x17 grid (needs that grid to be at least 17x17)."""

    def __init__(self, cin: int, num_classes: int):
        super().__init__()
        self.pool = nn.AvgPool2d(5, stride=3)
        self.conv0 = _bc(cin, 128, 1)
        self.conv1 = _bc(128, 768, 5)
        self.fc = nn.Linear(768, num_classes)
        self.conv1[0].stddev = 0.01  # type: ignore[assignment]  # read by InceptionV3's initialiser
        self.fc.stddev = 0.001  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(self.pool(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class InceptionV3(nn.Module):
    """Szegedy et al. 2015 ("Rethinking the Inception Architecture"), as in torchvision.

    Output: in eval mode, or with ``aux_logits=False``, the main logits only. In train
    mode with the auxiliary head (the default), the tuple ``(logits, aux_logits)``,
    both ``(batch, num_classes)``, as torchvision's ``InceptionOutputs`` (a plain tuple
    here). Inputs must be at least 75x75; in train mode with the auxiliary head they
    must be at least 299x299 (its 5x5/3 pool then 5x5 conv need the 17x17 grid after
    ``Mixed_6e``), as in torchvision. The usual size is 299x299.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = True,
                 dropout: float = 0.5):
        super().__init__()
        _check(num_classes, in_channels)
        self.features = nn.Sequential(OrderedDict([
            ("Conv2d_1a_3x3", _bc(in_channels, 32, 3, stride=2)),
            ("Conv2d_2a_3x3", _bc(32, 32, 3)),
            ("Conv2d_2b_3x3", _bc(32, 64, 3, padding=1)),
            ("maxpool1", nn.MaxPool2d(3, 2)),
            ("Conv2d_3b_1x1", _bc(64, 80, 1)),
            ("Conv2d_4a_3x3", _bc(80, 192, 3)),
            ("maxpool2", nn.MaxPool2d(3, 2)),
            ("Mixed_5b", _InceptionA(192, 32)),
            ("Mixed_5c", _InceptionA(256, 64)),
            ("Mixed_5d", _InceptionA(288, 64)),
            ("Mixed_6a", _InceptionB(288)),
            ("Mixed_6b", _InceptionC(768, 128)),
            ("Mixed_6c", _InceptionC(768, 160)),
            ("Mixed_6d", _InceptionC(768, 160)),
            ("Mixed_6e", _InceptionC(768, 192)),
            ("Mixed_7a", _InceptionD(768)),
            ("Mixed_7b", _InceptionE(1280)),
            ("Mixed_7c", _InceptionE(2048)),
        ]))
        self.aux_head = _InceptionAux(768, num_classes) if aux_logits else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), _linear(2048, num_classes))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=float(getattr(m, "stddev", 0.1)), a=-2, b=2)
        _init_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        aux = None
        for name, layer in self.features.named_children():
            x = layer(x)
            if name == "Mixed_6e" and self.training and self.aux_head is not None:
                aux = self.aux_head(x)
        logits = self.classifier(torch.flatten(self.pool(x), 1))
        return (logits, aux) if aux is not None else logits


@register_model("inception_v3", input_shape=(3, 299, 299), num_classes=1000, family="zoo")
def inception_v3(num_classes: int, in_shape: tuple[int, int, int], aux_logits: bool = True) -> nn.Module:
    """Inception v3: 27,161,264 parameters at 1000 classes with the aux head (the default).

    Eval mode returns logits; train mode returns ``(logits, aux_logits)`` unless
    ``aux_logits=False``. See :class:`InceptionV3` for input sizes.
    """
    return InceptionV3(num_classes, in_shape[0], aux_logits=aux_logits)


# ----------------------------------------------------------------------------- ResNet

class _Residual(nn.Module):
    """relu(body(x) + shortcut(x)); the shortcut is a strided 1x1 conv + BN where the shape changes."""
    expansion = 1

    def __init__(self, body: nn.Module, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = body
        self.shortcut = (_ConvBN(cin, cout, 1, stride=stride, act=None)
                         if stride != 1 or cin != cout else nn.Identity())
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class _BasicBlock(_Residual):
    """Two 3x3 convs (ResNet-18/34)."""
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        cout = planes * self.expansion
        super().__init__(nn.Sequential(
            _ConvBN(cin, planes, 3, stride=stride, padding=1),
            _ConvBN(planes, cout, 3, padding=1, act=None),
        ), cin, cout, stride)


class _Bottleneck(_Residual):
    """1x1 reduce, 3x3 (carrying the stride: ResNet v1.5), 1x1 expand by 4 (ResNet-50)."""
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        cout = planes * self.expansion
        super().__init__(nn.Sequential(
            _ConvBN(cin, planes, 1),
            _ConvBN(planes, planes, 3, stride=stride, padding=1),
            _ConvBN(planes, cout, 1, act=None),
        ), cin, cout, stride)


class ResNet(nn.Module):
    """He et al. 2015, ImageNet form: 7x7 stem, max pool, four stages (64/128/256/512 planes).

    `small_input=True` is the common form for 32x32 images: a 3x3 stride-1 stem and no max
    pool, so the four stages see 32/16/8/4 pixels instead of a 1x1 map after the stem's 32x
    downsampling."""

    def __init__(self, block: type[_BasicBlock] | type[_Bottleneck], depths: Sequence[int], num_classes: int = 1000,
                 in_channels: int = 3, small_input: bool = False):
        super().__init__()
        _check(num_classes, in_channels)
        stages: list[tuple[str, nn.Module]] = [
            ("stem", _ConvBN(in_channels, 64, 3, padding=1)),
        ] if small_input else [
            ("stem", _ConvBN(in_channels, 64, 7, stride=2, padding=3)),
            ("maxpool", nn.MaxPool2d(3, 2, padding=1)),
        ]
        width = 64
        for i, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(width, planes, stride=2 if (i > 0 and j == 0) else 1))
                width = planes * block.expansion
            stages.append((f"layer{i + 1}", nn.Sequential(*blocks)))
        self.features = nn.Sequential(OrderedDict(stages))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = _linear(width, num_classes)
        _kaiming_convs(self.features)
        _init_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("resnet18", input_shape=(3, 224, 224), num_classes=1000, family="zoo")
def resnet18(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """ResNet-18: 11,689,512 parameters at 1000 classes."""
    return ResNet(_BasicBlock, (2, 2, 2, 2), num_classes, in_shape[0])


@register_model("resnet34", input_shape=(3, 224, 224), num_classes=1000, family="zoo")
def resnet34(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """ResNet-34: 21,797,672 parameters at 1000 classes."""
    return ResNet(_BasicBlock, (3, 4, 6, 3), num_classes, in_shape[0])


@register_model("resnet34_cifar", input_shape=(3, 32, 32), num_classes=10)
def resnet34_cifar(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """ResNet-34 for 32x32 inputs (3x3 stem, no max pool): 21,282,122 parameters at 10 classes."""
    return ResNet(_BasicBlock, (3, 4, 6, 3), num_classes, in_shape[0], small_input=True)


@register_model("resnet50", input_shape=(3, 224, 224), num_classes=1000, family="zoo")
def resnet50(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """ResNet-50 (v1.5, bottleneck blocks): 25,557,032 parameters at 1000 classes."""
    return ResNet(_Bottleneck, (3, 4, 6, 3), num_classes, in_shape[0])


# ----------------------------------------------------------------------------- DenseNet

class _DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (to bn_size*growth) - BN-ReLU-3x3 conv (to growth); output concatenated to input."""

    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(inplace=True), nn.Conv2d(cin, bn_size * growth, 1, bias=False),
            nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True),
            nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


class DenseNet(nn.Module):
    """Huang et al. 2016 (DenseNet-BC), as in torchvision (no dropout, no memory-efficient checkpointing)."""

    def __init__(self, growth: int = 32, blocks: Sequence[int] = (6, 12, 24, 16), init_features: int = 64,
                 bn_size: int = 4, num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        _check(num_classes, in_channels)
        layers: list[tuple[str, nn.Module]] = [
            ("conv0", nn.Conv2d(in_channels, init_features, 7, stride=2, padding=3, bias=False)),
            ("norm0", nn.BatchNorm2d(init_features)),
            ("relu0", nn.ReLU(inplace=True)),
            ("pool0", nn.MaxPool2d(3, 2, padding=1)),
        ]
        width = init_features
        for i, n in enumerate(blocks):
            dense = []
            for _ in range(n):
                dense.append(_DenseLayer(width, growth, bn_size))
                width += growth
            layers.append((f"denseblock{i + 1}", nn.Sequential(*dense)))
            if i != len(blocks) - 1:
                layers.append((f"transition{i + 1}", nn.Sequential(
                    nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.Conv2d(width, width // 2, 1, bias=False),
                    nn.AvgPool2d(2, 2),
                )))
                width //= 2
        layers += [("norm5", nn.BatchNorm2d(width)), ("relu5", nn.ReLU(inplace=True))]
        self.features = nn.Sequential(OrderedDict(layers))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
        _init_bn(self)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("densenet121", input_shape=(3, 224, 224), num_classes=1000, family="zoo")
def densenet121(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """DenseNet-121 (growth 32, blocks 6-12-24-16): 7,978,856 parameters at 1000 classes."""
    return DenseNet(32, (6, 12, 24, 16), 64, 4, num_classes, in_shape[0])


# ----------------------------------------------------------------------------- SqueezeNet

class _Fire(nn.Module):
    """1x1 squeeze, then 1x1 and 3x3 expand filters side by side."""

    def __init__(self, cin: int, squeeze: int, expand1: int, expand3: int):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.ReLU(inplace=True))
        self.expand1 = nn.Sequential(nn.Conv2d(squeeze, expand1, 1), nn.ReLU(inplace=True))
        self.expand3 = nn.Sequential(nn.Conv2d(squeeze, expand3, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], 1)


class SqueezeNet(nn.Module):
    """Iandola et al. 2016, version 1.1: the classifier is a 1x1 conv followed by global average pooling."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        _check(num_classes, in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            _Fire(64, 16, 64, 64), _Fire(128, 16, 64, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            _Fire(128, 32, 128, 128), _Fire(256, 32, 128, 128),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            _Fire(256, 48, 192, 192), _Fire(384, 48, 192, 192),
            _Fire(384, 64, 256, 256), _Fire(512, 64, 256, 256),
        )
        final = nn.Conv2d(512, num_classes, 1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), final, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final:
                    nn.init.normal_(m.weight, 0.0, 0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.classifier(self.features(x)), 1)


@register_model("squeezenet1_1", input_shape=(3, 224, 224), num_classes=1000, family="zoo")
def squeezenet1_1(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """SqueezeNet 1.1: 1,235,496 parameters at 1000 classes; the decision layer is a 1x1 conv."""
    return SqueezeNet(num_classes, in_shape[0])


# ----------------------------------------------------------------------------- MobileNetV2

def _make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never going more than 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class _InvertedResidual(nn.Module):
    """1x1 expand (skipped when the ratio is 1), 3x3 depthwise, 1x1 linear projection; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = int(round(cin * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_ConvBN(cin, hidden, 1, act=nn.ReLU6))
        layers += [
            _ConvBN(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, act=nn.ReLU6),
            _ConvBN(hidden, cout, 1, act=None),
        ]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    """Sandler et al. 2018 at width multiplier 1.0, as in torchvision."""

    # expansion t, output channels c, repeats n, first stride s
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.2):
        super().__init__()
        _check(num_classes, in_channels)
        width = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        layers: list[nn.Module] = [_ConvBN(in_channels, width, 3, stride=2, padding=1, act=nn.ReLU6)]
        for t, c, n, s in self.SETTINGS:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                layers.append(_InvertedResidual(width, cout, s if i == 0 else 1, t))
                width = cout
        layers.append(_ConvBN(width, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), _linear(last, num_classes, std=0.01))
        _kaiming_convs(self.features)
        _init_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("mobilenet_v2", input_shape=(3, 224, 224), num_classes=1000, family="zoo")
def mobilenet_v2(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """MobileNetV2 (width 1.0): 3,504,872 parameters at 1000 classes."""
    return MobileNetV2(num_classes, in_shape[0])


# ----------------------------------------------------------------------------- tiny

class Tiny(nn.Module):
    """A minimal CNN for smoke tests: 2 conv feature layers, 2 fully connected decision layers.

    conv3x3(32) - ReLU - conv3x3/2(64) - ReLU - adaptive avg pool 4x4 - fc(128) - ReLU - fc(classes).
    Any input of at least 1x1 works.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, hidden: int = 128):
        super().__init__()
        _check(num_classes, in_channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Sequential(
            nn.Linear(64 * 4 * 4, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes),
        )
        _kaiming_convs(self.features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("tiny", input_shape=(3, 32, 32), num_classes=10, family="zoo")
def tiny(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """The `tiny` net: 2 conv + 2 fc layers, for any input size (usual 3x32x32)."""
    return Tiny(num_classes, in_shape[0])


def layer_counts(model: nn.Module) -> tuple[int, int]:
    """(feature layers, decision layers) of `model`, counted as described in the module docstring.

    Feature layers: ``nn.Conv2d`` modules outside ``model.classifier`` (each conv counts,
    shortcut 1x1 convs included). Decision layers: ``nn.Linear`` modules anywhere plus
    ``nn.Conv2d`` modules inside ``model.classifier``. A submodule ``model.aux_head``
    (inception_v3's auxiliary classifier) is left out of both counts. Works on any
    module; one without a ``classifier`` attribute has all its convs counted as features.
    """
    excluded: set[int] = set()
    aux = getattr(model, "aux_head", None)
    if isinstance(aux, nn.Module):
        excluded = {id(m) for m in aux.modules()}
    head = getattr(model, "classifier", None)
    in_head = {id(m) for m in head.modules()} if isinstance(head, nn.Module) else set()
    features = decision = 0
    for m in model.modules():
        if id(m) in excluded:
            continue
        if isinstance(m, nn.Linear):
            decision += 1
        elif isinstance(m, nn.Conv2d):
            if id(m) in in_head:
                decision += 1
            else:
                features += 1
    return features, decision
