"""The spec file: its one row type and report type, written atomically by `bench specs` and read
back by `bench compare` (bench.reports.specs) through the same types, so the reader reads exactly
the keys the writer writes.

A file (`results/specs/specs-<machine>-<host>-<UTC time>.json`, with a Markdown twin) is

    {"schema_version": 1, "kind": "specs", "created": "...Z", "env": {fingerprint},
     "settings": {how it was measured}, "competing_cpu_share": float | null, "rows": [SpecRow...]}

A row holds the network's figures and, per device, an entry
`{"batch", "note", "reason", "inference": timing | null, ["train": timing | null, "train_reason"],
["memory_mb", "train_memory_mb" on CUDA], "competing_cpu_share"}` where a timing is
`{"images_per_s", "median_ms", "iqr_ms", "timed_batches"}`.

Nothing here imports torch: reports read these files without it.
"""

from __future__ import annotations

import json
import numbers
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.record.files import ResultNotWritten, link_new, staged_file

SCHEMA_VERSION = 1
KIND = "specs"
PHASES = ("inference", "train")  # the timed phases of a device entry


class SpecFormatError(ValueError):
    """A spec file that is not what `bench specs` writes; the message names the key."""


_NUMBER = (numbers.Real,)
_COUNT = (numbers.Integral,)
_KIND_NAMES = {str: "text", list: "a list", dict: "an object", numbers.Real: "a number", numbers.Integral: "an integer"}


def _check(raw: dict[str, Any], key: str, kinds: tuple[type, ...], where: str) -> Any:
    """raw[key] when it is one of `kinds` (a bool is no number here); else the error naming the key."""
    value = raw.get(key)
    if key not in raw or isinstance(value, bool) or not isinstance(value, kinds):
        got = type(value).__name__ if key in raw else "nothing"
        raise SpecFormatError(f"{where}.{key}: expected {' or '.join(_KIND_NAMES[k] for k in kinds)}, got {got}")
    return value


@dataclass
class SpecRow:
    """One network's line of the spec table (field order is the JSON's key order)."""

    name: str
    input: list[int]
    num_classes: int
    feature_layers: int
    decision_layers: int
    params: int
    trainable_params: int
    forward_flops: int
    forward_gflops: float
    forward_gmacs: float
    train_gflops: float
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any, where: str = "row") -> SpecRow:
        if not isinstance(raw, dict):
            raise SpecFormatError(f"{where}: expected an object, got {type(raw).__name__}")
        kinds: dict[str, tuple[type, ...]] = {"name": (str,), "input": (list,), "devices": (dict,),
                                               "forward_gflops": _NUMBER, "forward_gmacs": _NUMBER,
                                               "train_gflops": _NUMBER}
        values = {f.name: _check(raw, f.name, kinds.get(f.name, _COUNT), where) for f in fields(cls)}
        for device, entry in values["devices"].items():
            if not isinstance(entry, dict):
                raise SpecFormatError(f"{where}.devices.{device}: expected an object, got {type(entry).__name__}")
        return cls(**values)

    def throughputs(self) -> dict[str, float]:
        """Images per second by "<device> <phase>" ("cpu inference", "cuda train"); unmeasured ones left out."""
        out: dict[str, float] = {}
        for device, entry in self.devices.items():
            for phase in PHASES:
                timing = entry.get(phase)
                rate = timing.get("images_per_s") if isinstance(timing, dict) else None
                if isinstance(rate, numbers.Real) and not isinstance(rate, bool):
                    out[f"{device} {phase}"] = float(rate)
        return out


@dataclass
class SpecReport:
    """A whole spec file: the machine and settings it was measured with, and its rows."""

    created: str
    env: dict[str, Any]
    settings: dict[str, Any]
    competing_cpu_share: float | None = None
    rows: list[SpecRow] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    kind: str = KIND

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": self.schema_version, "kind": self.kind, "created": self.created, "env": self.env,
                "settings": self.settings, "competing_cpu_share": self.competing_cpu_share,
                "rows": [row.to_json() for row in self.rows]}

    @classmethod
    def from_json(cls, raw: Any) -> SpecReport:
        if not isinstance(raw, dict):
            raise SpecFormatError(f"expected an object, got {type(raw).__name__}")
        if raw.get("kind") != KIND or raw.get("schema_version") != SCHEMA_VERSION:
            raise SpecFormatError(f"not a spec file of schema {SCHEMA_VERSION} (kind {raw.get('kind')!r}, "
                                  f"schema_version {raw.get('schema_version')!r})")
        share = raw.get("competing_cpu_share")
        if share is not None:
            _check(raw, "competing_cpu_share", _NUMBER, "file")
        rows = [SpecRow.from_json(r, f"rows[{i}]") for i, r in enumerate(_check(raw, "rows", (list,), "file"))]
        return cls(created=_check(raw, "created", (str,), "file"), env=_check(raw, "env", (dict,), "file"),
                   settings=_check(raw, "settings", (dict,), "file"), competing_cpu_share=share, rows=rows)


def read_spec_report(path: Path) -> SpecReport:
    """A spec file; OSError, UnicodeDecodeError, json.JSONDecodeError or SpecFormatError when it is not one."""
    return SpecReport.from_json(json.loads(Path(path).read_text()))


def shape_text(shape: list[int] | tuple[int, ...]) -> str:
    """An input shape as the table and the CSV write it: 3x224x224."""
    return "x".join(str(s) for s in shape)


# =============================================================================== writing

def slug(text: str | None, limit: int = 40) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
    return text[:limit].rstrip("-") or "unknown"


def specs_stem(report: SpecReport) -> str:
    """`specs-<gpu or cpu model>-<hostname>-<UTC time>`: the machine the figures belong to, then when."""
    env, devices = report.env, report.settings["devices"]
    on_gpu = devices.get("cuda", {}).get("measured") and env.get("gpu")
    machine = env["gpu"]["name"] if on_gpu else (env.get("cpu") or {}).get("model")
    stamp = report.created.replace("-", "").replace(":", "")
    return f"specs-{slug(machine)}-{slug(env.get('hostname'), 32)}-{stamp}"


def write_specs(report: SpecReport, markdown: str, out_dir: Path) -> tuple[Path, Path]:
    """Write the report as JSON and its `markdown` view under fresh names; never overwrites a file.

    Each file is written in full to a temp file first and then hard-linked to its name:
    os.link is atomic and fails if the name exists, so a reader never sees half a file
    and an earlier report is never replaced (a later suffix -2, -3 ... is taken instead).
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"--out: cannot create {out_dir} ({exc.strerror or exc})") from None
    json_text = json.dumps(report.to_json(), indent=1, allow_nan=False) + "\n"
    try:
        with staged_file(out_dir, json_text, ".json") as staged_json, \
                staged_file(out_dir, markdown, ".md") as staged_md:
            stem = specs_stem(report)
            for attempt in range(1, 1000):
                name = stem if attempt == 1 else f"{stem}-{attempt}"
                json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
                if not link_new(staged_json, json_path):
                    continue
                if not link_new(staged_md, md_path):  # a stray Markdown file holds this name: give it up whole
                    os.unlink(json_path)
                    continue
                return json_path, md_path
        raise BenchError(f"--out: no free file name for {stem} in {out_dir}")
    except PermissionError as exc:
        raise BenchError(f"--out: {out_dir} is not writable ({exc.strerror or exc})") from None
    except OSError as exc:  # a full disk after the measuring: a fault (exit 3), no file published
        raise ResultNotWritten(f"specs not written in {out_dir} ({exc.strerror or exc}); the files already there "
                               "are untouched; free some space and run again") from None
