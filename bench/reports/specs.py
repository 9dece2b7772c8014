"""Network specification tables (`results/specs/*.json`, written by `bench specs`), read leniently.

The spec format is young, so this reader accepts the shapes it is likely to take
rather than one exact schema: a file is a list of rows, or an object holding its rows
under one of ROW_LISTS (and optionally an `env` fingerprint naming the machine). A row
has a name (name | model | net | arch), a parameter count, a FLOP figure, and any
number of throughputs: every numeric field, at any depth, whose key says images per
second (images_per_s, img_s, fps, throughput, ...) is one, labelled by its key path.
A file that yields no rows is skipped with a notice; no folder means no spec section.
"""

from __future__ import annotations

import json
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.progress import NullReporter, Reporter
from bench.reports.frame import machine_label

ROW_LISTS = ("rows", "models", "nets", "networks", "table", "specs", "results", "entries")
NAME_KEYS = ("name", "model", "net", "network", "arch")
# a throughput key: one of these words, bounded by the start, the end or a separator
# (so "gpu_fps" and "images_per_s.cpu" are throughputs, "img_size" is not)
THROUGHPUT_KEY = re.compile(r"(^|[._/ -])(images?_per_s(ec)?|imgs?_per_s(ec)?|img_s|images_s|fps|throughput|"
                            r"images/s|img/s)($|[._/ -])", re.IGNORECASE)
# (key, factor to parameters)
PARAM_KEYS = (("params", 1), ("parameters", 1), ("num_params", 1), ("param_count", 1), ("params_m", 1e6),
              ("mparams", 1e6))
# (key, factor to GFLOPs); a multiply-add is 2 FLOPs
FLOP_KEYS = (("forward_gflops", 1), ("gflops", 1), ("gflop", 1), ("gflops_per_image", 1), ("forward_flops", 1e-9),
             ("flops", 1e-9), ("flops_per_image", 1e-9), ("mflops", 1e-3), ("forward_gmacs", 2), ("gmacs", 2),
             ("macs", 2e-9))


@dataclass
class SpecRow:
    name: str
    params: float | None
    gflops: float | None
    throughputs: dict[str, float] = field(default_factory=dict)  # key path -> images/s


@dataclass
class SpecTable:
    machine: str
    path: Path
    rows: list[SpecRow]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else None


def _first(row: dict[str, Any], keys: tuple[tuple[str, float], ...]) -> float | None:
    lowered = {k.lower(): v for k, v in row.items()}
    for key, factor in keys:
        number = _number(lowered.get(key))
        if number is not None:
            return number * factor
    return None


def _is_throughput(key_path: str) -> bool:
    return THROUGHPUT_KEY.search(key_path) is not None


def throughput_label(key_path: str) -> str:
    """'devices.cuda.inference.images_per_s' reads 'cuda inference': the path without the
    container and unit words (the table says images/s); a bare 'gpu_fps' stays as it is."""
    parts = [p for p in key_path.split(".") if p.lower() not in ("devices", "images_per_s", "throughput")]
    return " ".join(parts) or key_path


def parse_row(raw: Any) -> SpecRow | None:
    if not isinstance(raw, dict):
        return None
    name = next((str(raw[k]) for k in NAME_KEYS if isinstance(raw.get(k), str)), None)
    if name is None:
        return None
    throughputs = {throughput_label(key): float(v) for key, v in _flatten(raw).items()
                   if _is_throughput(key) and _number(v) is not None}
    return SpecRow(name=name, params=_first(raw, PARAM_KEYS), gflops=_first(raw, FLOP_KEYS), throughputs=throughputs)


def _rows_of(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ROW_LISTS:
            if isinstance(data.get(key), list):
                return data[key]
            if isinstance(data.get(key), dict):  # {"resnet18": {...}, ...}: the key is the name
                return [{"name": name, **value} for name, value in data[key].items() if isinstance(value, dict)]
    return []


def read_spec_file(path: Path, reporter: Reporter) -> SpecTable | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        reporter.notice(f"skipped spec table {path}: not readable as JSON ({type(exc).__name__})")
        return None
    rows = [row for row in (parse_row(r) for r in _rows_of(data)) if row is not None]
    if not rows:
        reporter.notice(f"skipped spec table {path}: no rows with a name found")
        return None
    env = data.get("env") if isinstance(data, dict) else None
    machine = machine_label(env) if isinstance(env, dict) else path.stem
    return SpecTable(machine=machine, path=path, rows=rows)


def read_spec_tables(folder: Path, reporter: Reporter | None = None) -> list[SpecTable]:
    """Every readable spec table in `folder` (none when the folder does not exist)."""
    reporter = reporter or NullReporter()
    if not Path(folder).is_dir():
        return []
    tables = [read_spec_file(p, reporter) for p in sorted(Path(folder).glob("*.json")) if not p.name.startswith(".")]
    return [t for t in tables if t is not None]
