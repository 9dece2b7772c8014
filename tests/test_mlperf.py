"""`bench run --mllog`: MLPerf-format logs built from the result record, checked by mlperf-logging's
own compliance checker with the ruleset bench ships."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.reports.mlperf import RULESET, log_paths
from tests.helpers import separable_dataset, suite_text

FASHION = Path("/usr/share/datasets/fashion-mnist")


def checker(log: Path) -> subprocess.CompletedProcess:
    """The official checker, as a user runs it, with bench's ruleset."""
    return subprocess.run([sys.executable, "-m", "mlperf_logging.compliance_checker", str(log), "--config",
                           str(RULESET), "--log_output", str(log.with_suffix(".checker.txt"))],
                          capture_output=True, text=True, timeout=120)


def events(log: Path) -> list[dict]:
    return [json.loads(line.split(":::MLLOG ", 1)[1]) for line in log.read_text().splitlines()]


def first(log_events: list[dict], key: str) -> dict:
    return next(e for e in log_events if e["key"] == key)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One real fashion-mnist-smoke run (seconds), its result record and its MLPerf log."""
    if not FASHION.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make data)")
    folder = tmp_path_factory.mktemp("smoke")
    code = main(["run", "fashion-mnist-smoke", "--runs", "1", "--device", "cpu", "--results", str(folder / "runs"),
                 "--mllog", str(folder / "smoke.log")])
    assert code == 0
    [result] = (folder / "runs").glob("*.json")
    return json.loads(result.read_text()), folder / "smoke.log"


def test_the_checker_passes_a_real_smoke_log(smoke):
    _, log = smoke
    done = checker(log)
    assert done.returncode == 0 and "SUCCESS" in done.stderr, done.stderr[-3000:]


def test_the_log_is_the_records_own_clock_readings(smoke):
    record, log = smoke
    run, found = record["runs"][0], events(log)
    start, stop = first(found, "run_start"), first(found, "run_stop")
    # the headline figure, read back from the log
    # run_stop - run_start is the run's time to target (its timed region where it has none)
    headline = run["time_to_target_s"] if run["time_to_target_s"] is not None else run["timed_s"]
    assert (stop["time_ms"] - start["time_ms"]) / 1000 == pytest.approx(headline, abs=2e-6)
    assert start["time_ms"] == pytest.approx(run["clock_start_unix_s"] * 1000, abs=1e-3)
    assert first(found, "init_start")["time_ms"] == pytest.approx(run["init_start_unix_s"] * 1000, abs=1e-3)
    assert first(found, "init_stop")["time_ms"] == start["time_ms"]
    for point in run["curve"]:
        epoch_stop = next(e for e in found if e["key"] == "epoch_stop" and e["metadata"]["epoch_num"] == point["epoch"])
        assert epoch_stop["time_ms"] == pytest.approx((run["clock_start_unix_s"] + point["train_end_s"]) * 1000,
                                                      abs=1e-3)
        assert epoch_stop["metadata"]["samples_count"] == point["step"] * 128
    accuracy = [e for e in found if e["key"] == "eval_accuracy"]
    deciding = [e["value"] for e in accuracy if e["metadata"]["in_timed_region"]]
    logging_only = [e["value"] for e in accuracy if not e["metadata"]["in_timed_region"]]
    assert deciding == [run["accuracy"]]  # budget mode: only the final evaluation decides
    # the curve's evaluations (paused out of the clock) are in the log too, marked as such
    assert logging_only == [p["accuracy"] for p in run["curve"][:-1] if p["accuracy"] is not None]
    assert first(found, "seed")["value"] == run["seed"] and first(found, "submission_benchmark")["value"] == \
        "fashion-mnist-smoke"
    assert first(found, "global_batch_size")["value"] == 128 and first(found, "opt_base_learning_rate")["value"] == 0.05
    assert stop["metadata"]["status"] == ("success" if run["reached_target"] else "aborted")
    assert first(found, "bench_result_id")["value"] == record["id"]


def test_the_checker_fails_a_log_without_run_stop(smoke, tmp_path):
    _, log = smoke
    broken = tmp_path / "no-run-stop.log"
    broken.write_text("".join(line + "\n" for line in log.read_text().splitlines() if '"key": "run_stop"' not in line))
    done = checker(broken)
    assert done.returncode != 0 and "FAILED" in done.stderr
    assert "Required EXACTLY_ONE occurrence of 'run_stop' but found 0" in done.stderr


def test_the_checker_fails_a_status_the_accuracy_does_not_support(smoke, tmp_path):
    record, log = smoke
    flipped = "aborted" if record["runs"][0]["reached_target"] else "success"
    lines = log.read_text().replace('"status": "success"', f'"status": "{flipped}"').replace(
        '"status": "aborted"', f'"status": "{flipped}"')
    broken = tmp_path / "flipped.log"
    broken.write_text(lines)
    done = checker(broken)
    assert done.returncode != 0 and "s['status'] == ('success' if" in done.stderr


# ---------------------------------------------------------------- the other shapes of a run ----

@pytest.mark.parametrize("mode, target, epochs, lr, status", [
    ("reach", 0.8, 6, 0.05, "success"),     # stops at the first evaluation at the target
    ("reach", 1.0, 2, 1e-6, "aborted"),     # never reaches it: run_stop at the end of the timed region
    ("budget", 0.8, 3, 0.05, "success"),    # curve evaluations paused out, the final one decides
])
def test_the_checker_passes_every_kind_of_run(capsys, tmp_path, monkeypatch, mode, target, epochs, lr, status):
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())
    suite = tmp_path / "tiny.toml"
    suite.write_text(suite_text(mode=mode, target=target, epochs=epochs, lr=lr))
    main(["run", str(suite), "--runs", "2", "--device", "cpu", "--results", str(tmp_path / "runs"),
          "--mllog", str(tmp_path / "tiny.log")])
    capsys.readouterr()
    [result] = (tmp_path / "runs").glob("*.json")
    record = json.loads(result.read_text())
    logs = [tmp_path / "tiny_0.log", tmp_path / "tiny_1.log"]
    for run, log in zip(record["runs"], logs):
        done = checker(log)
        assert done.returncode == 0, done.stderr[-3000:]
        found = events(log)
        assert first(found, "run_stop")["metadata"]["status"] == status and first(found, "seed")["value"] == run["seed"]
        expected = run["time_to_target_s"] if run["time_to_target_s"] is not None else run["timed_s"]
        assert (first(found, "run_stop")["time_ms"] - first(found, "run_start")["time_ms"]) / 1000 == \
            pytest.approx(expected, abs=2e-6)
        untimed = [e for e in found if e["key"] == "eval_accuracy" and not e["metadata"]["in_timed_region"]]
        assert len(untimed) == (epochs - 1 if mode == "budget" else 0)


def test_log_names_one_per_run_and_suite():
    assert log_paths(Path("out/run.log"), [("a", 1)]) == [[Path("out/run.log")]]
    assert log_paths(Path("out/run.log"), [("a", 2)]) == [[Path("out/run_0.log"), Path("out/run_1.log")]]
    assert log_paths(Path("run.txt"), [("a", 1), ("b", 2)]) == [[Path("run_a.txt")],
                                                               [Path("run_b_0.txt"), Path("run_b_1.txt")]]


# ---------------------------------------------------------------- bad input ----

@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "earlier.json").write_text('{"kept": true}')
    return folder


@pytest.mark.parametrize("runs, existing, target, fragment", [
    ("1", None, "missing/run.log", "does not exist"),
    ("1", "taken.log", "taken.log", "taken.log already exists"),
    ("2", "taken_1.log", "taken.log", "taken_1.log already exists"),  # the second run's log
])
def test_a_log_that_cannot_be_written_is_refused_before_any_work(capsys, tmp_path, results, runs, existing, target,
                                                                 fragment):
    if existing:
        (tmp_path / existing).write_text("mine")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    code = main(["run", "fashion-mnist-smoke", "--runs", runs, "--device", "cpu", "--results", str(results),
                 "--mllog", str(tmp_path / target)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and fragment in lines[0] and "Traceback" not in err, err
    assert sorted(os.listdir(results)) == ["earlier.json"]
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
