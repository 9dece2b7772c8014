"""Fine-tuning: start a run from saved weights, optionally with the feature layers fixed.

`model.init` names a state dict saved by `bench run --save-weights` (or torch.save of a
model's state_dict()); it is read with torch.load(weights_only=True), which unpickles
tensors and plain containers only, never arbitrary objects. A file that does not fit the
suite's model is one error line naming the file and the keys that differ.

`model.freeze = "features"` trains only the decision layers: the model's `features`
submodule (the feature layers of the spec table's split; every model in the registry has
one) keeps its loaded weights and its normalization statistics. Its parameters get no
gradient (the optimizer's groups skip them) and it stays in eval mode when the trainer
switches the model to training, so batch norm uses its running statistics and dropout is off.
"""

from __future__ import annotations

import pickle
import types
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.errors import BenchError


def _listed(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def unsafe_pickle_message(path: str, torch_message: str) -> str:
    """The refusal of a file that pickles more than tensors, said as a refusal for safety. Torch's
    own text advises re-running with weights_only=False, which would execute whatever the file
    holds; that advice is left out, and only torch's line naming what was refused is kept."""
    refused = [line.strip() for line in torch_message.splitlines()
               if "unsupported" in line.lower() or "global" in line.lower()]
    what = f": {refused[0][:200]}" if refused else ""
    return (f"model.init: {path} was refused for safety: it holds pickled objects other than tensors, which "
            f"loading would execute{what}; give a plain state dict saved by 'bench run --save-weights DIR' "
            "(or torch.save(model.state_dict()))")


def load_init(model: nn.Module, path: str, model_name: str) -> None:
    file = Path(path)
    if not file.is_file():
        raise BenchError(f"model.init: weights file {path} not found; give the path of a state dict saved by "
                         "'bench run --save-weights DIR' (relative paths are taken from the working directory)")
    try:
        with warnings.catch_warnings():  # the refusal below is the whole story; torch's warnings are not
            warnings.simplefilter("ignore")
            state = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise BenchError(unsafe_pickle_message(path, str(exc))) from None
    except Exception as exc:  # a torn file, not a torch file at all
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"model.init: cannot read {path} as a state dict ({reason[:200]})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise BenchError(f"model.init: {path} holds a {type(state).__name__}, not a state dict "
                         "(a mapping of names to tensors)")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} (model {tuple(own[k].shape)})" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = ([f"missing keys {_listed(missing)}"] if missing else []) + \
                ([f"unexpected keys {_listed(unexpected)}"] if unexpected else []) + \
                ([f"other shapes {_listed(shapes)}"] if shapes else [])
        raise BenchError(f"model.init: {path} does not fit model '{model_name}': {'; '.join(parts)}")
    model.load_state_dict(state)


def _stay_in_eval(module: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(module, False)


def freeze_features(model: nn.Module, model_name: str) -> None:
    features = getattr(model, "features", None)
    if not isinstance(features, nn.Module):
        raise BenchError(f"model.freeze 'features': model '{model_name}' has no 'features' part to freeze")
    for p in features.parameters():
        p.requires_grad_(False)
    features.train = types.MethodType(_stay_in_eval, features)  # type: ignore[method-assign]
    features.eval()


def prepare(model: nn.Module, spec: dict[str, Any]) -> None:
    """Applies the suite's model.init and model.freeze to a freshly built model."""
    if spec.get("init"):
        load_init(model, spec["init"], spec["name"])
    if spec.get("freeze", "none") == "features":
        freeze_features(model, spec["name"])


def save_weights(model: nn.Module, folder: Path, name: str) -> Path:
    """The model's state dict in `folder`/`name`, written atomically (temp file + rename) and
    never over an existing file: the name carries the invocation's unique id and the seed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if path.exists():
        raise BenchError(f"--save-weights: {path} exists already; weights are never overwritten")
    state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone()
             for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(state, tmp)
        tmp.replace(path)
    finally:  # a save cut short (a full disk) leaves no partial file behind
        tmp.unlink(missing_ok=True)
    return path
