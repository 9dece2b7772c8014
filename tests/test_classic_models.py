"""The classic recipes' networks: parameter counts against hand counts, and their options."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.models import build_model
from bench.models.resnet9 import GhostBatchNorm, WhitenedResNet9

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CIFAR = (3, 32, 32)


def params(model: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def conv(c_in: int, c_out: int, k: int, bias: bool = False) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def bn(c: int) -> int:
    return 2 * c  # scale and shift


def test_lenet5_hand_count_and_variants() -> None:
    # conv 3->6 5x5, conv 6->16 5x5 (both with bias), then 16*5*5 -> 120 -> 84 -> 10
    hand = conv(3, 6, 5, True) + conv(6, 16, 5, True) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert hand == 62_006
    for args in ({}, {"activation": "relu", "pool": "max"}):
        model = build_model("lenet5", 10, CIFAR, args)
        assert params(model) == hand
        assert model(torch.zeros(2, *CIFAR)).shape == (2, 10)
    relu = build_model("lenet5", 10, CIFAR, {"activation": "relu", "pool": "max"})
    assert any(isinstance(m, nn.ReLU) for m in relu.modules()) and any(isinstance(m, nn.MaxPool2d) for m in relu.modules())
    assert not any(isinstance(m, (nn.ReLU, nn.MaxPool2d)) for m in build_model("lenet5", 10, CIFAR).modules())


RESNET9_PLAIN = (conv(3, 64, 3) + bn(64) + conv(64, 128, 3) + bn(128) + 2 * (conv(128, 128, 3) + bn(128))
                 + conv(128, 256, 3) + bn(256) + conv(256, 512, 3) + bn(512) + 2 * (conv(512, 512, 3) + bn(512))
                 + 512 * 10)


def test_resnet9_hand_count() -> None:
    assert RESNET9_PLAIN == 6_573_120
    model = build_model("resnet9", 10, CIFAR)
    assert params(model) == params(model, trainable=True) == RESNET9_PLAIN
    assert model(torch.zeros(2, *CIFAR)).shape == (2, 10)


def test_resnet9_tricks_hand_count() -> None:
    model = build_model("resnet9", 10, CIFAR, {"activation": "celu", "ghost_batch": 32, "freeze_bn_scale": True,
                                               "whiten": True})
    # the 3x3 stem conv gives way to a frozen 3x3 whitening conv (2 x 27 filters) and a 1x1 conv-BN
    whiten = conv(3, 54, 3)
    hand = RESNET9_PLAIN - (conv(3, 64, 3) + bn(64)) + whiten + conv(54, 64, 1) + bn(64)
    assert params(model) == hand == 6_576_306
    bn_channels = 64 + 128 + 2 * 128 + 256 + 512 + 2 * 512
    assert params(model, trainable=True) == hand - whiten - bn_channels
    assert isinstance(model, WhitenedResNet9)
    assert sum(isinstance(m, nn.CELU) for m in model.modules()) == 8
    assert all(isinstance(m, GhostBatchNorm) for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert not hasattr(build_model("resnet9", 10, CIFAR), "data_init")


def test_resnet9_whitening_init_whitens_patches() -> None:
    torch.manual_seed(0)
    model = build_model("resnet9", 10, CIFAR, {"whiten": True})
    images = torch.randn(64, 3, 12, 12) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1)
    images[:, 1] += images[:, 0]  # correlated channels
    model.data_init(images)
    w = model.whiten.weight[:27]
    assert torch.equal(model.whiten.weight[27:], -w)
    patches = images.unfold(2, 3, 1).unfold(3, 3, 1).transpose(1, 3).reshape(-1, 27)
    out = (patches - patches.mean(0)) @ w.reshape(27, 27).T
    cov = out.T @ out / len(out)
    # unit variance along every direction, but for the eps added to tiny eigenvalues
    assert torch.allclose(cov.diag(), torch.ones(27), atol=0.05)
    assert (cov - torch.diag(cov.diag())).abs().max() < 0.05


def test_ghost_batch_norm_uses_group_statistics() -> None:
    torch.manual_seed(0)
    gbn = GhostBatchNorm(4, ghost=8)
    x = torch.randn(32, 4, 3, 3)
    x[:8] += 5.0  # one group far off: ordinary BN would not centre it, ghost BN does
    y = gbn(x)
    assert torch.allclose(y[:8].mean((0, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(y[8:16].mean((0, 2, 3)), torch.zeros(4), atol=1e-5)
    expected_mean = torch.stack([x[i:i + 8].mean((0, 2, 3)) for i in range(0, 32, 8)]).mean(0)
    assert torch.allclose(gbn.running_mean, 0.1 * expected_mean, atol=1e-5)
    gbn.eval()  # evaluation: running statistics, like any batch norm
    reference = nn.BatchNorm2d(4).eval()
    reference.load_state_dict(gbn.state_dict())
    assert torch.allclose(gbn(x), reference(x))
    gbn.train()
    with pytest.raises(ValueError, match="multiple of model.args.ghost_batch"):
        gbn(torch.randn(20, 4, 3, 3))


def test_resnet34_cifar_hand_count() -> None:
    model = build_model("resnet34_cifar", 10, CIFAR)
    # 3x3 stem; stages of 3, 4, 6, 3 basic blocks (two 3x3 conv-BN each) at 64/128/256/512;
    # a 1x1 conv-BN shortcut where a stage halves the map; linear 512 -> 10 with bias
    hand = conv(3, 64, 3) + bn(64)
    width = 64
    for planes, depth in zip((64, 128, 256, 512), (3, 4, 6, 3)):
        for j in range(depth):
            hand += conv(width, planes, 3) + bn(planes) + conv(planes, planes, 3) + bn(planes)
            if width != planes:
                hand += conv(width, planes, 1) + bn(planes)
            width = planes
    hand += 512 * 10 + 10
    assert hand == 21_282_122
    assert params(model) == hand
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    feature_map = model.features(torch.zeros(1, *CIFAR))
    assert feature_map.shape == (1, 512, 4, 4)  # 32 -> 32, 16, 8, 4: no stem downsampling
    assert model(torch.zeros(2, *CIFAR)).shape == (2, 10)


# ------------------------------------------------------------------ the registry

def test_registry_errors_name_the_place_and_what_to_do() -> None:
    from bench.errors import BenchError

    with pytest.raises(BenchError, match=r"^suite.model: unknown model 'resnt9'; did you mean resnet9"):
        build_model("resnt9", 10, CIFAR, where="suite.model")
    with pytest.raises(BenchError, match=r"^model.args: model 'lenet5' takes no argument width; "
                                         r"it takes activation, pool$"):
        build_model("lenet5", 10, CIFAR, {"width": 3})
    with pytest.raises(BenchError, match=r"^model.args: model 'resnet18' takes no argument hidden; it takes none$"):
        build_model("resnet18", 10, CIFAR, {"hidden": 3})
    with pytest.raises(BenchError, match=r"cannot be built with \{'activation': 'swish'\}"):
        build_model("resnet9", 10, CIFAR, {"activation": "swish"})
    # widths that no layer can have: a torch error, or a model that fails only once it trains
    with pytest.raises(BenchError, match=r"cannot be built with \{'hidden': \(-5,\)\}"):
        build_model("mlp", 10, (1, 28, 28), {"hidden": [-5]})
    with pytest.raises(BenchError, match=r"has a layer with no weights \(1.weight\); give every width at least 1"):
        build_model("mlp", 10, (1, 28, 28), {"hidden": [0]})


def test_registry_takes_one_constructor_signature_only() -> None:
    from bench.models.registry import model_entry, register_model

    def in_channels_form(*, num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
        return nn.Linear(in_channels, num_classes)

    with pytest.raises(TypeError, match="takes \\(num_classes, in_shape, \\*\\*named options\\)"):
        register_model("odd", input_shape=CIFAR, num_classes=10)(in_channels_form)
    with pytest.raises(ValueError, match="registered twice"):
        register_model("lenet5", input_shape=CIFAR, num_classes=10)(lambda num_classes, in_shape: None)
    assert model_entry("lenet5").options == ("activation", "pool")  # the first registration stands


def test_training_nets_build_at_their_registered_defaults() -> None:
    from bench.models import model_entry, model_names

    for name in model_names("training"):
        entry = model_entry(name)
        model = build_model(name, entry.num_classes, entry.input_shape).eval()
        with torch.no_grad():
            assert model(torch.zeros(2, *entry.input_shape)).shape == (2, entry.num_classes), name
