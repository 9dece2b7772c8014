"""The result file's contract in machine-readable form: one JSON Schema, and the migrations
that bring files of older schema versions up to it.

Writers validate a record before it reaches disk; readers migrate a file to the current
version, then validate it, and name the file and the field when it does not fit. A change
of the record's shape is a new SCHEMA_VERSION plus one entry in MIGRATIONS (old -> old + 1),
so every file ever written still loads.
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any, Callable

SCHEMA_VERSION = 3
SCHEMA_PATH = Path(__file__).resolve().with_name("result.schema.json")


@functools.cache
def result_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@functools.cache
def _validator():
    # imported here: only commands that write or read result files pay for jsonschema
    from jsonschema import Draft202012Validator

    schema = result_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def field_path(parts) -> str:
    """runs[0].curve[3].accuracy from jsonschema's path parts."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the record)"


def problem(record: Any) -> str | None:
    """None when the record fits the schema; else one line naming the first failing field."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator().iter_errors(record))
    if error is None:
        return None
    where = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = next(k for k in error.validator_value if k not in error.instance)
        return f"field {field_path([*where, missing])} is missing"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        extra = next(k for k in error.instance if k not in known)
        return f"field {field_path([*where, extra])} is not in the result schema"
    message = " ".join(error.message.split())
    if len(message) > 160:
        message = message[:157] + "..."
    return f"field {field_path(where)}: {message}"


# ---------------------------------------------------------------- migrations ----

def _v1_to_v2(record: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 has every key present (null where unknown) and the wall-clock anchors of each run.

    Schema-1 files were written by versions of bench that recorded fewer figures: what they
    did not record becomes null (not measured), never an invented value. The model's args are
    the resolved suite's, which is where the runner took them from.
    """
    # only what is there and of the right kind is touched: a malformed file is the validator's to name
    invocation = record.get("invocation")
    if isinstance(invocation, dict):
        for key in ("loader", "matmul_flops_per_s", "matmul_dtype", "race"):
            invocation.setdefault(key, None)
    model, suite = record.get("model"), record.get("suite")
    if isinstance(model, dict) and "args" not in model and isinstance(suite, dict):
        resolved_model = (suite.get("resolved") or {}).get("model") if isinstance(suite.get("resolved"), dict) else None
        if isinstance(resolved_model, dict) and "args" in resolved_model:
            model["args"] = resolved_model["args"]
    if isinstance(record.get("env"), dict):
        record["env"].setdefault("triton", None)
    if isinstance(record.get("aggregate"), dict):
        record["aggregate"].setdefault("median_mfu", None)
    runs = record.get("runs")
    for run in runs if isinstance(runs, list) else []:
        if not isinstance(run, dict):
            continue
        for key in ("energy_method", "max_power_w", "mean_gpu_utilization_pct", "nvml_peak_memory_used_mb", "mfu",
                    "init_start_unix_s", "clock_start_unix_s", "eval_compiled", "recompiles_in_timed_region",
                    "warmup_steps", "batch_dtype", "power_source", "monitored_s"):
            run.setdefault(key, None)
        curve = run.get("curve")
        for point in curve if isinstance(curve, list) else []:
            if isinstance(point, dict):
                for key in ("start_s", "train_end_s", "eval_start_s"):
                    point.setdefault(key, None)
    return record


def _run_v2_to_v3(run: dict[str, Any], mode: Any, target: float) -> None:
    """A schema-2 budget run had the whole timed region as its time to target, reached or not:
    only a run that reached the target keeps a time (and gets its steps); the first crossing is
    read off the curve's evaluated epochs."""
    from bench.record.run import first_reached

    reached = run.get("status") == "complete" and run.get("reached_target") is True
    if not reached:
        run["time_to_target_s"] = None
        if run.get("status") == "complete" and mode == "budget":
            run.setdefault("note", f"did not reach {target} within its budget")
    run.setdefault("steps_to_target", run.get("steps") if reached else None)
    curve = run.get("curve")
    points = [p for p in curve if isinstance(p, dict) and isinstance(p.get("epoch"), (int, float))
              and isinstance(p.get("step"), int) and isinstance(p.get("time_s"), (int, float))
              and (p.get("accuracy") is None or isinstance(p.get("accuracy"), (int, float)))
              ] if isinstance(curve, list) else []
    sparsity = run.get("sparsity") if isinstance(run.get("sparsity"), dict) else {}
    crossing = first_reached(points, target, sparsity.get("pruned_after_epochs") or [])
    for key, value in crossing.items():
        run.setdefault(key, value)


def _v2_to_v3(record: dict[str, Any]) -> dict[str, Any]:
    """Schema 3: a run's time to target is set only when it reached the target (a budget run of
    a schema-2 file whose accuracy fell short loses the timed region it had as its time), with
    its steps and first crossing; the aggregate states its pass rule (schema-2 verdicts were
    all the mean rule), counts the runs that reached, takes its time figures over those only,
    has the timed region's own median and clips the accuracy CI to [0, 1]."""
    from bench.record.stats import aggregate

    suite = record.get("suite") if isinstance(record.get("suite"), dict) else {}
    resolved = suite.get("resolved") if isinstance(suite.get("resolved"), dict) else {}
    old = record.get("aggregate")
    target = resolved.get("target", old.get("target") if isinstance(old, dict) else None)
    runs = record.get("runs")
    if not isinstance(target, (int, float)) or not isinstance(runs, list) or not isinstance(old, dict):
        return record  # malformed: the validator names it
    for run in runs:
        if isinstance(run, dict):
            _run_v2_to_v3(run, resolved.get("mode"), target)
    old.setdefault("pass_rule", "mean")
    old.setdefault("reached_runs", sum(isinstance(r, dict) and r.get("time_to_target_s") is not None for r in runs))
    old.setdefault("median_timed_s", None)
    try:
        fresh = aggregate([r for r in runs if isinstance(r, dict)], target)
    except (KeyError, TypeError, ValueError):
        return record  # a run without the fields the statistics need: the validator names it
    # the verdict as written stands (INCOMPLETE, or a schema-2 PASS under the mean rule)
    for key in ("pass_rule", "reached_runs", "accuracy_ci95", "median_time_s", "min_time_s", "max_time_s",
                "iqr_time_s", "olympic_mean_time_s", "median_timed_s"):
        old[key] = fresh[key]
    return record


MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3}


def migrate(record: dict[str, Any]) -> dict[str, Any]:
    """The record brought to SCHEMA_VERSION (a copy; the file itself is never rewritten).

    The caller has checked that the version is one this code knows (see `known_version`)."""
    version = record["schema_version"]
    if version == SCHEMA_VERSION:
        return record
    record = copy.deepcopy(record)
    while version < SCHEMA_VERSION:
        record = MIGRATIONS[version](record)
        version += 1
        record["schema_version"] = version
    return record


def known_version(version: Any) -> bool:
    """The current version, or an older one with a migration path."""
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= SCHEMA_VERSION:
        return False
    return all(v in MIGRATIONS for v in range(version, SCHEMA_VERSION))
