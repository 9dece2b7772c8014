"""Study files: a base suite, axes of suite keys and seeds, expanded into the cells to run.

A study is a TOML file in suites/studies/ (and in the studies/ folder of each $BENCH_SUITES
folder):

    name = "fmnist-optimizers"
    description = "..."
    suite = "fashion-mnist-mlp"         # the base: a suite name, or a path (relative to this file)
    seeds = [0, 1]                      # every point runs once per seed
    strategy = "grid"                   # or "random" with samples = N (and sample_seed, default 0)
    rank = "accuracy"                   # or "time"; default: accuracy for budget suites, time for reach
    nproc_per_node = 2                  # optional: each cell one run on 2 ranks (DDP under torchrun)

    [set]                               # fixed overrides for every cell (e.g. fewer epochs)
    "recipe.epochs" = 10

    [axes]                              # dotted suite keys -> lists of values
    "recipe.optimizer" = ["sgd", "adam", "adadelta"]
    "recipe.lr" = [1.0, 0.1, 0.01, 0.001]

    [[exclude]]                         # points left out: per axis, a value or a list of values
    "recipe.optimizer" = ["sgd", "adam"]
    "recipe.lr" = 1.0

    [[include]]                         # points added (after a random draw, or back after an
    "recipe.optimizer" = "sgd"          # exclude): every axis named, values from the axis
    "recipe.lr" = 1.0

    link = [["dataset.train_size", "recipe.epochs"]]   # optional, before the tables: axes that vary
                                        # together value by value, not crossed (bench.studies.links)

Everything is checked before any cell runs: an unknown key, an unknown or empty axis, and a
value that makes an invalid suite are each one BenchError line naming the study file, the
axis and the value. Every point is resolved into its suite here, so a cell's identity (its
resolved suite's hash, see identity_hash, and its seed) is known before anything trains.
"""

from __future__ import annotations

import difflib
import hashlib
import itertools
import json
import random
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import BenchError, did_you_mean
from bench.seeds import MAX_SEED
from bench.studies.links import linked_grid, linked_groups
from bench.suites import (MAX_NAME, NAME_PATTERN, SCHEMA, Key, Suite, available_suites, refuse_toml_dates,
                          schema_keys, schema_node, suite_dirs, suite_with)

STUDY_KEYS = ("name", "description", "suite", "seeds", "strategy", "samples", "sample_seed", "rank", "set", "axes",
              "exclude", "include", "nproc_per_node", "link")
STRATEGIES = ("grid", "random")
RANKS = ("accuracy", "time")


# ---------------------------------------------------------------- values ----

def toml_value(value: Any) -> str:
    """A value written as TOML (what `--set key=VALUE` reads back to the same value)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for every printable value
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = (k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k) for k in value)
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in zip(keys, value.values())) + "}"
    raise TypeError(f"not a TOML value: {value!r}")


def value_label(value: Any) -> str:
    """How a value reads in tables and legends: strings bare, numbers short, the rest as TOML."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:g}"
    return toml_value(value)


def canonical(value: Any) -> str:
    """A comparable form: 1 and 1.0 are the same value (a suite reads both as 1.0), true is not 1."""
    def norm(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float, list, dict)):
            return v
        if isinstance(v, (int, float)):
            return float(v)
        if isinstance(v, list):
            return [norm(x) for x in v]
        return {k: norm(x) for k, x in v.items()}
    return json.dumps(norm(value), sort_keys=True)


# ---------------------------------------------------------------- points and cells ----

@dataclass(frozen=True)
class Point:
    """One combination of axis values: one resolved suite."""

    values: tuple[tuple[str, Any], ...]   # (axis, value) in the study's axis order
    suite: Suite

    @property
    def identity(self) -> str:
        """The point's identity: the hash of its resolved suite over the keys not at their defaults
        (identity_hash). Not the suite's own `Suite.hash`, which covers every key, defaults too."""
        return identity_hash(self.suite.resolved)

    @property
    def axes(self) -> dict[str, Any]:
        return dict(self.values)

    @property
    def label(self) -> str:
        return ", ".join(f"{axis}={value_label(value)}" for axis, value in self.values)


@dataclass(frozen=True)
class Cell:
    """A point and a seed: one invocation of one run. `key` (point identity, seed) is its identity."""

    point: Point
    seed: int

    @property
    def key(self) -> str:
        return cell_key(self.point.identity, self.seed)

    @property
    def label(self) -> str:
        return f"{self.point.label} seed {self.seed}"


def cell_key(point_identity: str, seed: int) -> str:
    return f"{point_identity}-s{seed}"


# Suite keys that never change what one seed of a cell trains: where the target comes from (citing a
# new calibration), how many seeds a plain `bench run` makes by default (a cell is one seed; the
# study names its own), and the suite's prose (its description, the search a tuned suite came from). A result keeps its cell when one of them changes.
NOT_RUN = ("target_source", "runs", "description", "tuned_from")


def identity_hash(resolved: dict[str, Any]) -> str:
    """The hash of a resolved suite without the keys that are at their schema default.

    Like the suite hash it changes with anything a suite sets, but not when bench gains a
    suite key whose default keeps the old behaviour (the resolved suite, and so the suite
    hash, then has one key more): a study's results still belong to its cells after such an
    upgrade instead of all being run again. A changed default still changes it (for the
    suites that take the default), as it changes what they run."""
    kept = {key: value for key, value in resolved.items() if key not in NOT_RUN}
    text = json.dumps(_without_defaults(kept, SCHEMA), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _without_defaults(values: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        spec = schema.get(key)
        if isinstance(spec, dict) and isinstance(value, dict):
            inner = _without_defaults(value, spec)
            if inner:
                out[key] = inner
        elif not (isinstance(spec, Key) and not spec.required and canonical(value) == canonical(spec.default)):
            out[key] = value  # set by the suite (or a key the schema no longer has: kept, to be safe)
    return out


@dataclass
class Study:
    name: str
    path: Path
    description: str
    base_ref: str                     # the file's 'suite': a suite name or a path
    base: Suite                       # the base suite with [set] applied
    fixed: dict[str, Any]             # [set]
    seeds: list[int]
    axes: dict[str, list[Any]]        # axis -> its values, in the file's order
    strategy: str
    rank: str
    points: list[Point] = field(default_factory=list)
    nproc_per_node: int = 1           # ranks of each cell's run: >1 makes every cell a torchrun (DDP) run
    links: list[list[str]] = field(default_factory=list)  # the axes that vary together (bench.studies.links)

    @property
    def cells(self) -> list[Cell]:
        return [Cell(point, seed) for point in self.points for seed in self.seeds]

    def cell_command(self, cell: Cell) -> list[str]:
        """The `bench run` line that is this cell: the base suite, the overrides, one seed."""
        sets = [f"{key}={toml_value(value)}" for key, value in {**self.fixed, **cell.point.axes}.items()]
        ref = self.base_ref if self.base_ref in available_suites() else str(self.base.path)
        ranks = ["--nproc-per-node", str(self.nproc_per_node)] if self.nproc_per_node > 1 else []
        return ["bench", "run", ref, "--runs", "1", "--seed", str(cell.seed),
                *[arg for text in sets for arg in ("--set", text)], *ranks]

    def record_block(self, cell: Cell) -> dict[str, Any]:
        """What a cell's result file says about the study it belongs to (reports read it there)."""
        return {"name": self.name, "path": str(self.path), "cell": cell.key, "seed": cell.seed,
                "axes": cell.point.axes, "fixed": self.fixed}


# ---------------------------------------------------------------- finding studies ----

def study_dirs() -> list[Path]:
    return [folder / "studies" for folder in suite_dirs()]


def available_studies() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in study_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def _locate_study(ref: str) -> Path:
    if ref.endswith(".toml") or "/" in ref:
        path = Path(ref)
        if not path.is_file():
            raise BenchError(f"study file {ref} not found; give the path of a .toml study or a name from 'bench list'")
        return path
    studies = available_studies()
    if ref in studies:
        return studies[ref]
    hint = did_you_mean(ref, studies, "run 'bench list' to see them")
    raise BenchError(f"unknown study '{ref}'; {hint}")


def _locate_base(ref: str, study_path: Path, where: str) -> Path:
    if ref.endswith(".toml") or "/" in ref:
        for candidate in (study_path.parent / ref, Path(ref)):
            if candidate.is_file():
                return candidate
        raise BenchError(f"{where}: base suite file {ref} not found (looked beside the study and in the "
                         "current folder)")
    suites = available_suites()
    if ref in suites:
        return suites[ref]
    hint = did_you_mean(ref, suites, "run 'bench list' to see the suites")
    raise BenchError(f"{where}: 'suite' names no suite '{ref}'; {hint}")


# ---------------------------------------------------------------- reading the file ----

def _flatten_set(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """[set] as dotted keys. `recipe.epochs = 3` (a TOML dotted key, read as nested tables) and
    `"recipe.epochs" = 3` mean the same; nesting stops at a schema leaf, so `model.args = {...}`
    replaces that table as `--set` would."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = prefix + key
        if isinstance(value, dict) and isinstance(schema_node(dotted), dict):
            out.update(_flatten_set(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _flatten_axes(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """[axes] as dotted keys: axis values are lists, so any table met on the way is a path."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flatten_axes(value, prefix + key + "."))
        else:
            out[prefix + key] = value
    return out


def _flatten_entry(entry: dict[str, Any], axes: list[str], prefix: str = "") -> dict[str, Any]:
    """An include/exclude entry as axis -> value(s): tables are paths until they reach an axis."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        dotted = prefix + key
        if dotted not in axes and isinstance(value, dict) and any(a.startswith(dotted + ".") for a in axes):
            out.update(_flatten_entry(value, axes, dotted + "."))
        else:
            out[dotted] = value
    return out


def _unknown_key_hint(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean '{close[0]}'?" if close else "axes are dotted suite keys such as 'recipe.lr'"


def load_study(ref: str) -> Study:
    """Reads, validates and expands a study (by name or path). Every problem is one BenchError line."""
    path = _locate_study(ref)
    where = str(path)
    raw = _read_toml(path, where)
    name, description, seeds = _identity(raw, where)
    strategy, samples, sample_seed = _strategy(raw, where)
    if not isinstance(raw["suite"], str):
        raise BenchError(f"{where}: 'suite' must be a suite name or a path to a .toml suite")
    base_path = _locate_base(raw["suite"], path, where)
    fixed = _fixed(raw, where)
    base = suite_with(base_path, fixed, f"{where}: the base suite {base_path} with [set]")
    axes = _axes(raw, fixed, base_path, where)
    nproc = raw.get("nproc_per_node", 1)
    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise BenchError(f"{where}: 'nproc_per_node' is {nproc!r}; give the ranks of each cell's run, an integer "
                         ">= 1 (one per GPU; on CPU, processes sharing the cores)")
    rank = raw.get("rank", "time" if base.mode == "reach" else "accuracy")
    if rank not in RANKS:
        raise BenchError(f"{where}: 'rank' is {rank!r}; choose accuracy (highest mean accuracy first) or time "
                         "(fastest median time to target among the points that reach it)")
    kept = _chosen_combos(raw, axes, strategy, samples, sample_seed, where)
    points = _points(kept, base_path, fixed, where)
    return Study(name=name, path=path, description=description, base_ref=raw["suite"], base=base, fixed=fixed,
                 seeds=list(seeds), axes=axes, strategy=strategy, rank=rank, points=points,
                 nproc_per_node=nproc, links=linked_groups(raw.get("link"), axes, where))


def _read_toml(path: Path, where: str) -> dict[str, Any]:
    """The study file's table, its keys known and the required ones there."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{where}: malformed TOML ({exc}); fix the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{where}: cannot read the study ({exc})") from None
    refuse_toml_dates(raw, where)
    for key in raw:
        if key not in STUDY_KEYS:
            close = difflib.get_close_matches(key, STUDY_KEYS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(STUDY_KEYS)}"
            raise BenchError(f"{where}: unknown key '{key}'; {hint}")
    for key in ("name", "suite", "seeds", "axes"):
        if key not in raw:
            raise BenchError(f"{where}: missing required key '{key}'")
    return raw


def _identity(raw: dict[str, Any], where: str) -> tuple[str, str, list[int]]:
    """name, description and seeds."""
    name = raw["name"]
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        shown = f"{name[:40]!r}... ({len(name)} characters)" if isinstance(name, str) and len(name) > 60 else repr(name)
        raise BenchError(f"{where}: 'name' is {shown}; use letters, digits, '.', '_' and '-', at most {MAX_NAME} "
                         "characters (it names the study's results folder)")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise BenchError(f"{where}: 'description' must be a string")
    seeds = raw["seeds"]
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise BenchError(f"{where}: 'seeds' is {seeds!r}; give a non-empty list of integers >= 0, e.g. [0, 1]")
    if len(set(seeds)) != len(seeds):
        raise BenchError(f"{where}: 'seeds' lists a seed twice ({seeds!r})")
    if max(seeds) > MAX_SEED:
        raise BenchError(f"{where}: 'seeds' holds {max(seeds)}, past {MAX_SEED} (numpy's 32-bit seeds); give seeds "
                         f"from 0 to {MAX_SEED}")
    return name, description, seeds


def _strategy(raw: dict[str, Any], where: str) -> tuple[str, int | None, int]:
    """strategy, samples (random only) and sample_seed."""
    strategy = raw.get("strategy", "grid")
    if strategy not in STRATEGIES:
        raise BenchError(f"{where}: 'strategy' is {strategy!r}; choose grid or random")
    samples = raw.get("samples")
    if strategy == "random":
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
            raise BenchError(f"{where}: strategy random needs 'samples', a positive integer (the points to draw)")
    elif samples is not None:
        raise BenchError(f"{where}: 'samples' is for strategy = \"random\"; remove it or set the strategy")
    sample_seed = raw.get("sample_seed", 0)
    if not isinstance(sample_seed, int) or isinstance(sample_seed, bool):
        raise BenchError(f"{where}: 'sample_seed' must be an integer")
    return strategy, samples, sample_seed


def _fixed(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """[set] as dotted suite keys, each one a key of the suite schema."""
    fixed_raw = raw.get("set", {})
    if not isinstance(fixed_raw, dict):
        raise BenchError(f"{where}: 'set' must be a table ([set]) of suite keys and values")
    fixed = _flatten_set(fixed_raw)
    for key in fixed:
        if schema_node(key) is None:
            raise BenchError(f"{where}: [set] unknown suite key '{key}'; {_unknown_key_hint(key, schema_keys())}")
    return fixed


def _axes(raw: dict[str, Any], fixed: dict[str, Any], base_path: Path, where: str) -> dict[str, list[Any]]:
    """[axes] as dotted suite keys -> values; each value on its own must make a valid suite."""
    if not isinstance(raw["axes"], dict) or not raw["axes"]:
        raise BenchError(f"{where}: 'axes' must be a table ([axes]) with at least one axis")
    axes = _flatten_axes(raw["axes"])
    for axis, values in axes.items():
        if schema_node(axis) is None:
            raise BenchError(f"{where}: unknown axis key '{axis}'; {_unknown_key_hint(axis, schema_keys())}")
        if axis in fixed:
            raise BenchError(f"{where}: axis '{axis}' is also in [set]; a key is either fixed or an axis")
        if not isinstance(values, list):
            raise BenchError(f"{where}: axis '{axis}' must be a list of values, got {toml_value(values)}")
        if not values:
            raise BenchError(f"{where}: axis '{axis}' is empty; give it at least one value")
        seen: set[str] = set()
        for value in values:
            if canonical(value) in seen:
                raise BenchError(f"{where}: axis '{axis}' lists the value {value_label(value)} twice")
            seen.add(canonical(value))
            # each value on its own must make a valid suite: the error names the axis and the value
            suite_with(base_path, {**fixed, axis: value}, f"{where}: axis '{axis}' value {toml_value(value)}")
    return axes


def _chosen_combos(raw: dict[str, Any], axes: dict[str, list[Any]], strategy: str, samples: int | None,
                   sample_seed: int, where: str) -> list[tuple[tuple[str, Any], ...]]:
    """The grid, less [[exclude]], a random draw of it (strategy random), plus [[include]]."""
    names = list(axes)
    grid = linked_grid(axes, linked_groups(raw.get("link"), axes, where))
    excludes = _entries(raw.get("exclude", []), "exclude", axes, where, every_axis=False)
    kept = [combo for combo in grid if not any(_matches(combo, entry) for entry in excludes)]
    if strategy == "random":
        if samples > len(kept):
            raise BenchError(f"{where}: 'samples' is {samples} but the grid has only {len(kept)} points "
                             "(after exclude); lower it or use strategy grid")
        chosen = set(random.Random(sample_seed).sample(range(len(kept)), samples))
        kept = [combo for i, combo in enumerate(kept) if i in chosen]
    for entry in _entries(raw.get("include", []), "include", axes, where, every_axis=True):
        for combo in itertools.product(*[[(axis, v) for v in entry[axis]] for axis in names]):
            if not any(_same(combo, other) for other in kept):
                kept.append(tuple(combo))
    if not kept:
        raise BenchError(f"{where}: no point is left to run (exclude removed them all)")
    return kept


def _points(kept: list[tuple[tuple[str, Any], ...]], base_path: Path, fixed: dict[str, Any],
            where: str) -> list[Point]:
    """Each combination resolved into its suite; two that resolve to the same suite are refused."""
    points: list[Point] = []
    by_identity: dict[str, Point] = {}
    for combo in kept:
        label = ", ".join(f"{axis}={value_label(value)}" for axis, value in combo)
        suite = suite_with(base_path, {**fixed, **dict(combo)}, f"{where}: the point {label}")
        point = Point(tuple(combo), suite)
        if point.identity in by_identity:
            raise BenchError(f"{where}: the points {by_identity[point.identity].label} and {point.label} resolve to the "
                             "same suite; drop one of the values")
        by_identity[point.identity] = point
        points.append(point)
    return points


def _same(a: tuple[tuple[str, Any], ...], b: tuple[tuple[str, Any], ...]) -> bool:
    return [canonical(v) for _, v in a] == [canonical(v) for _, v in b]


def _matches(combo: tuple[tuple[str, Any], ...], entry: dict[str, list[Any]]) -> bool:
    values = dict(combo)
    return all(canonical(values[axis]) in {canonical(v) for v in wanted} for axis, wanted in entry.items())


def _entries(raw: Any, kind: str, axes: dict[str, list[Any]], where: str, every_axis: bool) -> list[dict[str, list]]:
    """[[exclude]] / [[include]] entries as axis -> list of axis values. A value that is one of
    the axis's values is that value (axes may hold lists); otherwise a list names several."""
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise BenchError(f"{where}: '{kind}' must be a list of tables ([[{kind}]])")
    out = []
    for number, entry in enumerate(raw, start=1):
        entry = _flatten_entry(entry, list(axes))
        if not entry:
            raise BenchError(f"{where}: [[{kind}]] entry {number} is empty")
        for axis in entry:
            if axis not in axes:
                raise BenchError(f"{where}: [[{kind}]] entry {number} names '{axis}', which is not an axis; "
                                 f"the axes are {', '.join(axes)}")
        if every_axis:
            missing = [axis for axis in axes if axis not in entry]
            if missing:
                raise BenchError(f"{where}: [[{kind}]] entry {number} gives no value for the axis "
                                 f"'{missing[0]}'; an included point names every axis")
        parsed: dict[str, list[Any]] = {}
        for axis, value in entry.items():
            known = {canonical(v): v for v in axes[axis]}
            if canonical(value) in known:
                parsed[axis] = [known[canonical(value)]]
            elif isinstance(value, list) and value and all(canonical(v) in known for v in value):
                parsed[axis] = [known[canonical(v)] for v in value]
            else:
                raise BenchError(f"{where}: [[{kind}]] entry {number}: axis '{axis}' value {toml_value(value)} "
                                 f"is not one of the axis's values; add it to [axes]")
        out.append(parsed)
    return out
