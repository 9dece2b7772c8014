"""Model registry: a name and keyword arguments in, an nn.Module out.

Models know nothing of suites or training. Two optional hooks a trainer may use:
`data_init(images)` (data-dependent initialization, e.g. patch whitening) and a
`whiten` submodule whose bias trains only for the first epochs.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable

from torch import nn

from bench.errors import BenchError
from bench.models.airbench import AirbenchNet
from bench.models.resnet9 import resnet9
from bench.models.sequence import SequenceLSTM
from bench.models.small import LeNet5, mlp



def resnet34_cifar(num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """ResNet-34 for 32x32 inputs: the zoo's ResNet with a 3x3 stem and no max pool."""
    from bench.models import zoo  # the zoo module is imported on demand

    return zoo.resnet34_cifar(num_classes, in_shape)


# name -> constructor(num_classes, in_shape, **args)
TRAINING_MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": mlp,
    "lenet5": LeNet5,
    "airbench": AirbenchNet,
    "resnet9": resnet9,
    "resnet34_cifar": resnet34_cifar,
    "lstm": SequenceLSTM,
}


def _zoo() -> dict[str, Callable[..., nn.Module]]:
    from bench.models import zoo  # large classic nets for `bench specs`; imported on demand

    def adapt(ctor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        def build(num_classes: int, in_shape: tuple[int, int, int], **args: Any) -> nn.Module:
            return ctor(num_classes=num_classes, in_channels=in_shape[0], **args)
        build.__wrapped__ = ctor  # type: ignore[attr-defined]
        return build

    return {name: adapt(ctor) for name, ctor in zoo.ZOO.items()}


def model_names() -> list[str]:
    try:
        return sorted({*TRAINING_MODELS, *_zoo()})
    except ImportError:
        return sorted(TRAINING_MODELS)


def build_model(name: str, num_classes: int, in_shape: tuple[int, int, int], args: dict[str, Any] | None = None,
                where: str = "model") -> nn.Module:
    registry = dict(TRAINING_MODELS)
    if name not in registry:
        try:
            registry.update(_zoo())
        except ImportError:
            pass
    if name not in registry:
        close = difflib.get_close_matches(name, model_names(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known models: {', '.join(model_names())}"
        raise BenchError(f"{where}: unknown model '{name}'; {hint}")
    ctor = registry[name]
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in (args or {}).items()}
    params = inspect.signature(getattr(ctor, "__wrapped__", ctor)).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = [k for k in args if k not in params or k in ("num_classes", "in_shape", "in_channels")]
        if unknown:
            allowed = [k for k in params if k not in ("num_classes", "in_shape", "in_channels")]
            raise BenchError(f"{where}.args: model '{name}' takes no argument {', '.join(unknown)}; "
                             f"it takes {', '.join(allowed) or 'none'}")
    try:
        return ctor(num_classes, in_shape, **args)
    except (TypeError, ValueError) as exc:
        raise BenchError(f"{where}.args: model '{name}' cannot be built with {args} ({exc})") from None
