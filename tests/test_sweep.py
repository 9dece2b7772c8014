"""`bench sweep` in this process on synthetic data: cells are ordinary result files named by
their identity, a rerun trains nothing, failures are recorded and retried, Ctrl-C keeps
what finished, and results are never overwritten."""

import json
import os

import pytest

import bench.train
from bench.cli import main
from bench.record.files import load_results
from bench.studies.ledger import read_ledger
from bench.studies.sweep import shuffled
from bench.studies.study import identity_hash, load_study
from tests.helpers import STUDY_BASE, serve_separable_data

STUDY = """
name = "syn"
description = "learning rate x batch size on the separable set"
suite = "{suite}"
seeds = [0, 1]
[set]
"recipe.train_eval" = 64
[axes]
"recipe.lr" = [0.05, 0.002]
"""


@pytest.fixture(autouse=True)
def quick(one_torch_thread, monkeypatch):
    """One torch thread (tiny steps on a shared 2-core machine) and the report drawn only at the
    end of a sweep, unless a test asks for more."""
    monkeypatch.setattr("bench.studies.sweep.REPORT_EVERY_S", 1e9)


@pytest.fixture
def study(tmp_path, monkeypatch):
    """A study file over a synthetic data set (the runner and the pre-flight load it)."""
    serve_separable_data(monkeypatch)
    (tmp_path / "base.toml").write_text(STUDY_BASE)  # its lr is the study's axis, its train_eval the study's set
    path = tmp_path / "syn.toml"
    path.write_text(STUDY.format(suite="base.toml"))
    return path


@pytest.fixture
def trained(monkeypatch):
    """Counts the runs trained (and lets a test make some fail)."""
    seen = []
    real = bench.train.train_run
    fail = {}

    def counting(resolved, data, seed, *args, **kwargs):
        seen.append((resolved["recipe"]["lr"], resolved["recipe"]["batch_size"], seed))
        if (resolved["recipe"]["lr"], seed) in fail:
            raise fail[(resolved["recipe"]["lr"], seed)]
        return real(resolved, data, seed, *args, **kwargs)

    monkeypatch.setattr("bench.runner.train_run", counting)
    counting.seen, counting.fail = seen, fail
    return counting


def sweep(study, results, *extra):
    return main(["sweep", str(study), "--results", str(results), "--device", "cpu", *extra])


def files(results):
    folder = results / "studies" / "syn" / "runs"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_every_cell_is_an_ordinary_result_named_by_its_identity(study, tmp_path, trained):
    results = tmp_path / "results"
    assert sweep(study, results) == 0
    plan = load_study(str(study))
    assert len(trained.seen) == 4 == len(plan.cells)
    names = files(results)
    assert len(names) == 4
    loaded = load_results(results / "studies" / "syn" / "runs")
    by_key = {}
    for result in loaded:
        record = result.record
        key = f"{identity_hash(record['suite']['resolved'])}-s{record['invocation']['seeds'][0]}"
        assert result.path.name.startswith(key + "-") and result.path.name == f"{key}-{record['id']}.json"
        assert record["status"] == "complete" and len(record["runs"]) == 1 and record["study"]["cell"] == key
        assert record["invocation"]["command"][:2] == ["bench", "run"]
        assert record["runs"][0]["train_eval_images"] == 64
        by_key[key] = record
    assert set(by_key) == {cell.key for cell in plan.cells}  # every cell once, no two in one file
    folder = results / "studies" / "syn"
    assert (folder / "REPORT.md").is_file() and (folder / "report.html").is_file()


def test_a_rerun_trains_nothing_and_keeps_every_file(study, tmp_path, trained, capsys):
    results = tmp_path / "results"
    assert sweep(study, results) == 0
    before = {name: (results / "studies" / "syn" / "runs" / name).read_bytes() for name in files(results)}
    trained.seen.clear()
    capsys.readouterr()
    assert sweep(study, results) == 0
    assert trained.seen == []
    assert "4 done, 0 failed, 0 not run yet; running 0" in " ".join(capsys.readouterr().out.split())
    after = {name: (results / "studies" / "syn" / "runs" / name).read_bytes() for name in files(results)}
    assert after == before


def test_a_failed_cell_is_recorded_listed_and_retried(study, tmp_path, trained):
    results = tmp_path / "results"
    trained.fail[(0.002, 1)] = RuntimeError("out of memory (planted)")
    assert sweep(study, results) == 3
    ledger = read_ledger(load_study(str(study)), results / "studies" / "syn" / "runs")
    failed = ledger.where("failed")
    assert [(s.cell.point.axes["recipe.lr"], s.cell.seed) for s in failed] == [(0.002, 1)]
    record = failed[0].result.record
    assert record["status"] == "failed" and "out of memory (planted)" in record["error"]["message"]
    report = (results / "studies" / "syn" / "REPORT.md").read_text()
    assert "## Failed cells" in report and report.count("out of memory (planted)") == 1
    assert "1/2 (1 failed)" in report
    failed_files = {s.result.path.name for s in failed}

    trained.fail.clear()
    trained.seen.clear()
    assert sweep(study, results) == 0
    assert trained.seen == [(0.002, 32, 1)]  # only the failed cell ran again
    assert failed_files <= set(files(results)) and len(files(results)) == 5  # the failed file stays
    ledger = read_ledger(load_study(str(study)), results / "studies" / "syn" / "runs")
    assert not ledger.where("failed") and len(ledger.where("done")) == 4
    assert "## Failed cells" not in (results / "studies" / "syn" / "REPORT.md").read_text()


def test_ctrl_c_keeps_the_finished_cells_and_a_rerun_goes_on(study, tmp_path, trained):
    results = tmp_path / "results"
    trained.fail[(0.002, 0)] = KeyboardInterrupt()
    assert sweep(study, results) == 130
    # the sweep runs its cells in the order --order-seed (0) shuffles them to
    order = [(cell.point.axes["recipe.lr"], cell.seed) for cell in shuffled(load_study(str(study)).cells, 0)]
    before = order.index((0.002, 0))
    assert len(files(results)) == before  # the cells before it; the interrupted cell wrote nothing
    trained.fail.clear()
    trained.seen.clear()
    assert sweep(study, results) == 0
    assert sorted(trained.seen) == sorted((lr, 32, seed) for lr, seed in order[before:])


def test_dry_run_lists_cells_and_writes_nothing(study, tmp_path, trained, capsys):
    results = tmp_path / "results"
    assert sweep(study, results, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "4 cells (2 points × 2 seeds): 0 done, 0 failed, 4 not run yet; 4 runs to go" in out.replace("\n", " ")
    assert trained.seen == [] and not results.exists()


def test_report_only_needs_results(study, tmp_path, capsys):
    assert sweep(study, tmp_path / "results", "--report-only") == 2
    assert "no result of this study yet" in capsys.readouterr().err


def test_files_of_removed_values_are_strays_not_cells(study, tmp_path, trained):
    results = tmp_path / "results"
    assert sweep(study, results) == 0
    study.write_text(study.read_text().replace("[0.05, 0.002]", "[0.05]"))
    trained.seen.clear()
    assert sweep(study, results) == 0 and trained.seen == []
    ledger = read_ledger(load_study(str(study)), results / "studies" / "syn" / "runs")
    assert len(ledger.cells) == 2 and len(ledger.strays) == 2
    report = (results / "studies" / "syn" / "REPORT.md").read_text()
    assert "no cell of this study (left out)" in report and "| 0.002 |" not in report


def test_report_only_reports_a_study_whose_files_are_all_strays(study, tmp_path, trained):
    # the study file changed after its cells ran: `make reports` must still rewrite its report (every
    # cell not run yet, the old files listed), or the committed report would outlive its study file
    results = tmp_path / "results"
    assert sweep(study, results) == 0
    study.write_text(study.read_text().replace("[0.05, 0.002]", "[0.01]"))
    trained.seen.clear()
    assert sweep(study, results, "--report-only") == 0 and trained.seen == []
    report = (results / "studies" / "syn" / "REPORT.md").read_text()
    assert "0 done, 0 failed, 2 not run yet" in report and "no cell of this study (left out)" in report

def test_a_diverged_cell_is_a_result_not_a_gap(study, tmp_path, trained):
    study.write_text(study.read_text().replace("[0.05, 0.002]", "[0.05, 1e30]"))
    results = tmp_path / "results"
    assert sweep(study, results) == 0
    ledger = read_ledger(load_study(str(study)), results / "studies" / "syn" / "runs")
    statuses = {s.cell.point.axes["recipe.lr"]: s.result.record["status"] for s in ledger.cells.values()}
    assert statuses == {0.05: "complete", 1e30: "diverged"}
    trained.seen.clear()
    assert sweep(study, results) == 0 and trained.seen == []
    report = (results / "studies" / "syn" / "REPORT.md").read_text()
    assert "0/2 (2 diverged)" in report


def test_unwritable_results_are_refused_before_any_cell(study, tmp_path, trained, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert sweep(study, blocked) == 2
    assert trained.seen == [] and "is not writable" in capsys.readouterr().err


def test_the_report_is_rewritten_as_cells_finish(study, tmp_path, trained, monkeypatch):
    import bench.studies.report

    monkeypatch.setattr("bench.studies.sweep.REPORT_EVERY_S", 0.0)
    written = []
    real = bench.studies.report.write_study_report

    def counting(study_, ledger, folder):
        written.append(len(ledger.where("done")))
        return real(study_, ledger, folder)

    monkeypatch.setattr("bench.studies.report.write_study_report", counting)
    results = tmp_path / "results"
    assert sweep(study, results) == 0
    assert written == [1, 2, 3, 4, 4]  # after each cell, and once at the end
    record = json.loads(next((results / "studies" / "syn" / "runs").glob("*.json")).read_text())
    assert record["study"]["name"] == "syn" and set(record["study"]["axes"]) == {"recipe.lr"}
    assert record["study"]["fixed"] == {"recipe.train_eval": 64}


def test_a_cell_that_fails_before_its_data_loads_is_still_a_valid_result(study, tmp_path, trained, monkeypatch):
    """No model and no data figures, but an ordinary (schema-valid) failed result with the reason."""
    def unreadable(*args, **kwargs):
        raise OSError("disk went away (planted)")

    monkeypatch.setattr("bench.runner.load_dataset", unreadable)  # the pre-flight's own load still works
    results = tmp_path / "results"
    assert sweep(study, results) == 3
    loaded = load_results(results / "studies" / "syn" / "runs")  # the reader validates every file
    assert len(loaded) == 4 and trained.seen == []
    for result in loaded:
        record = result.record
        assert record["status"] == "failed" and record["model"] is None and record["dataset"] is None
        assert "disk went away (planted)" in record["error"]["message"] and record["invocation"]["device"] == "cpu"


# ---------------------------------------------------------------- claims and faults while writing ----

def claim_file(results, key, pid, host=None):
    import json
    import socket

    folder = results / "studies" / "syn" / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{key}.claim").write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                                     "time": "2026-01-01T00:00:00Z"}))


def study_cells(study):
    from bench.studies.study import load_study

    return load_study(str(study)).cells


def test_a_cell_claimed_by_a_live_sweep_is_skipped_and_a_stale_claim_taken_over(study, tmp_path, trained):
    import subprocess

    results = tmp_path / "results"
    live, stale = study_cells(study)[:2]
    claim_file(results, live.key, os.getpid())  # this very process: alive
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that was this host's and is no longer
    claim_file(results, stale.key, gone.pid)
    assert sweep(study, results) == 0
    assert len(trained.seen) == 3  # 4 cells, the live claim's one skipped, the stale one run
    written = [f for f in files(results) if f.endswith(".json")]
    assert not any(f.startswith(live.key) for f in written) and any(f.startswith(stale.key) for f in written)
    # the claim this sweep took over is gone with its cell's file; the other sweep's claim stays
    assert [f for f in files(results) if f.endswith(".claim")] == [f"{live.key}.claim"]


def test_a_sweep_killed_after_writing_a_cell_leaves_no_claim_behind_the_next_sweep(study, tmp_path, trained):
    # SIGKILL between a cell's result file and the release of its claim (the Ray cluster test's killed
    # driver hit this window): the cell is done, so no sweep takes its claim over; the next sweep clears it
    import subprocess

    results = tmp_path / "results"
    assert sweep(study, results) == 0
    done = study_cells(study)[0]
    gone = subprocess.Popen(["true"])
    gone.wait()
    claim_file(results, done.key, gone.pid)
    other_host = study_cells(study)[1]
    claim_file(results, other_host.key, gone.pid, host="elsewhere")  # never judged stale from here
    before = len(trained.seen)
    assert sweep(study, results) == 0
    assert len(trained.seen) == before  # every cell was done: nothing trained again
    assert [f for f in files(results) if f.endswith(".claim")] == [f"{other_host.key}.claim"]


def test_a_full_disk_while_writing_a_cell_keeps_the_earlier_cells(study, tmp_path, trained, monkeypatch, capsys):
    import errno

    import bench.record.files

    results = tmp_path / "results"
    real_fsync, calls = os.fsync, []

    def full_on_the_third(fd):  # the third result file's write (claims are written too, and pass)
        name = os.readlink(f"/proc/self/fd/{fd}")
        if "/studies/syn/runs/.tmp" in name and name.endswith(".json"):  # not the cells' scratch files
            calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(bench.record.files.os, "fsync", full_on_the_third)
    assert sweep(study, results) == 3
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    names = files(results)
    # the two cells before the full disk, whole; no temp file, no claim left behind
    assert len([n for n in names if n.endswith(".json")]) == 2 and all(not n.startswith(".tmp") for n in names)
    assert not [n for n in names if n.endswith(".claim")]
    import json

    assert all(json.loads((results / "studies" / "syn" / "runs" / n).read_text())["status"] == "complete"
               for n in names if n.endswith(".json"))


@pytest.mark.parametrize("planted", ["folder", "list"])
def test_a_claim_that_is_a_folder_or_a_list_is_no_traceback(study, tmp_path, trained, capsys, planted):
    """A folder in a claim's place was an IsADirectoryError traceback, a JSON list an
    AttributeError: the folder is refused before any cell, naming it; the list is no claim bench
    wrote, so the cell is taken over and run."""
    results = tmp_path / "results"
    cell = study_cells(study)[0]
    folder = results / "studies" / "syn" / "runs"
    folder.mkdir(parents=True)
    if planted == "folder":
        (folder / f"{cell.key}.claim").mkdir()
    else:
        (folder / f"{cell.key}.claim").write_text("[1, 2]")
    code = sweep(study, results)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    if planted == "folder":
        [line] = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and f"{cell.key}.claim is a folder" in line and trained.seen == []
    else:
        assert code == 0 and len(trained.seen) == 4 and not [f for f in files(results) if f.endswith(".claim")]


def test_a_claim_from_another_host_names_the_file_to_delete(study, tmp_path, trained, capsys):
    """Its pid means nothing here, so it is never taken over; the cell was skipped with no word
    of which file holds it."""
    results = tmp_path / "results"
    cell = study_cells(study)[0]
    claim_file(results, cell.key, 12345, host="elsewhere")
    assert sweep(study, results) == 0
    err = capsys.readouterr().err
    path = results / "studies" / "syn" / "runs" / f"{cell.key}.claim"
    # rich wraps long lines: at a space, or inside the path
    assert any(f"elsewhere any more, delete {path}" in err.replace("\n", glue) for glue in (" ", "")), err
    assert len(trained.seen) == 3
