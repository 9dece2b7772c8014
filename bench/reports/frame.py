"""Result files -> pandas DataFrames: the one input of every report, comparison and check.

Three frames, all keyed by the invocation `id`:
  invocations  one row per result file (an invocation of N runs): status, aggregate, model, machine
  runs         one row per run (seed)
  curves       one row per point of a run's per-epoch curve

The files are read, validated and migrated by the one reader, bench.record.files
(load_results): a file that is no result is skipped with a notice, one the schema refuses
is a BenchError naming the file and the field.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench.destinations import path_argument
from bench.errors import BenchError
from bench.load import run_is_high, run_load
from bench.progress import Reporter
from bench.record.calibration import record_source_text
from bench.record.files import LoadedResult, load_results


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=path_argument, metavar="DIR",
                        help="folder of result files: its runs/ when it has one (default: results, or $BENCH_RESULTS)")


# ---------------------------------------------------------------- machine labels ----

def env_world_size(env: dict[str, Any]) -> int:
    """How many ranks computed one run, from the machine description (1 without a distributed part)."""
    return int((env.get("distributed") or {}).get("world_size") or 1)


def hardware_label(env: dict[str, Any]) -> str:
    """What computed: the GPU (with its count) when there is one, else the CPU model and cores.
    A run on several ranks says so: N× the GPU (DDP, nodes), or N ranks × the CPU, so that
    reports never put a DDP run beside a one-device run as the same machine."""
    world = env_world_size(env)
    if world <= 1:
        return device_label(env)
    scale = env["distributed"]
    nodes = scale.get("nnodes") or 1
    where = f"DDP, {nodes} nodes" if nodes > 1 else "DDP"
    names = [(r.get("gpu") or {}).get("name") for r in scale.get("ranks") or []]
    gpu = env.get("gpu") or {}
    if any(names) or gpu.get("name"):
        counts: dict[str, int] = {}
        for name in (names if any(names) else [gpu["name"]] * world):
            counts[str(name)] = counts.get(str(name), 0) + 1
        return " + ".join(f"{n}× {name}" for name, n in counts.items()) + f" ({where})"
    return f"{world} ranks × {device_label(env)} ({where})"


def device_label(env: dict[str, Any]) -> str:
    """The machine's devices, whatever the world size: a run's hardware per node."""
    gpu = env.get("gpu")
    if gpu and gpu.get("name"):
        count = gpu.get("count") or 1
        return f"{count}× {gpu['name']}" if count > 1 else str(gpu["name"])
    cpu = env.get("cpu") or {}
    model = re.sub(r"\((R|TM|tm|r)\)", "", cpu.get("model") or "unknown CPU")
    model = " ".join(model.split())
    cores = cpu.get("cores")
    return f"CPU {model}, {cores} cores" if cores else f"CPU {model}"


def machine_label(env: dict[str, Any]) -> str:
    """Hardware plus host: two hosts with the same GPU are two machines (drivers, cooling, neighbours).
    For a multi-node run the host is rank 0's."""
    host = env.get("hostname") or "unknown host"
    return f"{hardware_label(env)} on {host}"


def node_label(env: dict[str, Any]) -> str:
    """The machine without its world size: runs of one suite at several world sizes on the same
    node(s) share it, which is what scaling efficiency compares."""
    return f"{device_label(env)} on {env.get('hostname') or 'unknown host'}"


def code_label(code: dict[str, Any] | None) -> str:
    """Short commit with +dirty, or the package version when the code was not a git checkout."""
    code = code or {}
    commit = code.get("git_commit")
    if commit:
        return commit[:7] + ("+dirty" if code.get("git_dirty") else "")
    return f"v{code['version']} (no git)" if code.get("version") else "unknown"


def software_label(env: dict[str, Any], loader: str | None = None) -> str:
    cuda = env.get("cuda")
    label = f"torch {env.get('torch') or '?'}, " + (f"CUDA {cuda}" if cuda else "no CUDA")
    return label + (f", {loader} loader" if loader else "")


def loader_used(record: dict[str, Any]) -> str | None:
    """The loader the runs used (the invocation may only have said `auto`)."""
    for run in record.get("runs") or []:
        if isinstance(run, dict) and run.get("loader"):
            return run["loader"]
    return (record.get("invocation") or {}).get("loader")


# ---------------------------------------------------------------- frames ----

def _ci_half_width(ci: Any) -> float | None:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and None not in ci:
        return (ci[1] - ci[0]) / 2
    return None


def _planned_runs(record: dict[str, Any]) -> int | None:
    """How many runs the invocation meant to make (an interrupted one has fewer in `runs`)."""
    seeds = (record.get("invocation") or {}).get("seeds")
    if isinstance(seeds, list):
        return len(seeds)
    return ((record.get("suite") or {}).get("resolved") or {}).get("runs")


def _machine_columns(r: dict[str, Any]) -> dict[str, Any]:
    """Where an invocation ran: the machine, its accelerator and software (an invocation row's columns)."""
    env = r["env"] or {}
    gpu, cpu = env.get("gpu") or {}, env.get("cpu") or {}
    return {
        "machine": machine_label(env),
        "hardware": hardware_label(env),
        "node": node_label(env),
        "nnodes": (env.get("distributed") or {}).get("nnodes") or 1,
        "backend": (env.get("distributed") or {}).get("backend"),
        "hostname": env.get("hostname"),
        "device": env.get("device"),
        "gpu_name": gpu.get("name"),
        "gpu_count": gpu.get("count"),
        "gpu_memory_gb": gpu.get("memory_gb"),
        "gpu_driver": gpu.get("driver"),
        "world_size": world_size(r),
        "cpu_model": cpu.get("model"),
        "cpu_cores": cpu.get("cores"),
        "ram_gb": env.get("ram_gb"),
        "software": software_label(env, loader_used(r)),
        "loader": loader_used(r),
        "torch": env.get("torch"),
        "cuda": env.get("cuda"),
        "cudnn": env.get("cudnn"),
        "python": env.get("python"),
        "os": env.get("os"),
    }


def invocation_row(loaded: LoadedResult) -> dict[str, Any]:
    r = loaded.record
    suite, agg = r["suite"] or {}, r["aggregate"] or {}
    model, code, dataset = r.get("model") or {}, r.get("code") or {}, r.get("dataset") or {}
    resolved = suite.get("resolved") or {}
    ci = agg.get("accuracy_ci95")
    started = r.get("started_at") or ""
    return {
        "id": r["id"],
        "path": str(loaded.path),
        "status": r["status"],
        "suite": suite.get("name"),
        "suite_hash": suite.get("hash"),
        "overrides": json.dumps(suite.get("overrides") or {}, sort_keys=True),
        "mode": resolved.get("mode"),
        "started_at": r.get("started_at"),
        "finished_at": r.get("finished_at"),
        "date": started[:10] or None,
        "code": code_label(code),
        "git_commit": code.get("git_commit"),
        "git_dirty": code.get("git_dirty"),
        "code_version": code.get("version"),
        **_machine_columns(r),
        "model": model.get("name"),
        "params": model.get("params"),
        "trainable_params": model.get("trainable_params"),
        "active_params": model.get("active_params"),
        "active_fraction": model.get("active_fraction", agg.get("mean_active_fraction")),
        "active_flops_per_image": model.get("active_flops_per_image"),
        "sparsity_method": ((resolved.get("recipe") or {}).get("sparsity") or {}).get("method", "none"),
        "sparsity_target": ((resolved.get("recipe") or {}).get("sparsity") or {}).get("target"),
        "flops_per_image": model.get("flops_per_image"),
        "train_flops_per_image": model.get("train_flops_per_image"),
        "dataset": dataset.get("name"),
        "verdict": agg.get("verdict"),
        "target": agg.get("target", resolved.get("target")),
        "target_source": record_source_text(r),
        "runs": agg.get("runs"),
        "planned_runs": _planned_runs(r),
        "timed_runs": sum(1 for run in r.get("runs") or [] if isinstance(run, dict)
                          and run.get("status") == "complete" and run.get("time_to_target_s") is not None),
        "complete_runs": agg.get("complete_runs"),
        "mean_accuracy": agg.get("mean_accuracy"),
        "ci_low": ci[0] if isinstance(ci, (list, tuple)) and len(ci) == 2 else None,
        "ci_high": ci[1] if isinstance(ci, (list, tuple)) and len(ci) == 2 else None,
        "ci_half_width": _ci_half_width(ci),
        "accuracy_std": agg.get("accuracy_std"),
        "pass_fraction": agg.get("pass_fraction"),
        "pass_rule": agg.get("pass_rule", "mean"),
        "median_time_s": agg.get("median_time_s"),
        "median_timed_s": agg.get("median_timed_s"),
        "min_time_s": agg.get("min_time_s"),
        "max_time_s": agg.get("max_time_s"),
        "iqr_time_s": agg.get("iqr_time_s"),
        "olympic_mean_time_s": agg.get("olympic_mean_time_s"),
        "median_train_images_per_s": agg.get("median_train_images_per_s"),
        "mean_energy_j": agg.get("mean_energy_j"),
        **_load_columns(r.get("runs") or []),
        "error": (r.get("error") or {}).get("message") if isinstance(r.get("error"), dict) else r.get("error"),
    }


def _load_columns(runs: list[Any]) -> dict[str, Any]:
    """How many runs met high load (bench.load), how many were measured at all (files written
    before the load was recorded have none), and the highest share measured."""
    runs = [run for run in runs if isinstance(run, dict)]
    shares = [run_load(run).get("competing_cpu_share") for run in runs if run_load(run) is not None]
    shares = [s for s in shares if isinstance(s, (int, float))]
    return {"busy_runs": sum(run_is_high(run) is True for run in runs), "load_measured_runs": len(shares),
            "max_competing_cpu_share": max(shares) if shares else None}


BUSY_NOTE = ("busy: runs whose timed region met high load, other processes taking more than the threshold "
             "share of the machine's CPU (bench.load.HIGH_LOAD_SHARE); their times are suspect. Results from "
             "before bench recorded the load carry no mark: their load was not measured.")


def busy_mark(row: pd.Series) -> str:
    """' [busy: 2 of 3 runs]' after a time measured partly under high load; '' otherwise."""
    busy = row.get("busy_runs")
    if busy is None or pd.isna(busy) or int(busy) == 0:
        return ""
    return f" [busy: {int(busy)} of {int(row['runs'] or 0)} runs]"


def world_size(record: dict[str, Any]) -> int:
    """Processes that trained each run: the invocation's world size, else the machine
    description's (env.distributed), else 1 (a file from before distributed runs)."""
    recorded = (record.get("invocation") or {}).get("world_size")
    return int(recorded) if recorded else env_world_size(record.get("env") or {})


RUN_FIELDS = ("seed", "status", "accuracy", "validation_accuracy", "train_accuracy", "reached_target", "time_to_target_s",
              "steps_to_target", "first_reached_s", "first_reached_step", "timed_s",
              "epochs", "steps", "train_images", "train_time_s", "train_images_per_s", "mfu", "deciding_eval_s", "curve_eval_s",
              "init_s", "compile_s", "data_prep_s", "precision", "channels_last", "compile", "loader",
              "peak_memory_mb", "peak_memory_reserved_mb", "nvml_peak_memory_used_mb", "peak_host_rss_mb",
              "train_peak_memory_mb", "energy_j", "mean_power_w", "max_power_w")
SPARSITY_FIELDS = ("active_params", "active_fraction", "active_flops_per_image")
CURVE_FIELDS = ("epoch", "step", "time_s", "loss", "accuracy", "active_fraction")


def _keyed(loaded: LoadedResult) -> dict[str, Any]:
    r = loaded.record
    return {"id": r["id"], "suite": (r["suite"] or {}).get("name"), "machine": machine_label(r["env"] or {})}


def run_rows(loaded: LoadedResult) -> list[dict[str, Any]]:
    key = _keyed(loaded)
    return [{**key, "run": i, **{f: run.get(f) for f in RUN_FIELDS},
             **{f: (run.get("sparsity") or {}).get(f) for f in SPARSITY_FIELDS},
             # null where the run's load was not measured (a file from before it was recorded)
             "competing_cpu_share": (run_load(run) or {}).get("competing_cpu_share"), "load_high": run_is_high(run)}
            for i, run in enumerate(loaded.record.get("runs") or []) if isinstance(run, dict)]


def curve_rows(loaded: LoadedResult) -> list[dict[str, Any]]:
    key = _keyed(loaded)
    rows = []
    for i, run in enumerate(loaded.record.get("runs") or []):
        if isinstance(run, dict):
            for point in run.get("curve") or []:
                rows.append({**key, "run": i, "seed": run.get("seed"), **{f: point.get(f) for f in CURVE_FIELDS}})
    return rows


def _frame(rows: list[dict[str, Any]], columns: Iterable[str]) -> pd.DataFrame:
    # explicit columns so an empty frame still has them (reports filter on them)
    return pd.DataFrame(rows, columns=list(columns))


INVOCATION_COLUMNS = tuple(invocation_row(LoadedResult(Path("."), {
    "id": "", "status": "", "suite": {}, "env": {}, "aggregate": {}})).keys())
LOAD_FIELDS = ("competing_cpu_share", "load_high")
RUN_COLUMNS = ("id", "suite", "machine", "run", *RUN_FIELDS, *SPARSITY_FIELDS, *LOAD_FIELDS)
CURVE_COLUMNS = ("id", "suite", "machine", "run", "seed", *CURVE_FIELDS)


@dataclass(frozen=True)
class ResultFrames:
    invocations: pd.DataFrame
    runs: pd.DataFrame
    curves: pd.DataFrame

    @property
    def empty(self) -> bool:
        return self.invocations.empty


def frames(results: list[LoadedResult]) -> ResultFrames:
    return ResultFrames(
        invocations=_frame([invocation_row(r) for r in results], INVOCATION_COLUMNS),
        runs=_frame([row for r in results for row in run_rows(r)], RUN_COLUMNS),
        curves=_frame([row for r in results for row in curve_rows(r)], CURVE_COLUMNS),
    )


def read_results(sources: Path | Iterable[Path], reporter: Reporter | None = None) -> ResultFrames:
    """The frames of every readable result under `sources` (files or folders)."""
    return frames(load_results(sources, reporter))


def require_results(sources: Path | Iterable[Path], reporter: Reporter | None = None) -> ResultFrames:
    """As read_results, but no result at all is a one-line error (a report of nothing is a mistake)."""
    found = read_results(sources, reporter)
    if found.empty:
        where = sources if isinstance(sources, (str, Path)) else ", ".join(str(s) for s in sources)
        raise BenchError(f"no result files in {where}; make some with 'bench run SUITE' or point --results "
                         "at a folder of result JSONs")
    return found


def newest_first(invocations: pd.DataFrame) -> pd.DataFrame:
    """Newest invocation first: by start time, then finish time, then id (ids begin with the time)."""
    return invocations.sort_values(["started_at", "finished_at", "id"], ascending=False, na_position="last",
                                   kind="stable")
