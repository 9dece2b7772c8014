"""The result record's blocks, built in one place: the invocation head that every result file
starts from, the error block, the failed record of an invocation that never got going, and
what saving does to a record (status, the aggregate over its runs, the finish time).

`bench run` (bench/runner.py) and a study's cell that produced nothing (bench/studies/cell.py)
build their records here, so both write one shape: the one bench/record/schema describes.
"""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING, Any

from bench.env import code_version, fingerprint
from bench.errors import BenchError
from bench.record.schema import SCHEMA_VERSION
from bench.record.stats import aggregate

if TYPE_CHECKING:  # only the annotations name it
    from bench.suites import Suite

# A partial invocation keeps the figures over its finished runs but earns no verdict.
PARTIAL_STATUSES = ("interrupted", "failed")


def now() -> str:
    """UTC wall-clock time as the record writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def suite_block(suite: Suite) -> dict[str, Any]:
    return {"name": suite.name, "hash": suite.hash, "overrides": suite.overrides, "path": str(suite.path),
            "resolved": suite.resolved}


def dataset_block(dataset: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    """What was trained on: the data set's name, origin, checksum and split sizes (an ArrayDataset),
    and the validation split carved out of the training set, with how it was drawn (or none)."""
    validation = dataset.validation_labels
    judged_on_validation = getattr(dataset, "judged_on", "test") == "validation"
    block = {"name": dataset.name, "source": dataset.source, "sha256": dataset.sha256,
             "train_size": len(dataset.train_labels),
             "test_size": 0 if judged_on_validation else len(dataset.test_labels),  # the test split unread
             "validation_size": 0 if validation is None else len(validation),
             "validation_split": dataset.validation_split,
             "classes": list(dataset.classes), "shape": list(shape)}
    if judged_on_validation:  # every deciding evaluation, and so each run's accuracy, is on validation
        block["judged_on"] = "validation"
    return block


def invocation_head(suite: Suite, *, run_id: str | None, status: str, env: dict[str, Any],
                    model: dict[str, Any] | None, dataset: dict[str, Any] | None, invocation: dict[str, Any],
                    started_at: str | None = None) -> dict[str, Any]:
    """A record with no run yet: who ran what, where, with which code (docs/design.md#4-result-files)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "id": run_id,
        "status": status,
        "started_at": started_at or now(),
        "finished_at": None,
        "suite": suite_block(suite),
        "code": code_version(),
        "env": env,
        "model": model,
        "dataset": dataset,
        "invocation": invocation,
        "runs": [],
        "aggregate": aggregate([], suite.target, suite.resolved["pass_rule"]),
        "error": None,
    }


def error_block(exc: BaseException | str, trace: str | None = None) -> dict[str, Any]:
    """The record's error. A BenchError is bad input, its one line says it all; any other
    exception is a bug and keeps its traceback (`trace`, else the exception's own). A reason
    in words (a worker that died) has no exception to name."""
    if isinstance(exc, str):
        return {"type": "WorkerError", "message": exc}
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if not isinstance(exc, BenchError):
        error["traceback"] = trace if trace is not None else "".join(traceback.format_exception(exc))
    return error


def finish(record: dict[str, Any], status: str, target: float) -> None:
    """What saving does: the status, the aggregate over the runs so far, the finish time."""
    record["status"] = status
    record["aggregate"] = aggregate(record["runs"], target, record["suite"]["resolved"].get("pass_rule", "mean"))
    if status in PARTIAL_STATUSES:
        record["aggregate"]["verdict"] = "INCOMPLETE"
    record["finished_at"] = now()


def failed_record(suite: Suite, *, seed: int, device: str, command: list[str], error: dict[str, Any],
                  started_at: str | None = None) -> dict[str, Any]:
    """An ordinary result record (same schema as `bench run`'s) for an invocation that produced
    none: status failed, no runs, the error. `device` is where it would have trained."""
    import torch

    record = invocation_head(
        suite, run_id="",  # the writer names it
        status="failed", env=fingerprint(torch.device(device)),
        model=None, dataset=None,  # never built, the data never loaded (the schema admits null for this)
        # the fields an invocation records, unknown (null) where it never got as far
        invocation={"device": device, "seeds": [seed], "data_prep_s": None, "loader": None,
                    "matmul_flops_per_s": None, "matmul_dtype": None, "command": command, "race": None},
        started_at=started_at)
    finish(record, "failed", suite.target)
    record["error"] = error
    return record
