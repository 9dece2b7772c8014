"""Suites: one TOML file each, validated against a declarative schema on load.

A suite resolves to a plain dict with every default filled in; that dict is what
the trainer reads, what the result file records, and what the suite hash covers
(so a `--set` override changes the hash). Every problem is a BenchError that names
the file and the key.
"""

from __future__ import annotations

import copy
import datetime
import difflib
import hashlib
import json
import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench.datasets import DATASET_NAMES
from bench.destinations import path_length_problem
from bench.errors import BenchError, did_you_mean
from bench.seeds import MAX_RUNS
from bench.suite_checks import cross_checks

REPO_ROOT = Path(__file__).resolve().parent.parent
# The package that ships suites/ (and results/calibration/ as its `calibration`) in a wheel:
# setup.py maps the folders into it, so they stay where they are in the repository.
SHIPPED_PACKAGE = "bench_suites"


def _checkout() -> bool:
    """True when bench runs from a clone (editable install, PYTHONPATH): its own suites/ beside it."""
    return (REPO_ROOT / "suites").is_dir() and (REPO_ROOT / "pyproject.toml").is_file()


def _shipped(part: str | None = None) -> Path | None:
    """A folder of the installed package data, read through importlib.resources; None when absent."""
    import importlib.resources

    try:
        resource = importlib.resources.files(SHIPPED_PACKAGE)
    except (ImportError, OSError):  # not installed; or an editable install's mapping (the clone is used then)
        return None
    if part is not None:
        resource = resource.joinpath(part)
    if isinstance(resource, Path):
        return resource if resource.is_dir() else None
    # a namespace package (the folders have no __init__.py) is a MultiplexedPath: its entries are paths
    entries = [entry for entry in resource.iterdir() if isinstance(entry, Path)] if resource.is_dir() else []
    return entries[0].parent if entries else None


def shipped_suites_dir() -> Path | None:
    """The suites bench ships: the clone's suites/, or the installed package's copy."""
    return REPO_ROOT / "suites" if _checkout() else _shipped()


def shipped_calibration_dir() -> Path | None:
    """The calibration files the shipped suites cite: the clone's results/calibration/, or the package's copy."""
    return REPO_ROOT / "results" / "calibration" if _checkout() else _shipped("calibration")


SUITES_DIR = shipped_suites_dir()

SCHEDULES = ("constant", "piecewise", "onecycle", "step", "cosine_restarts")
# adam and adadelta take torch's defaults for their other settings (betas, rho, eps);
# recipe.momentum and recipe.nesterov are SGD's (and Muon's non-filter part's).
OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta", "muon")


# ---------------------------------------------------------------- schema ----

@dataclass(frozen=True)
class Key:
    """One leaf of the schema: its type, a check on its value, and a default."""

    kind: str  # "int" | "float" | "bool" | "str" | "list" | "table"
    required: bool = False
    default: Any = None
    check: Callable[[Any], bool] | None = None
    expect: str = ""  # what a valid value looks like, for the error message
    choices: tuple[Any, ...] | None = None
    # A key added after suites' hashes were published: absent from the resolved suite unless a suite
    # sets it, so every existing suite resolves (and hashes, and records) exactly as before.
    omitted_unless_set: bool = False


def _positive(v: Any) -> bool:
    return v > 0


def _non_negative(v: Any) -> bool:
    return v >= 0


def parse_pass_rule(rule: str) -> tuple[str, float | None]:
    """("mean", None), ("every", None) or ("fraction", P); ValueError names what is wrong."""
    if rule in ("mean", "every"):
        return rule, None
    if rule.startswith("fraction:"):
        try:
            fraction = float(rule.split(":", 1)[1])
        except ValueError:
            fraction = math.nan
        if 0 < fraction <= 1:
            return "fraction", fraction
        raise ValueError(f"pass rule {rule!r}: P in fraction:P must be a number in (0, 1], e.g. fraction:0.8")
    raise ValueError(f"pass rule {rule!r}: use mean, every or fraction:P (0 < P <= 1)")


def _valid_pass_rule(v: Any) -> bool:
    try:
        parse_pass_rule(v)
    except ValueError:
        return False
    return True


# a name becomes part of file names (calibration files, result paths, --out pages) with ids beside it
MAX_NAME = 100
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,%d}" % (MAX_NAME - 1)
# no key is a document: a 100 MB string was copied into every result file (docs/limits.md)
MAX_STRING = 10_000

SCHEMA: dict[str, Any] = {
    # it names result files, calibration files and --out paths: no '/', no '..', nothing a shell mangles
    "name": Key("str", required=True, check=lambda v: re.fullmatch(NAME_PATTERN, v) is not None,
                expect=f"letters, digits, '.', '_' and '-', starting with a letter or digit, at most {MAX_NAME} "
                       "characters"),
    "description": Key("str", default=""),
    "mode": Key("str", default="budget", choices=("budget", "reach")),
    "target": Key("float", required=True, check=lambda v: 0 < v <= 1, expect="a fraction in (0, 1], e.g. 0.94"),
    "runs": Key("int", default=5, check=lambda v: 0 < v <= MAX_RUNS, expect=f"a positive integer, at most {MAX_RUNS:,}"),
    # where the target comes from: a published result, or a calibration file that `bench calibrate`
    # wrote from seeds the verdicts never use (bench.record.calibration); required of shipped suites
    "target_source": Key("str", check=lambda v: _valid_target_source(v),
                         expect='"reference: <who reported what, where>", "calibration:PATH" (PATH relative '
                                "to the suite's repository root, or absolute; the target is the calibration's) or "
                                '"goal: <why this target>; evidence calibration:PATH"'),
    # true while the target is not yet measured on the hardware the suite is sized for (a GPU
    # suite measured only as a CPU smoke test); `bench list` shows it
    "provisional": Key("bool", default=False),
    "devices": Key("list", default=["cpu", "cuda"], check=lambda v: all(d in ("cpu", "cuda") for d in v),
                   expect='a list drawn from "cpu", "cuda"'),
    # how the runs' accuracies decide the verdict: mean (airbench), every (MLPerf) or fraction:P
    "pass_rule": Key("str", default="mean", check=_valid_pass_rule,
                     expect="mean, every or fraction:P with 0 < P <= 1 (e.g. fraction:0.8)"),
    # a suite written by `bench tune`: the search it came from (storage, trials, space, machine, commit)
    "tuned_from": Key("table", omitted_unless_set=True),
    "dataset": {
        "name": Key("str", required=True, choices=DATASET_NAMES),
        "path": Key("str"),
        "train_size": Key("int", check=_positive, expect="a positive integer"),
        "test_size": Key("int", check=_positive, expect="a positive integer"),
        # Training images held out as a validation split (bench.runner.subset: a fixed seed-0 draw,
        # the same for every run); studies choose their best points on it. 0: no split.
        "validation_size": Key("int", default=0, check=_non_negative, expect="an integer >= 0 (0 = no split)"),
        # The split every deciding evaluation (and so the verdict's accuracy) is made on. "validation":
        # the validation split stands in for the test split, which is then never read (bench tune's
        # trials choose on it). Absent: the test split, as always.
        "judged_on": Key("str", choices=("test", "validation"), omitted_unless_set=True),
    },
    "model": {
        "name": Key("str", required=True),
        "args": Key("table", default={}),
        # fine-tuning: start from a saved state dict (a path; relative paths are taken from the
        # working directory, as on the command line), and optionally train only the decision
        # layers (the feature/decision split of the spec table: the model's `features` stay fixed)
        "init": Key("str", check=lambda v: path_length_problem(v) is None,
                    expect="a path the file system can hold (names up to 200 bytes)"),
        "freeze": Key("str", default="none", choices=("none", "features")),
    },
    "recipe": {
        "epochs": Key("float", required=True, check=_positive, expect="a positive number of epochs"),
        "batch_size": Key("int", required=True, check=_positive, expect="a positive integer"),
        # "auto": the policy trial picks the fastest evaluation batch (bench.train.policy)
        "eval_batch_size": Key("int_or_auto", default=1000, check=lambda v: v == "auto" or v > 0,
                               expect='a positive integer or "auto"'),
        "optimizer": Key("str", default="sgd", choices=OPTIMIZERS),
        "lr": Key("float", required=True, check=_positive, expect="a positive number"),
        "momentum": Key("float", default=0.9, check=lambda v: 0 <= v < 1, expect="a number in [0, 1)"),
        "nesterov": Key("bool", default=True),
        "weight_decay": Key("float", default=0.0, check=_non_negative, expect="a number >= 0"),
        "label_smoothing": Key("float", default=0.0, check=lambda v: 0 <= v < 1, expect="a number in [0, 1)"),
        # Norm-layer parameters train at lr * scale with weight decay / scale, so their
        # per-step decay is unchanged (airbench's bias_scaler).
        "norm_lr_scale": Key("float", default=1.0, check=_positive, expect="a positive number"),
        # Epochs during which a model's data-initialized whitening bias trains (airbench).
        "whiten_bias_epochs": Key("float", default=0.0, check=_non_negative, expect="a number >= 0"),
        "tta": Key("int", default=0, check=lambda v: v in (0, 1, 2),
                   expect="0 (none), 1 (mirror) or 2 (mirror + translate)"),
        "precision": Key("str", default="auto", choices=("auto", "fp32", "bf16", "fp16")),
        "channels_last": Key("str", default="auto", choices=("auto", "on", "off")),
        # auto: compiled where the policy trial estimates it pays back within the run (max-autotune on
        # CUDA, default on CPU; bench.train.policy.compile_pays)
        "compile": Key("str", default="off", choices=("off", "auto", "default", "reduce-overhead", "max-autotune")),
        # training steps on random labels before the clock (compiling, picking kernels), then undone
        "warmup_steps": Key("int", default=2, check=_non_negative, expect="an integer >= 0"),
        # worker processes of the torch loader (per-sample crops on the host); other loaders ignore it
        "workers": Key("int", default=0, check=lambda v: 0 <= v <= 64, expect="an integer from 0 to 64"),
        # several ranks: batch-norm statistics over the global batch (SyncBatchNorm, CUDA only);
        # false: each rank normalizes with its own slice's statistics
        "sync_bn": Key("bool", default=False),
        "curve_eval": Key("bool", default=True),
        # After the timed region: top-1 on this many training images (a fixed subset, all of
        # them when the set is smaller), recorded as the run's train_accuracy; 0 = not measured.
        "train_eval": Key("int", default=0, check=_non_negative, expect="an integer >= 0 (0 = off)"),
        # Reach mode: a deciding evaluation every this many epochs (0.25: four an epoch), inside the
        # clock, so time to target is resolved finer than an epoch; 0 = at each epoch's end only.
        "eval_every": Key("float", default=0.0, check=lambda v: 0 <= v <= 1,
                          expect="a number of epochs from 0 to 1 (0 = at each epoch's end only)"),
        # Seconds of the timed region after which the run stops, judged where it stands (bench tune
        # prunes a trial that cannot beat the best time so far). Absent: no limit.
        "time_limit_s": Key("float", check=_positive, expect="a positive number of seconds",
                            omitted_unless_set=True),
        "schedule": {
            "kind": Key("str", default="constant", choices=SCHEDULES),
            # piecewise: [[fraction of training, lr multiplier], ...] from 0 to 1
            "knots": Key("list", default=[[0.0, 1.0], [1.0, 1.0]], check=lambda v: _valid_knots(v),
                         expect="a list of [fraction, multiplier] pairs starting at 0 and ending at 1, "
                                "fractions increasing"),
            # onecycle (torch's definition, cosine annealing)
            "pct_start": Key("float", default=0.25, check=lambda v: 0 < v < 1, expect="a number in (0, 1)"),
            "div_factor": Key("float", default=25.0, check=_positive, expect="a positive number"),
            "final_div_factor": Key("float", default=1e4, check=_positive, expect="a positive number"),
            # step decay: multiply by gamma at each milestone epoch
            "milestones": Key("list", default=[], check=lambda v: all(isinstance(m, (int, float)) and m > 0 for m in v),
                              expect="a list of positive epoch numbers"),
            "gamma": Key("float", default=0.1, check=_positive, expect="a positive number"),
            # cosine with warm restarts (SGDR): first period t0 epochs, each next t_mult times longer
            # bounded (docs/limits.md): the period arithmetic stays finite
            "t0": Key("float", default=1.0, check=lambda v: v >= 1e-6, expect="a number of epochs >= 1e-6"),
            "t_mult": Key("float", default=1.0, check=lambda v: 1 <= v <= 1e6, expect="a number from 1 to 1e6"),
            "min_factor": Key("float", default=0.0, check=lambda v: 0 <= v <= 1, expect="a number in [0, 1]"),
        },
        "augment": {
            "flip": Key("bool", default=False),
            # airbench: after a random first epoch, each image's flip alternates every epoch
            "alternating_flip": Key("bool", default=False),
            "translate": Key("int", default=0, check=lambda v: 0 <= v <= 8, expect="an integer from 0 to 8 pixels"),
            "cutout": Key("int", default=0, check=_non_negative, expect="an integer >= 0 (square side in pixels)"),
        },
        # optimizer = "muon": conv filters take Muon steps with these settings, the rest SGD
        "muon": {
            "lr": Key("float", default=0.08, check=_positive, expect="a positive number"),
            "momentum": Key("float", default=0.6, check=lambda v: 0 <= v < 1, expect="a number in [0, 1)"),
            "nesterov": Key("bool", default=True),
            "ns_steps": Key("int", default=5, check=_positive, expect="a positive integer"),
            "weight_decay": Key("float", default=0.0, check=_non_negative, expect="a number >= 0"),
        },
        # weight EMA: every `every` steps a shadow copy moves toward the weights by (1 - decay);
        # evaluations use the shadow (DAWNBench ResNet-9's final form). 0 = off.
        "ema": {
            "every": Key("int", default=0, check=_non_negative, expect="an integer >= 0 (0 = off)"),
            "decay": Key("float", default=0.99, check=lambda v: 0 < v < 1, expect="a number in (0, 1)"),
        },
        # backpropagation through time for sequence models (a model with `sequence_logits`):
        # full (whole sequence), truncated (windows of `length` carrying the state), sliding
        # (windows of `length` every `step` steps, each step's loss once), shuffled (windows of
        # `length` every `step`, from zero state, shuffled across the batch's sequences)
        "bptt": {
            "mode": Key("str", default="none", choices=("none", "full", "truncated", "sliding", "shuffled")),
            "length": Key("int", default=0, check=_non_negative, expect="an integer >= 0 (window length in steps)"),
            "step": Key("int", default=0, check=_non_negative,
                        expect="an integer >= 0 (steps between window starts; 0 = length)"),
        },
        # sparse training (bench.sparsity): an L1 penalty, magnitude pruning, exact-sparsity targets
        "sparsity": {
            "method": Key("str", default="none", choices=("none", "l1", "magnitude")),
            # l1: coefficient of sum |w| over conv and linear weights, added to the loss
            "l1": Key("float", default=0.0, check=_non_negative, expect="a number >= 0"),
            # pruning (magnitude; optional after l1): by a threshold on |w|, or to an exact target
            "threshold": Key("float", check=_positive, expect="a positive number (prune weights with |w| below it)"),
            "target": Key("float", check=lambda v: 0 < v < 1,
                          expect="the fraction of prunable weights left active, in (0, 1), e.g. 0.05"),
            "scope": Key("str", default="global", choices=("global", "layer")),
            # prune after these epochs; several prune gradually toward the target
            "prune_epochs": Key("list", default=[], expect="a list of whole epochs"),
            # the retraining after the first pruning runs at the learning rate times this
            "retrain_lr_factor": Key("float", default=1.0, check=_positive, expect="a positive number"),
        },
        "lookahead": {
            # every k steps the weights move toward their slow average (airbench's lookahead EMA)
            "every": Key("int", default=0, check=_non_negative, expect="an integer >= 0 (0 = off)"),
            "decay": Key("float", default=0.95, check=lambda v: 0 < v < 1, expect="a number in (0, 1)"),
        },
    },
}


# reference: a published result; calibration: the target derived from bench calibrate's file by its
# rule; goal: a target named as a goal (91%, say), citing a calibration as evidence it is reachable
TARGET_SOURCE_KINDS = ("reference:", "calibration:", "goal:")


def _valid_target_source(text: str) -> bool:
    """One of the two kinds, with something after the colon (a reference's words, a file's path)."""
    return any(text.startswith(kind) and text[len(kind):].strip() for kind in TARGET_SOURCE_KINDS)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _valid_knots(knots: Any) -> bool:
    # numbers only: float() took "0.5" here, and the string reached numpy mid-run
    if not all(isinstance(k, list) and len(k) == 2 and _is_number(k[0]) and _is_number(k[1]) for k in knots):
        return False
    fracs, mults = [k[0] for k in knots], [k[1] for k in knots]
    return (len(knots) >= 2 and fracs[0] == 0 and fracs[-1] == 1
            and all(b > a for a, b in zip(fracs, fracs[1:])) and all(m >= 0 for m in mults))


_TYPE_NAMES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
               "list": "a list", "table": "a table", "int_or_auto": 'an integer or "auto"'}


def _check_type(kind: str, value: Any) -> Any | None:
    """Returns the value coerced to the schema type, or None when it does not fit."""
    if kind == "bool":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):  # bool is an int in Python; never accept it as a number
        return None
    if kind == "int":
        return value if isinstance(value, int) else None
    if kind == "int_or_auto":
        return value if isinstance(value, int) or value == "auto" else None
    if kind == "float":
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None
    if kind == "str":
        return value if isinstance(value, str) else None
    if kind == "list":
        return list(value) if isinstance(value, list) else None
    if kind == "table":
        return dict(value) if isinstance(value, dict) else None
    raise AssertionError(kind)


def _shown(value: Any) -> str:
    """A value for a one-line message: a long one is cut (a 300-character name filled the terminal)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text):,} characters)"


def _resolve(raw: dict[str, Any], schema: dict[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in raw:
        if key not in schema:
            close = difflib.get_close_matches(key, list(schema), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known keys: {', '.join(schema)}"
            raise BenchError(f"{where}: unknown key '{prefix}{key}'; {hint}")
    for key, spec in schema.items():
        name = prefix + key
        if isinstance(spec, dict):
            sub = raw.get(key, {})
            if not isinstance(sub, dict):
                raise BenchError(f"{where}: '{name}' must be a table ([{name}]), got {type(sub).__name__}")
            out[key] = _resolve(sub, spec, where, name + ".")
            continue
        if key not in raw:
            if spec.required:
                raise BenchError(f"{where}: missing required key '{name}'; add it ({_TYPE_NAMES[spec.kind]})")
            if not spec.omitted_unless_set:
                out[key] = copy.deepcopy(spec.default)
            continue
        value = _check_type(spec.kind, raw[key])
        if value is None:
            raise BenchError(f"{where}: '{name}' must be {_TYPE_NAMES[spec.kind]}, "
                             f"got {type(raw[key]).__name__} {raw[key]!r}")
        if spec.choices is not None and value not in spec.choices:
            raise BenchError(f"{where}: '{name}' is {value!r}; choose one of {', '.join(map(str, spec.choices))}")
        if spec.check is not None and not spec.check(value):
            raise BenchError(f"{where}: '{name}' is {_shown(value)}; it must be {spec.expect}")
        out[key] = value
    return out


# ---------------------------------------------------------------- suites ----

# Keys added after suites were hashed, at the default that keeps the old behaviour: left out of the
# hash, so every existing suite keeps its hash (and its results their identity) when bench gains them.
HASH_NEUTRAL_DEFAULTS = {("recipe", "eval_every"): 0.0}


def _hashed(resolved: dict[str, Any]) -> dict[str, Any]:
    out = dict(resolved)
    for (section, key), default in HASH_NEUTRAL_DEFAULTS.items():
        inner = out.get(section)
        if isinstance(inner, dict) and key in inner and inner[key] == default:
            out[section] = {k: v for k, v in inner.items() if k != key}
    return out

@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    resolved: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        canonical = json.dumps(_hashed(self.resolved), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def recipe(self) -> dict[str, Any]:
        return self.resolved["recipe"]

    @property
    def dataset(self) -> dict[str, Any]:
        return self.resolved["dataset"]

    @property
    def model(self) -> dict[str, Any]:
        return self.resolved["model"]

    @property
    def target(self) -> float:
        return self.resolved["target"]

    @property
    def mode(self) -> str:
        return self.resolved["mode"]

    @property
    def target_source(self) -> str | None:
        return self.resolved["target_source"]


def suite_dirs() -> list[Path]:
    """The shipped suites, plus any folders named in $BENCH_SUITES (os.pathsep separated)."""
    extra = [Path(p) for p in os.environ.get("BENCH_SUITES", "").split(os.pathsep) if p]
    return [*([SUITES_DIR] if SUITES_DIR is not None else []), *extra]


def searched_text() -> str:
    """Where suites were looked for, in words (for the error when none are found)."""
    folders = [str(folder) for folder in suite_dirs()]
    return ", ".join(folders) if folders else "no folder (bench ships none here and $BENCH_SUITES is unset)"


def available_suites(required: bool = False) -> dict[str, Path]:
    """Every suite by name (the first folder holding a name wins). `required`: finding none is a
    BenchError (a broken install, a wrong $BENCH_SUITES), not an empty list."""
    found: dict[str, Path] = {}
    for folder in suite_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    if required and not found:
        raise BenchError(f"no suites found in {searched_text()}; reinstall bench from its repository (pip install .) or name a "
                         "folder of .toml suites in $BENCH_SUITES")
    return found


def parse_override(text: str) -> tuple[str, Any]:
    """`recipe.lr=0.5` -> ("recipe.lr", 0.5). The value is read as TOML, else taken as a string."""
    if "=" not in text:
        raise BenchError(f"--set {text!r}: expected key=value, e.g. --set recipe.lr=0.5")
    key, _, value = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise BenchError(f"--set {text!r}: the key is empty; write it as section.key=value, e.g. recipe.epochs=2")
    try:
        parsed = tomllib.loads(f"v = {value.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value.strip()
    return key, parsed


def _apply_override(raw: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    node = raw
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise BenchError(f"{where}: cannot set '{dotted}': '{part}' is not a table in this suite")
    node[parts[-1]] = value


def load_suite(ref: str, overrides: list[str] | None = None) -> Suite:
    """Loads a suite by name (from suites/) or by path to a .toml file, with `--set` overrides."""
    path = _locate(ref)
    applied: dict[str, Any] = {}
    for text in overrides or []:
        key, value = parse_override(text)
        applied[key] = value
    where = str(path) + (f" (with --set {', '.join(f'{k}={_shown(v)}' for k, v in applied.items())})" if applied else "")
    return suite_with(path, applied, where)


def refuse_toml_dates(raw: Any, where: str, prefix: str = "") -> None:
    """TOML has dates and times; no key of a suite or a study is one. Refused where they are read,
    wherever they stand (a table, a list, an axis): they passed free-form tables and lists and
    broke the JSON of a hash or a record (`Object of type date is not JSON serializable`). A
    string past MAX_STRING characters is refused with them."""
    if isinstance(raw, (datetime.date, datetime.time)):  # datetime is a date
        raise BenchError(f"{where}: '{prefix or '(the file)'}' holds the TOML date/time {raw.isoformat()}; bench "
                         "reads no dates or times: give a number, or quote it as a string")
    if isinstance(raw, str) and len(raw) > MAX_STRING:
        raise BenchError(f"{where}: '{prefix}' is a string of {len(raw):,} characters, past {MAX_STRING:,} "
                         "(docs/limits.md); shorten it")
    if isinstance(raw, dict):
        for key, value in raw.items():
            refuse_toml_dates(value, where, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(raw, list):
        for i, value in enumerate(raw):
            refuse_toml_dates(value, where, f"{prefix}[{i}]")


def suite_with(path: Path, values: dict[str, Any], where: str) -> Suite:
    """The suite in `path` with dotted keys set to values (already parsed), validated; every
    problem is one BenchError line starting with `where`."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"{path}: malformed TOML ({exc}); fix the file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: cannot read the suite ({exc})") from None
    refuse_toml_dates(raw, str(path))
    for key, value in values.items():
        refuse_toml_dates(value, where, key)
        _apply_override(raw, key, copy.deepcopy(value), where)
    resolved = _resolve(raw, SCHEMA, where)
    cross_checks(resolved, where)
    return Suite(name=resolved["name"], path=path, resolved=resolved, overrides=dict(values))


def schema_node(dotted: str) -> Key | dict[str, Any] | None:
    """What a dotted key sets: a leaf (Key), a section (a table of keys), or None when the schema
    has no such key. A key inside a free-form table (model.args.hidden) is that table's leaf."""
    node: Any = SCHEMA
    for part in dotted.split("."):
        if isinstance(node, Key):
            return node if node.kind == "table" else None
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def schema_keys(node: dict[str, Any] | None = None, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the schema (for suggestions)."""
    out = []
    for key, spec in (SCHEMA if node is None else node).items():
        out += schema_keys(spec, f"{prefix}{key}.") if isinstance(spec, dict) else [prefix + key]
    return out


def _locate(ref: str) -> Path:
    looks_like_path = ref.endswith(".toml") or os.sep in ref or "/" in ref
    if looks_like_path:
        path = Path(ref)
        if not path.is_file():
            raise BenchError(f"suite file {ref} not found; give the path of a .toml suite or a name from 'bench list'")
        return path
    suites = available_suites(required=True)
    if ref in suites:
        return suites[ref]
    hint = did_you_mean(ref, suites, "run 'bench list' to see them")
    raise BenchError(f"unknown suite '{ref}'; {hint}")
