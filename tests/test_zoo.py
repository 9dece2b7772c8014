"""The classic-network zoo: exact torchvision parameter counts, output shapes, layer counts.

Kept fast (well under a minute on 2 CPU cores): forwards run at small inputs, and the
big nets (vgg16, alexnet) are built only as often as the checks need.
"""

from __future__ import annotations


import pytest
import torch
from torch import nn

from bench.models import model_entry, model_names, zoo

ZOO = model_names("zoo")
IMAGENET = (3, 224, 224)

# torchvision's published parameter counts (1000 classes, 3 input channels);
# googlenet without its aux heads, inception_v3 with its aux head.
TORCHVISION_PARAMS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "googlenet": 6_624_904,
    "inception_v3": 27_161_264,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "densenet121": 7_978_856,
    "squeezenet1_1": 1_235_496,
    "mobilenet_v2": 3_504_872,
}

# smallest convenient valid input side for a quick forward
SMALL_SIDE = {name: 64 for name in ZOO} | {"inception_v3": 75, "tiny": 8}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(name: str, num_classes: int = 1000, in_channels: int = 3, **options) -> nn.Module:
    """A zoo net through its registered constructor, at 1000 classes and 3 channels unless told."""
    return model_entry(name).build(num_classes, (in_channels, *IMAGENET[1:]), **options)


def test_registry_names() -> None:
    assert ZOO == ["alexnet", "vgg16", "googlenet", "inception_v3", "resnet18", "resnet34",
                   "resnet50", "densenet121", "squeezenet1_1", "mobilenet_v2", "tiny"]
    assert model_entry("inception_v3").input_shape == (3, 299, 299)
    assert (model_entry("tiny").input_shape, model_entry("tiny").num_classes) == ((3, 32, 32), 10)
    assert all(model_entry(n).input_shape == IMAGENET and model_entry(n).num_classes == 1000
               for n in ZOO if n not in ("inception_v3", "tiny"))


@pytest.mark.parametrize("name", list(TORCHVISION_PARAMS))
def test_param_count_matches_torchvision(name: str) -> None:
    model = build(name)
    assert n_params(model) == TORCHVISION_PARAMS[name]
    assert isinstance(model.features, nn.Module)
    assert isinstance(model.classifier, nn.Module)


def test_param_count_scales_with_classes_and_channels() -> None:
    # only the first conv and the last classifier layer depend on in_channels / num_classes
    base, small = build("resnet18"), build("resnet18", num_classes=10, in_channels=1)
    assert n_params(base) - n_params(small) == 64 * 2 * 7 * 7 + 990 * (512 + 1)


@pytest.mark.parametrize("num_classes,in_channels", [(1000, 3), (10, 1)])
@pytest.mark.parametrize("name", ZOO)
def test_forward_shape_eval(name: str, num_classes: int, in_channels: int) -> None:
    torch.manual_seed(0)
    model = build(name, num_classes, in_channels).eval()
    side = SMALL_SIDE[name]
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, side, side))
    assert isinstance(out, torch.Tensor)
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["tiny", "squeezenet1_1", "mobilenet_v2", "resnet18", "googlenet"])
def test_forward_at_default_input(name: str) -> None:
    model = build(name, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(1, *model_entry(name).input_shape))
    assert out.shape == (1, 7)


def test_inception_v3_outputs_by_mode() -> None:
    torch.manual_seed(0)
    model = build("inception_v3", num_classes=5)
    # the aux head's 5x5 pool (stride 3) then 5x5 conv need the 17x17 grid of a 299x299 input
    with torch.no_grad():
        logits, aux = model.train()(torch.randn(2, 3, 299, 299))
        assert logits.shape == aux.shape == (2, 5)
        assert model.eval()(torch.randn(2, 3, 75, 75)).shape == (2, 5)
    grid = torch.randn(2, 768, 17, 17, requires_grad=True)
    model.aux_head.train()(grid).sum().backward()
    assert model.aux_head.fc.weight.grad is not None and grid.grad is not None
    plain = build("inception_v3", num_classes=5, aux_logits=False)
    assert plain.aux_head is None
    assert n_params(model) - n_params(plain) == n_params(model.aux_head)
    out = plain.train()(torch.randn(2, 3, 75, 75))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5)


def test_tiny_accepts_any_input_size_and_trains() -> None:
    model = build("tiny", num_classes=3, in_channels=2)
    for h, w in [(1, 1), (5, 9), (32, 32), (97, 61)]:
        assert model(torch.randn(2, 2, h, w)).shape == (2, 3)
    model(torch.randn(2, 2, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name,expected", [
    ("resnet18", (20, 1)),   # 17 main-path convs + 3 downsample 1x1 convs; 1 fc
    ("resnet34", (36, 1)),
    ("resnet50", (53, 1)),
    ("vgg16", (13, 3)),
    ("alexnet", (5, 3)),
    ("tiny", (2, 2)),
    ("squeezenet1_1", (25, 1)),  # the final 1x1 conv is the decision layer
    ("googlenet", (57, 1)),
    ("inception_v3", (94, 1)),   # main path only: the aux head's 2 convs + fc are excluded
    ("densenet121", (120, 1)),
    ("mobilenet_v2", (52, 1)),
])
def test_layer_counts(name: str, expected: tuple[int, int]) -> None:
    # build small variants: the counts do not depend on the number of classes
    assert zoo.layer_counts(build(name, num_classes=10)) == expected


def test_layer_counts_rule() -> None:
    incep = build("inception_v3", num_classes=10)
    assert zoo.layer_counts(incep) == zoo.layer_counts(build("inception_v3", num_classes=10, aux_logits=False))
    all_convs = sum(isinstance(m, nn.Conv2d) for m in incep.modules())
    assert all_convs == 94 + 2
    # a plain module without a `classifier`: all convs are features, all linears decisions
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 1), nn.Flatten(), nn.LazyLinear(4))
    assert zoo.layer_counts(net) == (2, 1)


def test_init_follows_torchvision_schemes() -> None:
    vgg = build("vgg16", num_classes=10)
    fc = vgg.classifier[0]
    assert torch.count_nonzero(fc.bias) == 0
    assert abs(fc.weight.std().item() - 0.01) < 1e-3
    resnet = build("resnet18")
    bn = resnet.features.stem[1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    conv = resnet.features.stem[0]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert abs(conv.weight.std().item() - (2 / fan_out) ** 0.5) < 0.1 * (2 / fan_out) ** 0.5


def test_constructors_have_the_one_signature_and_reject_bad_sizes() -> None:
    with pytest.raises(TypeError):
        zoo.resnet18(10)  # type: ignore[call-arg]  # the input shape is not optional
    with pytest.raises(ValueError):
        build("tiny", num_classes=0)
    with pytest.raises(ValueError):
        build("tiny", in_channels=0)


def test_registry_builds_zoo_models() -> None:
    from bench.models import build_model

    model = build_model("tiny", 10, (1, 28, 28))
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    incep = build_model("inception_v3", 4, (3, 75, 75), {"aux_logits": False})
    assert incep.aux_head is None
