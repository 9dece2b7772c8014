"""`bench export`: the result files as one table for pandas, notebooks and dashboards.

    runs         one row per run (seed): suite, hash, machine, GPU, world size, seed, accuracy
                 (test; validation_accuracy beside it, null without a validation split),
                 time to target, images/s, MFU, energy, memory, params / active params, code version;
                 a study's cell adds `study` and one column per axis named by its suite key
                 (`recipe.lr`, `model.args.hidden`, ...): numbers as numbers, lists and tables as
                 their JSON text, null for runs of no study or of a study without that axis
    invocations  one row per result file: status, verdict and the aggregate over its runs
    curves       one row per epoch of a run: time, loss, accuracy

A view of the result files, read through the same frames as every report (bench.reports.frame,
over bench.record.files), never a second source of truth. Columns have fixed dtypes whatever
the data (nullable Int64, float64, boolean, string, UTC datetimes), so `pd.read_parquet` gives
a notebook the same frame on every machine. Parquet keeps the dtypes; CSV and JSON (records) keep the values.

--out FILE is written atomically (a temporary file, then renamed); without it CSV and JSON
go to stdout. An export never goes into the folder of result files it reads.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape

from bench.destinations import check_file, path_argument
from bench.errors import BenchError
from bench.progress import RichReporter
from bench.record.files import LoadedResult, load_results, real_path, result_files, results_root
from bench.reports.frame import ResultFrames, add_results_argument, frames
from bench.reports.pages import write_page

FORMATS = ("csv", "parquet", "json")
TABLES = ("runs", "invocations", "curves")

# The invocation columns repeated on every run row: what a run is compared by.
RUN_CONTEXT = ("suite_hash", "mode", "target", "verdict", "model", "dataset", "hardware", "hostname", "device",
               "gpu_name", "gpu_count", "world_size", "nnodes", "backend", "cpu_model", "cpu_cores", "torch", "cuda",
               "params", "trainable_params", "active_params", "flops_per_image", "train_flops_per_image", "code",
               "git_commit", "git_dirty", "code_version", "started_at", "path")

_INTEGER = ("run", "seed", "steps", "train_images", "epoch", "step", "gpu_count", "world_size", "nnodes", "cpu_cores",
            "cudnn", "params", "trainable_params", "active_params", "flops_per_image", "train_flops_per_image", "runs",
            "planned_runs", "timed_runs", "complete_runs", "active_flops_per_image", "steps_to_target",
            "first_reached_step", "busy_runs", "load_measured_runs")
_BOOLEAN = ("reached_target", "channels_last", "git_dirty", "load_high")
_TIME = ("started_at", "finished_at")
_FLOAT = ("accuracy", "validation_accuracy", "train_accuracy", "time_to_target_s", "first_reached_s", "median_timed_s", "timed_s", "epochs", "train_time_s", "train_images_per_s", "mfu",
          "deciding_eval_s", "curve_eval_s", "init_s", "compile_s", "data_prep_s", "peak_memory_mb",
          "peak_memory_reserved_mb", "nvml_peak_memory_used_mb", "peak_host_rss_mb", "train_peak_memory_mb",
          "energy_j", "mean_power_w",
          "max_power_w", "time_s", "loss", "target", "gpu_memory_gb", "ram_gb", "mean_accuracy", "ci_low",
          "ci_high", "ci_half_width", "accuracy_std", "pass_fraction", "median_time_s", "min_time_s",
          "max_time_s", "iqr_time_s", "olympic_mean_time_s", "median_train_images_per_s", "mean_energy_j",
          "active_fraction", "mean_active_params", "mean_active_fraction", "sparsity_target",
          "competing_cpu_share", "max_competing_cpu_share")
_STRING = ("id", "path", "study", "target_source", "status", "run_status", "invocation_status", "suite", "suite_hash", "overrides", "mode",
           "date", "code", "git_commit", "code_version", "machine", "hardware", "hostname", "device", "gpu_name",
           "gpu_driver", "cpu_model", "software", "loader", "torch", "cuda", "python", "os", "model", "dataset",
           "verdict", "error", "precision", "compile", "node", "backend", "sparsity_method", "pass_rule")
DTYPES: dict[str, str] = {**{c: "Int64" for c in _INTEGER}, **{c: "boolean" for c in _BOOLEAN},
                          **{c: "float64" for c in _FLOAT}, **{c: "string" for c in _STRING},
                          **{c: "datetime64[us, UTC]" for c in _TIME}}


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column in its declared dtype, so an all-null column still has the right type."""
    out = frame.copy()
    for column in out.columns:
        dtype = DTYPES.get(column)
        if dtype is None:  # a new frame column not declared here yet (tests/test_export.py asks for one)
            out[column] = out[column].convert_dtypes()
        elif dtype.startswith("datetime64"):
            out[column] = pd.to_datetime(out[column], utc=True).astype(dtype)
        elif dtype == "float64":
            out[column] = pd.to_numeric(out[column]).astype(dtype)
        else:
            out[column] = out[column].astype(dtype)
    return out


def _axis_value(value: object) -> object:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def study_axes(results: list[LoadedResult]) -> pd.DataFrame:
    """Per result file of a study cell: its id, the study's name and each axis's value (a column per
    axis, by its dotted suite key); a column holding numbers and text alike is all text."""
    rows = [{"id": r.record["id"], "study": study["name"],
             **{axis: _axis_value(v) for axis, v in (study.get("axes") or {}).items()}}
            for r in results if isinstance(study := r.record.get("study"), dict)]
    table = pd.DataFrame(rows, columns=["id", "study"] if not rows else None)
    for column in table.columns.drop(["id", "study"]):
        values = table[column].dropna()
        numbers = values.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
        if not numbers.all():
            table[column] = table[column].map(lambda v: v if pd.isna(v) else str(v)).astype("string")
        else:
            table[column] = pd.to_numeric(table[column])
    return table


def runs_table(found: ResultFrames, axes: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per run, with its invocation's context beside it (and its study's axis values)."""
    context = found.invocations[["id", "status", *RUN_CONTEXT]].rename(columns={"status": "invocation_status"})
    runs = found.runs.rename(columns={"status": "run_status"})
    # A run's own figure (its trained network's active params) wins over the invocation's; files
    # from before runs counted their nonzeros keep the invocation's.
    shared = [c for c in RUN_CONTEXT if c in runs.columns]
    rows = runs.merge(context, on="id", how="left", suffixes=("", "_invocation"))
    for column in shared:
        rows[column] = rows[column].astype(object).where(rows[column].notna(), rows[f"{column}_invocation"])
    rows = rows.drop(columns=[f"{c}_invocation" for c in shared])
    if axes is not None and len(axes):
        rows = rows.merge(axes, on="id", how="left")
    return typed(rows.sort_values(["started_at", "id", "run"], kind="stable").reset_index(drop=True))


def invocations_table(found: ResultFrames) -> pd.DataFrame:
    return typed(found.invocations.sort_values(["started_at", "id"], kind="stable").reset_index(drop=True))


def curves_table(found: ResultFrames) -> pd.DataFrame:
    return typed(found.curves.reset_index(drop=True))


BUILDERS = {"runs": runs_table, "invocations": invocations_table, "curves": curves_table}


def encode(frame: pd.DataFrame, fmt: str) -> str | bytes:
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", date_format="iso", indent=1) + "\n"
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


# ---------------------------------------------------------------- the command ----

def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    parser.add_argument("--table", choices=TABLES, default="runs",
                        help="runs: one row per run (default); invocations: one per result file; curves: one per epoch")
    parser.add_argument("--format", choices=FORMATS,
                        help="csv, parquet or json (records); default: from --out's suffix, else csv")
    parser.add_argument("--out", type=path_argument, metavar="FILE",
                        help="file to write (replaced atomically); default: stdout (csv and json only)")


def output_format(args: argparse.Namespace) -> str:
    suffix = args.out.suffix.lower().lstrip(".") if args.out is not None else ""
    if args.format is None:
        return suffix if suffix in FORMATS else "csv"
    if suffix in FORMATS and suffix != args.format:
        raise BenchError(f"--out {args.out} ends in .{suffix} but --format is {args.format}; make them agree")
    return args.format


def check_out(out: Path, source: Path) -> None:
    """Refuses what would lose or mix up data, before anything is read or written: anywhere in
    the results folder it reads (its runs/ and beside it alike; relative paths resolved first),
    a folder, a place that cannot be written."""
    check_file(out, "--out", overwrite=True, refused_inside=source if source.is_dir() else None,
               refused_what="the result folder")
    if out.exists() and real_path(out) in {real_path(p) for p in result_files(source)}:
        raise BenchError(f"--out {out} is a result file; write the export elsewhere")


def command(args: argparse.Namespace, console: Console) -> int:
    source = args.results or results_root()
    fmt = output_format(args)
    if args.out is None and fmt == "parquet":
        raise BenchError("--format parquet writes a binary file: give --out FILE.parquet")
    if args.out is not None:
        check_out(args.out, source)
    results = load_results(source, RichReporter())  # notices on stderr
    if not results:
        raise BenchError(f"no result files in {source}; make some with 'bench run SUITE' or point --results "
                         "at a folder of result JSONs")
    found = frames(results)
    table = runs_table(found, study_axes(results)) if args.table == "runs" else BUILDERS[args.table](found)
    data = encode(table, fmt)
    if args.out is None:
        sys.stdout.write(data)
        sys.stdout.flush()
        return 0
    try:
        write_page(args.out, data)
    except OSError as exc:  # a disk that filled up since the check: the temp file is gone, --out untouched
        raise BenchError(f"--out {args.out}: the export was not written ({exc.strerror or exc}); "
                         "free some space or choose another place") from None
    Console(stderr=True, highlight=False).print(escape(f"{args.table}: {len(table)} rows, {len(table.columns)} "
                                                       f"columns -> {args.out} ({fmt})"))
    return 0
