"""One cell: one ordinary invocation (one run, one seed) of a point's suite, as its result record.

A cell runs `run_invocation` exactly as `bench run` does, into a scratch folder of its own,
and hands the record back: the study's driver alone writes the study's files, so a cell on
another machine (a Ray worker) needs nothing of the driver's disk and writes nothing there.
A cell does not raise for a failure of its own: the error becomes a `failed` record with the
reason, which the study keeps and lists. Ctrl-C is no failure of the cell: it propagates.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
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
    nproc_per_node: int = 1   # ranks of the cell's one run (the study's nproc_per_node): >1 runs under torchrun


def run_cell(job: CellJob, reporter: Reporter | None = None) -> dict[str, Any]:
    """The cell's result record: complete or diverged, or failed with the reason."""
    from bench.runner import Interrupted, run_invocation  # torch: imported where cells run

    started = build.now()
    scratch = Path(tempfile.mkdtemp(prefix="bench-cell-"))
    try:
        if job.nproc_per_node > 1:
            return _run_ranks(job, scratch, started)
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


def rank_command(job: CellJob, scratch: Path) -> list[str]:
    """The cell as `bench run` on nproc_per_node ranks of this machine: the suite's file with the
    point's values as --set, so the ranks resolve the very suite of the cell."""
    from bench.studies.study import toml_value

    sets = [arg for key, value in job.suite.overrides.items() for arg in ("--set", f"{key}={toml_value(value)}")]
    return [sys.executable, "-m", "bench", "run", str(Path(job.suite.path).resolve()), "--runs", "1", "--seed",
            str(job.seed), *sets, "--device", job.device, "--results", str(scratch), "--nproc-per-node",
            str(job.nproc_per_node)]


def _run_ranks(job: CellJob, scratch: Path, started: str) -> dict[str, Any]:
    """A cell that is itself a torchrun run: the launcher in a child process (its ranks are its
    children, so Ctrl-C and the end of a worker reach them), rank 0's record read back."""
    done = subprocess.run(rank_command(job, scratch), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, errors="replace")
    if done.returncode == 130:
        from bench.runner import Interrupted

        raise Interrupted(None)
    record = _saved(scratch)
    if record is None:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        record = failed_record(job, f"the {job.nproc_per_node}-rank launcher ended with exit code "
                                    f"{done.returncode}: {lines[-1] if lines else 'no message'}", started)
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
