"""One cell: one ordinary invocation (one run, one seed) of a point's suite, as its result record.

A cell runs `run_invocation` exactly as `bench run` does, into a scratch folder of its own,
and hands the record back: the study's driver alone writes the study's files, so a cell on
another machine (a Ray worker) needs nothing of the driver's disk and writes nothing there.
A cell does not raise for a failure of its own: the error becomes a `failed` record with the
reason, which the study keeps and lists. Ctrl-C is no failure of the cell: it propagates.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.progress import Reporter
from bench.record import build
from bench.record.files import read_result, result_files
from bench.suites import Suite


@dataclass(frozen=True)
class CellJob:
    """What a worker needs to run a cell; picklable, and it reads no file of the study."""

    key: str                  # the cell's identity: resolved suite's hash and seed
    label: str                # its axis values and seed, for people
    suite: Suite              # the point's resolved suite
    seed: int
    device: str               # auto | cpu | cuda, resolved where the cell runs
    command: list[str]        # the `bench run` line that is this cell
    study: dict[str, Any]     # the result's `study` block


def run_cell(job: CellJob, reporter: Reporter | None = None) -> dict[str, Any]:
    """The cell's result record: complete or diverged, or failed with the reason."""
    from bench.runner import Interrupted, run_invocation  # torch: imported where cells run

    started = build.now()
    scratch = Path(tempfile.mkdtemp(prefix="bench-cell-"))
    try:
        try:
            record, _ = run_invocation(job.suite, runs=1, seed=job.seed, device_choice=job.device,
                                       results_dir=scratch, reporter=reporter, command=job.command)
        except Interrupted:
            raise
        except Exception as exc:  # this cell failed; the study goes on and records why
            # the invocation saved a failed record when it got as far as starting one
            record = _saved(scratch) or failed_record(job, exc, started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record["study"] = job.study
    return record


def _saved(folder: Path) -> dict[str, Any] | None:
    """The record the invocation saved in its scratch folder, if it got as far as one."""
    files = result_files(folder)
    return read_result(files[-1])[0] if files else None


def failed_record(job: CellJob, exc: BaseException | str, started: str | None = None) -> dict[str, Any]:
    """An ordinary result record (same schema as `bench run`'s) for a cell that produced none:
    status failed, no runs, the error. `exc` may be a reason in words (a worker that died)."""
    import torch

    # where the cell would have trained ("auto" as the runner resolves it)
    device = job.device if job.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    record = build.failed_record(job.suite, seed=job.seed, device=device, command=job.command,
                                 error=build.error_block(exc), started_at=started)
    record["study"] = job.study
    return record
