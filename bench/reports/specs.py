"""Network specification tables (`results/specs/*.json`, written by `bench specs`) for `bench compare`.

A file is read through the type `bench specs` writes it with (bench.specs.files.SpecReport), so
the reader knows exactly its keys: rows of `SpecRow`, whose throughputs are the images per
second of each measured device and phase ("cpu inference", "cuda train"). A file of another
shape is skipped with a notice that names the key; no folder means no spec section.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.progress import NullReporter, Reporter
from bench.reports.frame import machine_label
from bench.specs.files import SpecFormatError, SpecRow, read_spec_report


@dataclass
class SpecTable:
    machine: str
    path: Path
    rows: list[SpecRow]


def read_spec_file(path: Path, reporter: Reporter) -> SpecTable | None:
    try:
        report = read_spec_report(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        reporter.notice(f"skipped spec table {path}: not readable as JSON ({type(exc).__name__})")
        return None
    except SpecFormatError as exc:
        reporter.notice(f"skipped spec table {path}: not a `bench specs` file ({exc})")
        return None
    if not report.rows:
        reporter.notice(f"skipped spec table {path}: no rows")
        return None
    return SpecTable(machine=machine_label(report.env), path=path, rows=report.rows)


def read_spec_tables(folder: Path, reporter: Reporter | None = None) -> list[SpecTable]:
    """Every readable spec table in `folder` (none when the folder does not exist)."""
    reporter = reporter or NullReporter()
    if not Path(folder).is_dir():
        return []
    tables = [read_spec_file(p, reporter) for p in sorted(Path(folder).glob("*.json")) if not p.name.startswith(".")]
    return [t for t in tables if t is not None]
