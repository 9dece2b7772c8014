"""`bench export`: the committed results as tables a notebook reads back with fixed dtypes."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.record.schema import migrate
from bench.reports.export import DTYPES, TABLES
from bench.reports.frame import read_results

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
# the committed files as every reader sees them: migrated to the current schema
RECORDS = [migrate(json.loads(p.read_text())) for p in sorted((RESULTS / "runs").glob("*.json"))]


def export(capsys, *args) -> tuple[int, str, str]:
    code = main(["export", "--results", str(RESULTS), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_export_of_the_committed_results_reads_back_with_its_dtypes(capsys, tmp_path):
    target = tmp_path / "runs.parquet"
    code, _, _ = export(capsys, "--out", str(target))
    assert code == 0
    frame = pd.read_parquet(target)
    # one row per run of every committed result file, nothing more
    assert len(frame) == sum(len(r["runs"]) for r in RECORDS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {c: DTYPES[c] for c in frame.columns}
    for column in ("suite", "suite_hash", "machine", "gpu_name", "world_size", "seed", "accuracy", "time_to_target_s",
                   "train_images_per_s", "mfu", "energy_j", "peak_memory_mb", "params", "active_params",
                   "code_version", "git_commit"):
        assert column in frame.columns, column
    assert str(frame["seed"].dtype) == "Int64" and str(frame["time_to_target_s"].dtype) == "float64"
    assert str(frame["started_at"].dtype).startswith("datetime64") and str(frame["started_at"].dt.tz) == "UTC"
    # the values are the files' own
    by_key = frame.set_index(["id", "seed"])
    for record in RECORDS:
        for run in record["runs"]:
            row = by_key.loc[(record["id"], run["seed"])]
            # a run that did not reach the target has no time to it: NaN in the frame
            assert (pd.isna(row["time_to_target_s"]) if run["time_to_target_s"] is None
                    else row["time_to_target_s"] == run["time_to_target_s"]) and row["accuracy"] == run["accuracy"]
            assert row["suite"] == record["suite"]["name"] and row["params"] == record["model"]["params"]
            assert row["git_commit"] == record["code"]["git_commit"] and row["world_size"] == 1
            # a run's own trained network's count where it has one (sparse training), else the model's
            assert row["active_params"] == (run.get("sparsity") or {}).get("active_params",
                                                                            record["model"]["active_params"])
            assert pd.isna(row["gpu_name"]) and pd.isna(row["energy_j"])  # CPU runs: no GPU, no NVML
            assert (pd.isna(row["mfu"]) if run.get("mfu") is None else row["mfu"] == run["mfu"])


def test_invocations_table_has_one_row_per_file_with_its_aggregate(capsys, tmp_path):
    target = tmp_path / "invocations.parquet"
    assert export(capsys, "--table", "invocations", "--out", str(target))[0] == 0
    frame = pd.read_parquet(target).set_index("id")
    assert len(frame) == len(RECORDS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {c: DTYPES[c] for c in frame.columns}
    for record in RECORDS:
        row = frame.loc[record["id"]]
        median = record["aggregate"]["median_time_s"]
        assert pd.isna(row["median_time_s"]) if median is None else row["median_time_s"] == median
        assert row["verdict"] == record["aggregate"]["verdict"] and row["runs"] == len(record["runs"])


@pytest.mark.parametrize("fmt, read", [("csv", pd.read_csv),
                                       ("json", lambda f: pd.read_json(f, orient="records"))])
def test_csv_and_json_go_to_stdout_with_the_same_values(capsys, tmp_path, fmt, read):
    target = tmp_path / "runs.parquet"
    export(capsys, "--out", str(target))
    code, out, _ = export(capsys, "--format", fmt)
    assert code == 0
    text = read(io.StringIO(out))
    typed = pd.read_parquet(target)
    assert list(text.columns) == list(typed.columns) and len(text) == len(typed)
    for column in ("accuracy", "time_to_target_s", "train_images_per_s", "seed", "params"):
        assert pd.api.types.is_numeric_dtype(text[column]), column
        assert text[column].astype(float).tolist() == pytest.approx(typed[column].astype(float).tolist(), nan_ok=True)


def test_every_exported_column_has_a_declared_dtype():
    found = read_results(REPO / "tests" / "fixtures" / "results")
    from bench.reports.export import BUILDERS
    for table in TABLES:
        columns = BUILDERS[table](found).columns
        assert not [c for c in columns if c not in DTYPES], table


# ---------------------------------------------------------------- bad input ----

@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    shutil.copytree(RESULTS / "runs", folder / "runs")
    return folder


@pytest.mark.parametrize("args, fragment", [
    (["--format", "parquet"], "give --out FILE.parquet"),
    (["--out", "{tmp}/missing/x.csv"], "does not exist"),
    (["--out", "{results}/runs/export.json"], "is inside the result folder"),
    (["--format", "csv", "--out", "{tmp}/x.parquet"], "ends in .parquet but --format is csv"),
    (["--out", "{tmp}"], "is a folder"),
])
def test_bad_input_is_one_line_and_touches_nothing(capsys, tmp_path, results, args, fragment):
    before = sorted(p.name for p in (results / "runs").iterdir())
    argv = [a.format(tmp=tmp_path, results=results) for a in args]
    code = main(["export", "--results", str(results), *argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0] and "Traceback" not in err, err
    assert sorted(p.name for p in (results / "runs").iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


@pytest.mark.parametrize("args, fragment", [
    (["--table", "seeds"], "bench export: argument --table: invalid choice"),
    (["--format", "xlsx"], "bench export: argument --format: invalid choice"),
])
def test_wrong_arguments_are_one_line(capsys, args, fragment):
    with pytest.raises(SystemExit) as stop:
        main(["export", *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_a_missing_results_folder_is_one_line(capsys, tmp_path):
    code = main(["export", "--results", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and "nowhere: no such file or folder" in err and len(err.strip().splitlines()) == 1


def test_run_rows_carry_the_validation_accuracy_beside_the_test_accuracy(capsys, tmp_path):
    """A file whose runs measured a validation split exports it; files from before the split export null."""
    folder = tmp_path / "results" / "runs"
    folder.mkdir(parents=True)
    record = json.loads(json.dumps(RECORDS[0]))
    record["id"] = "validated"
    for i, run in enumerate(record["runs"]):
        run["validation_accuracy"] = 0.5 + 0.01 * i
    (folder / "validated.json").write_text(json.dumps(record))
    shutil.copy(sorted((RESULTS / "runs").glob("*.json"))[1], folder)
    code = main(["export", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "runs.parquet")])
    capsys.readouterr()
    frame = pd.read_parquet(tmp_path / "runs.parquet")
    assert code == 0 and str(frame["validation_accuracy"].dtype) == "float64"
    mine = frame[frame["id"] == "validated"]
    assert list(mine["validation_accuracy"]) == [0.5 + 0.01 * i for i in range(len(record["runs"]))]
    assert frame[frame["id"] != "validated"]["validation_accuracy"].isna().all()


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
def test_an_out_that_is_no_regular_file_is_refused_and_left_as_it_is(capsys, tmp_path, results, kind):
    # the export is renamed onto --out: over a pipe, a link or a device (/dev/full, as root) that
    # would replace the thing itself with a plain file
    out = tmp_path / "out.csv"
    kept = tmp_path / "kept.csv"
    if kind == "fifo":
        os.mkfifo(out)
    else:
        kept.write_text("mine\n")
        out.symlink_to(kept)
    code = main(["export", "--results", str(results), "--out", str(out)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    what = "a named pipe" if kind == "fifo" else "a symbolic link"
    assert code == 2 and len(lines) == 1 and f"is {what}, not a regular file" in lines[0], err
    assert (stat.S_ISFIFO(os.lstat(out).st_mode) if kind == "fifo" else out.is_symlink())
    assert kind == "fifo" or kept.read_text() == "mine\n"


def test_a_copied_result_file_is_counted_once_and_named(capsys, tmp_path, results):
    # the merge of runs with their invocation on the id made n x m rows of two files with one id
    one = sorted((results / "runs").glob("*.json"))[0]
    shutil.copy(one, results / "runs" / "zz-copy-of-a-result.json")
    code = main(["export", "--results", str(results), "--out", str(tmp_path / "runs.csv")])
    err = capsys.readouterr().err
    assert code == 0
    said = "".join(err.split())  # rich wraps the notice at the terminal's width
    assert "".join(f"zz-copy-of-a-result.json: holds result {json.loads(one.read_text())['id']}, as {one} does"
                   .split()) in said
    frame = pd.read_csv(tmp_path / "runs.csv")
    assert len(frame) == sum(len(r["runs"]) for r in RECORDS)


def test_study_runs_carry_their_axis_values_as_columns(capsys, tmp_path):
    # two studies' cells and a plain run: each study's axes become columns, null where a run has no such axis
    folder = tmp_path / "results"
    folder.mkdir()
    picked = [*sorted((RESULTS / "studies" / "fmnist-lstm-bptt" / "runs").glob("*.json"))[:3],
              *sorted((RESULTS / "studies" / "fmnist-sparsity" / "runs").glob("*.json"))[:2],
              sorted((RESULTS / "runs").glob("*.json"))[0]]
    for path in picked:
        shutil.copy(path, folder / path.name)
    target = tmp_path / "runs.parquet"
    assert main(["export", "--results", str(folder), "--out", str(target)]) == 0
    frame = pd.read_parquet(target).set_index("id")
    assert str(frame["recipe.lr"].dtype) == "Float64" and str(frame["recipe.bptt.mode"].dtype) == "string"
    for path in picked:
        record = json.loads(path.read_text())
        row = frame.loc[[record["id"]]].iloc[0]  # a plain invocation may hold several runs
        axes = (record.get("study") or {}).get("axes", {})
        assert (pd.isna(row["study"]) if not axes else row["study"] == record["study"]["name"])
        for axis in ("recipe.lr", "recipe.bptt.mode", "model.args.hidden"):
            if axis not in axes:
                assert pd.isna(row[axis]), axis
            elif isinstance(axes[axis], list):
                assert json.loads(row[axis]) == axes[axis]
            else:
                assert row[axis] == axes[axis]
