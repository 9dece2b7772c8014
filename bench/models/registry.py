"""The model registry: each model registers itself, beside its definition, with its default config.

    @register_model("resnet9", input_shape=(3, 32, 32), num_classes=10)
    def resnet9(num_classes: int, in_shape: tuple[int, int, int], *, widths=..., ...) -> nn.Module:

Every registered constructor has the one signature `(num_classes, in_shape, **options)`:
what a suite's `model.args` may set are the keyword options after the first two, read once
at registration. `input_shape` and `num_classes` are the network's usual input and classes,
what the spec table measures it at unless told otherwise. `family` groups the listing:
"zoo" for the classic ImageNet networks of models/zoo.py, "training" for the nets this
project's suites train.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from bench.errors import BenchError, did_you_mean

Constructor = Callable[..., nn.Module]
FAMILIES = ("zoo", "training")
# the two positional parameters every constructor takes, in this order
SIGNATURE_HEAD = ("num_classes", "in_shape")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    build: Constructor
    input_shape: tuple[int, int, int]
    num_classes: int
    family: str
    options: tuple[str, ...]  # the keyword options model.args may set


# name -> entry, in registration order (models/__init__.py imports the model modules in a fixed order)
_REGISTRY: dict[str, ModelEntry] = {}


def _options_of(name: str, build: Constructor) -> tuple[str, ...]:
    """The keyword options after (num_classes, in_shape); a constructor of another shape is a bug here."""
    params = list(inspect.signature(build).parameters.values())
    head = tuple(p.name for p in params[:2])
    rest = params[2:]
    if head != SIGNATURE_HEAD or any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in rest):
        raise TypeError(f"model '{name}': a registered constructor takes (num_classes, in_shape, **named options), "
                        f"not {inspect.signature(build)}")
    return tuple(p.name for p in rest)


def register_model(name: str, *, input_shape: tuple[int, int, int], num_classes: int,
                   family: str = "training") -> Callable[[Constructor], Constructor]:
    """Register the decorated constructor under `name` with its default input shape and classes."""
    if family not in FAMILIES:
        raise ValueError(f"model '{name}': family {family!r} is not one of {', '.join(FAMILIES)}")

    def register(build: Constructor) -> Constructor:
        if name in _REGISTRY:
            raise ValueError(f"model '{name}' is registered twice")
        _REGISTRY[name] = ModelEntry(name, build, tuple(input_shape), num_classes, family, _options_of(name, build))
        return build

    return register


def model_names(family: str | None = None) -> list[str]:
    """Registered names in registration order (of one family when given)."""
    return [n for n, e in _REGISTRY.items() if family is None or e.family == family]


def _unknown(name: str, where: str) -> BenchError:
    known = sorted(_REGISTRY)
    hint = did_you_mean(name, known, f"known models: {', '.join(known)}", cutoff=0.6)
    return BenchError(f"{where}: unknown model '{name}'; {hint}")


def model_entry(name: str, where: str = "model") -> ModelEntry:
    """The registry's entry for `name`; an unknown name is a one-line error naming `where`."""
    if name not in _REGISTRY:
        raise _unknown(name, where)
    return _REGISTRY[name]


def build_model(name: str, num_classes: int, in_shape: tuple[int, int, int], args: dict[str, Any] | None = None,
                where: str = "model") -> nn.Module:
    """A fresh network: `args` are the constructor's options (lists become tuples, as TOML gives lists)."""
    entry = model_entry(name, where)
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in (args or {}).items()}
    unknown = [k for k in args if k not in entry.options]
    if unknown:
        raise BenchError(f"{where}.args: model '{name}' takes no argument {', '.join(unknown)}; "
                         f"it takes {', '.join(entry.options) or 'none'}")
    try:
        with warnings.catch_warnings():  # a width of 0 is refused below, in one line of its own
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
            model = entry.build(num_classes, in_shape, **args)
    except (TypeError, ValueError, RuntimeError) as exc:  # building runs no data: its errors are the args'
        raise BenchError(f"{where}.args: model '{name}' cannot be built with {args} ({exc})") from None
    empty = next((n for n, p in model.named_parameters() if p.numel() == 0), None)
    if empty is not None:  # a width of 0 builds, then fails somewhere in training with a traceback
        raise BenchError(f"{where}.args: model '{name}' built with {args} has a layer with no weights ({empty}); "
                         "give every width at least 1")
    return model
