"""The search space: a TOML file of dotted suite keys, each a list of choices or a range.

    "recipe.lr" = {low = 1e-3, high = 1e-1, log = true}     # a float, log-uniform
    "recipe.epochs" = {low = 1, high = 6, step = 0.5}       # a float on a grid
    "recipe.batch_size" = [128, 256, 512]                   # choices (any TOML values)
    "model.args.hidden" = [[128], [256]]

A range of an integer key draws integers. Every key must be one the suite schema knows and
the recipe may vary: the data, the target, the mode and the runs define the benchmark, and the
seed, the split and the time limit are the search's own. Both ends of each range, and every
choice, are checked against the suite before any training, so an impossible space is one line.
A suite may ship a default space as suites/spaces/<suite>.toml.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.suites import SUITES_DIR, Key, Suite, schema_keys, schema_node, suite_with

SPACES_DIR = SUITES_DIR / "spaces"
# what the benchmark is (searching them would change the question) or what the search sets itself
FIXED = ("name", "description", "mode", "target", "target_source", "runs", "devices", "pass_rule", "provisional",
         "tuned_from", "dataset", "recipe.time_limit_s")


@dataclass(frozen=True)
class Dimension:
    key: str
    choices: tuple[Any, ...] | None = None   # categorical
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False

    def describe(self) -> dict[str, Any]:
        """As the space file writes it (for the tuned suite's tuned_from and the study's attributes)."""
        if self.choices is not None:
            return {"choices": list(self.choices)}
        out: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class Space:
    path: Path
    dimensions: tuple[Dimension, ...]

    def describe(self) -> dict[str, Any]:
        return {d.key: d.describe() for d in self.dimensions}

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The trial's values: Optuna's choice for each dimension. Choices that are not scalars
        (a list of widths) are offered to Optuna by their JSON text and read back."""
        values = {}
        for d in self.dimensions:
            if d.choices is not None:
                if all(isinstance(c, (bool, int, float, str)) for c in d.choices):
                    values[d.key] = trial.suggest_categorical(d.key, list(d.choices))
                else:
                    values[d.key] = json.loads(trial.suggest_categorical(d.key, [json.dumps(c) for c in d.choices]))
            elif d.integer:
                values[d.key] = trial.suggest_int(d.key, int(d.low), int(d.high), step=int(d.step or 1), log=d.log)
            else:
                values[d.key] = trial.suggest_float(d.key, d.low, d.high, step=d.step, log=d.log)
        return values


def _resolved_value(suite: Suite, key: str) -> Any:
    node: Any = suite.resolved
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def default_params(space: Space, suite: Suite) -> dict[str, Any] | None:
    """The suite's own recipe as Optuna parameters (choices that are lists by their JSON text), or
    None where one of its values lies outside the space: then it cannot be a trial."""
    params = {}
    for d in space.dimensions:
        value = _resolved_value(suite, d.key)
        if d.choices is not None:
            if value not in d.choices:
                return None
            scalar = all(isinstance(c, (bool, int, float, str)) for c in d.choices)
            params[d.key] = value if scalar else json.dumps(value)
        else:
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not d.low <= value <= d.high:
                return None
            if d.step is not None and abs((value - d.low) / d.step - round((value - d.low) / d.step)) > 1e-9:
                return None
            params[d.key] = int(value) if d.integer else float(value)
    return params


def default_space(suite: Suite) -> Path:
    path = SPACES_DIR / f"{suite.name}.toml"
    if not path.is_file():
        raise BenchError(f"{suite.name} ships no search space ({path} is missing); give one with --space FILE "
                         "(see docs/tune.md)")
    return path


def load_space(path: Path, suite: Suite) -> Space:
    """The space in `path`, every key and value checked against `suite`; BenchError names the file and key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"--space {path}: no such file; give a search space TOML (see docs/tune.md)") from None
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path}: malformed TOML ({exc}); fix the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: cannot read the search space ({exc})") from None
    if not raw:
        raise BenchError(f"{path}: the search space is empty; give at least one key, e.g. "
                         '"recipe.lr" = {low = 0.01, high = 0.3, log = true}')
    dimensions = tuple(_dimension(path, key, value, suite) for key, value in raw.items())
    return Space(path=path, dimensions=dimensions)


def _dimension(path: Path, key: str, value: Any, suite: Suite) -> Dimension:
    where = f"{path}: '{key}'"
    node = schema_node(key)
    if node is None or isinstance(node, dict):
        from bench.errors import did_you_mean

        raise BenchError(f"{where} is no suite key; {did_you_mean(key, schema_keys(), 'see the suite schema')}")
    if any(key == fixed or key.startswith(fixed + ".") for fixed in FIXED):
        raise BenchError(f"{where} cannot be searched: it defines the benchmark or is set by the search itself; "
                         "search recipe and model keys")
    if isinstance(value, list):
        if not value:
            raise BenchError(f"{where}: an empty list of choices; give at least one value")
        for choice in value:
            _check_value(path, key, choice, suite)
        return Dimension(key=key, choices=tuple(value))
    if not isinstance(value, dict):
        raise BenchError(f"{where}: give a list of choices or a range {{low = .., high = ..}}, got {value!r}")
    return _range(path, key, value, node, suite)


def _range(path: Path, key: str, value: dict[str, Any], node: Key, suite: Suite) -> Dimension:
    where = f"{path}: '{key}'"
    unknown = set(value) - {"low", "high", "log", "step"}
    if unknown or "low" not in value or "high" not in value:
        raise BenchError(f"{where}: a range is {{low = .., high = .., log = true|false, step = ..}}, got {value!r}")
    low, high, log, step = value["low"], value["high"], value.get("log", False), value.get("step")
    numbers = [v for v in (low, high, step) if v is not None]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in numbers) \
            or not isinstance(log, bool):
        raise BenchError(f"{where}: low, high and step must be numbers and log true or false, got {value!r}")
    if node.kind not in ("int", "float", "int_or_auto"):
        raise BenchError(f"{where} is {node.kind}, not a number: give its choices as a list instead")
    integer = node.kind != "float"
    if not low < high:
        raise BenchError(f"{where}: low {low} must be below high {high}")
    if log and low <= 0:
        raise BenchError(f"{where}: a log range needs low > 0, got {low}")
    if log and step is not None:
        raise BenchError(f"{where}: a range is log or stepped, not both")
    if step is not None and not 0 < step <= high - low:
        raise BenchError(f"{where}: step {step} must be above 0 and at most high - low ({high - low:g})")
    if integer and not all(isinstance(v, int) for v in numbers):
        raise BenchError(f"{where} is an integer key: give integer low, high and step")
    for end in (low, high):
        _check_value(path, key, end, suite)
    return Dimension(key=key, low=low, high=high, log=log, step=step, integer=integer)


def _check_value(path: Path, key: str, value: Any, suite: Suite) -> None:
    """One BenchError line when the suite refuses `value` for `key` (a type, a range, a cross-check)."""
    suite_with(suite.path, {**suite.overrides, key: value}, f"{path}: '{key}' = {value!r} in {suite.name}")
