"""Issue 19, items 1, 3 and 5: a time to target only where the target was reached, the pass rule,
accuracy intervals that stay inside [0, 100%], and `bench run --runs auto`."""

from __future__ import annotations

import hashlib

import json
import statistics
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.record.run import first_reached
from bench.record.schema import SCHEMA_VERSION, migrate, problem
from bench.record.stats import accuracy_ci95, aggregate, runs_auto_stop
from bench.suites import load_suite, parse_pass_rule
from tests.helpers import serve_separable_data, suite_text


def run(acc, t, timed=5.0, status="complete"):
    return {"status": status, "accuracy": acc, "time_to_target_s": t, "timed_s": timed,
            "train_images_per_s": 100.0, "energy_j": None}


# ---------------------------------------------------------------- item 1: reached ----

def test_time_figures_are_over_the_runs_that_reached_and_the_timed_region_has_its_own():
    agg = aggregate([run(0.95, 4.0, 4.0), run(0.90, None, 9.0), run(0.96, 6.0, 6.0)], 0.94)
    assert agg["reached_runs"] == 2 and agg["median_time_s"] == 5.0 and agg["median_timed_s"] == 6.0
    none = aggregate([run(0.90, None, 3.0), run(0.91, None, 5.0)], 0.94)
    assert none["reached_runs"] == 0 and none["median_time_s"] is None and none["median_timed_s"] == 4.0


def test_the_first_crossing_is_read_off_the_evaluated_epochs_after_the_last_pruning():
    curve = [{"epoch": 1, "step": 10, "time_s": 1.0, "accuracy": 0.7}, {"epoch": 2, "step": 20, "time_s": 2.0,
             "accuracy": 0.86}, {"epoch": 3, "step": 30, "time_s": 3.0, "accuracy": 0.9},
             {"epoch": 4, "step": 40, "time_s": 4.0, "accuracy": 0.91}]
    assert first_reached(curve, 0.84, []) == {"first_reached_s": 2.0, "first_reached_step": 20}
    assert first_reached(curve, 0.84, [3]) == {"first_reached_s": 3.0, "first_reached_step": 30}
    assert first_reached(curve, 0.95, []) == {"first_reached_s": None, "first_reached_step": None}


def _schema2_budget_record() -> dict:
    committed = sorted((Path(__file__).resolve().parent.parent / "results" / "runs").glob("*.json"))
    record = next(json.loads(p.read_text()) for p in committed
                  if json.loads(p.read_text())["schema_version"] == 2
                  and json.loads(p.read_text())["suite"]["resolved"]["mode"] == "budget"
                  and len(json.loads(p.read_text())["runs"]) >= 2)
    record["runs"][0]["accuracy"] = 0.5 * record["aggregate"]["target"]  # this one fell short
    record["runs"][0]["reached_target"] = False
    for other in record["runs"][1:]:
        other["accuracy"], other["reached_target"] = record["aggregate"]["target"], True
    return record


def test_a_schema2_budget_run_below_the_target_loses_its_time_on_reading():
    old = _schema2_budget_record()
    assert old["runs"][0]["time_to_target_s"] is not None  # schema 2 gave it the whole timed region
    new = migrate(old)
    assert new["schema_version"] == SCHEMA_VERSION == 3 and problem(new) is None
    first, rest = new["runs"][0], new["runs"][1:]
    assert first["time_to_target_s"] is None and first["steps_to_target"] is None
    assert all(r["time_to_target_s"] == r["timed_s"] and r["steps_to_target"] == r["steps"] for r in rest)
    agg = new["aggregate"]
    assert agg["pass_rule"] == "mean" and agg["reached_runs"] == len(rest)
    assert agg["median_time_s"] == pytest.approx(statistics.median(r["timed_s"] for r in rest))
    assert agg["median_timed_s"] is not None


def _bench_run(tmp_path: Path, suite: str, *args: str) -> tuple[int, dict]:
    path = tmp_path / "suite.toml"
    path.write_text(suite)
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        serve_separable_data(patch)
        torch.set_num_threads(1)
        try:
            code = main(["run", str(path), "--device", "cpu", "--results", str(tmp_path / "runs"), *args])
        finally:
            torch.set_num_threads(threads)
    (result,) = sorted((tmp_path / "runs").glob("*.json"))
    return code, json.loads(result.read_text())


def test_a_budget_suite_no_run_reaches_has_no_time_and_the_tables_say_0_of_n(tmp_path, capsys):
    # a target no MLP reaches in one epoch at a tiny learning rate
    code, record = _bench_run(tmp_path, suite_text(target=0.999, epochs=1, lr=1e-5), "--runs", "3")
    assert code == 1 and record["aggregate"]["verdict"] == "FAIL"
    assert [r["time_to_target_s"] for r in record["runs"]] == [None, None, None]
    assert all(r["steps_to_target"] is None and r["timed_s"] > 0 for r in record["runs"])
    assert record["aggregate"]["reached_runs"] == 0 and record["aggregate"]["median_time_s"] is None
    assert "— (0 of 3 reached)" in capsys.readouterr().out
    assert main(["leaderboard", "--results", str(tmp_path / "runs"), "--out", str(tmp_path / "board")]) == 0
    board = (tmp_path / "board" / "LEADERBOARD.md").read_text()
    assert "— (0 of 3 reached)" in board and "FAIL (0% ≥ target, rule mean)" in board


def test_a_budget_run_that_reaches_has_the_timed_region_and_its_first_crossing(tmp_path):
    code, record = _bench_run(tmp_path, suite_text(target=0.5, epochs=3), "--runs", "1")
    (one,) = record["runs"]
    assert code == 0 and one["time_to_target_s"] == one["timed_s"] and one["steps_to_target"] == one["steps"]
    # curve evaluations are on by default: every epoch has an accuracy, the first crossing is one of them
    assert all(p["accuracy"] is not None for p in one["curve"])
    crossing = next(p for p in one["curve"] if p["accuracy"] >= 0.5)
    assert (one["first_reached_s"], one["first_reached_step"]) == (crossing["time_s"], crossing["step"])


# ---------------------------------------------------------------- item 3: pass rule ----

def test_the_pass_rule_decides_the_verdict():
    runs = [run(0.99, 1.0), run(0.99, 1.0), run(0.93, None)]  # mean 0.97, 2 of 3 reach 0.94
    assert aggregate(runs, 0.94)["verdict"] == "PASS"
    assert aggregate(runs, 0.94, "every")["verdict"] == "FAIL"
    assert aggregate(runs, 0.94, "fraction:0.6")["verdict"] == "PASS"
    assert aggregate(runs, 0.94, "fraction:0.7")["verdict"] == "FAIL"
    assert aggregate(runs, 0.94, "every")["pass_rule"] == "every"
    for bad in ("most", "fraction:0", "fraction:1.5", "fraction:x"):
        with pytest.raises(ValueError, match="pass rule"):
            parse_pass_rule(bad)


def test_a_suite_states_its_pass_rule_and_a_bad_one_is_one_line(tmp_path, capsys):
    suite = suite_text(target=0.5, epochs=1).replace('mode = "budget"', 'mode = "budget"\npass_rule = "every"')
    code, record = _bench_run(tmp_path, suite, "--runs", "1")
    assert record["suite"]["resolved"]["pass_rule"] == "every" == record["aggregate"]["pass_rule"]
    bad = tmp_path / "bad.toml"
    bad.write_text(suite.replace('"every"', '"fraction:2"'))
    capsys.readouterr()
    assert main(["run", str(bad), "--device", "cpu", "--results", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "pass_rule" in err and "Traceback" not in err


# ---------------------------------------------------------------- item 5: intervals, --runs auto ----

def test_accuracy_intervals_are_clipped_to_0_and_1():
    mean, ci = accuracy_ci95([0.99, 0.999])  # two seeds: t = 12.7 runs far past 100%
    assert ci[1] == 1.0 and ci[0] < mean
    assert aggregate([run(0.99, 1.0), run(0.999, 1.0)], 0.9)["accuracy_ci95"][1] == 1.0


def test_runs_auto_stops_on_the_width_after_three_runs_or_at_the_most_runs():
    assert runs_auto_stop([0.9, 0.9], 0.01, 10, runs=2)["stopped"] is None  # never before 3 runs
    done = runs_auto_stop([0.9, 0.9005, 0.9001], 0.01, 10, runs=3)
    assert done["stopped"] == "ci_width" and done["half_width"] < 0.01
    assert runs_auto_stop([0.5, 0.9, 0.7], 0.01, 10, runs=3)["stopped"] is None
    assert runs_auto_stop([0.5, 0.9, 0.7], 0.01, 3, runs=3)["stopped"] == "max_runs"


def test_bench_run_runs_auto_records_why_it_stopped(tmp_path):
    # a half-width of 100 percentage points is met at the first chance: 3 runs
    code, record = _bench_run(tmp_path, suite_text(target=0.5, epochs=1), "--runs", "auto", "--ci-width", "0.99",
                              "--max-runs", "5")
    auto = record["invocation"]["runs_auto"]
    assert len(record["runs"]) == 3 and auto["stopped"] == "ci_width" and auto["runs"] == 3
    assert record["invocation"]["seeds"] == [0, 1, 2] and record["status"] == "complete"
    assert problem(record) is None


def test_runs_auto_options_are_checked_before_any_work(tmp_path, capsys):
    path = tmp_path / "suite.toml"
    path.write_text(suite_text())
    assert main(["run", str(path), "--runs", "auto", "--max-runs", "2", "--results", str(tmp_path / "r")]) == 2
    assert "--max-runs 2" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_the_best_line_lists_every_point_within_the_best_ones_interval():
    import pandas as pd

    from bench.studies.figures import StudyFrames
    from bench.studies.report_sections import _ties

    class Ranked:  # what _ties reads of a study
        rank, axes = "accuracy", {"recipe.lr": [0.1, 0.2, 0.3]}

    seeds = {"a": [0.88, 0.90, 0.92], "b": [0.875, 0.885, 0.895], "c": [0.79, 0.80, 0.81]}
    points = pd.DataFrame([
        {"point": "a", "complete": 3, "mean_accuracy": 0.90, "ci_low": 0.88, "ci_high": 0.92, "axis:recipe.lr": "0.1"},
        {"point": "b", "complete": 3, "mean_accuracy": 0.885, "ci_low": 0.87, "ci_high": 0.90, "axis:recipe.lr": "0.2"},
        {"point": "c", "complete": 3, "mean_accuracy": 0.80, "ci_low": 0.79, "ci_high": 0.81, "axis:recipe.lr": "0.3"}])
    cells = pd.DataFrame([{"point": p, "state": "done", "status": "complete", "accuracy": a}
                          for p, values in seeds.items() for a in values])
    line = _ties(Ranked(), StudyFrames(points=points, cells=cells, curves=pd.DataFrame()), points.iloc[0])
    assert "recipe.lr = 0.2 (88.50%)" in line and "0.3" not in line


def test_reach_mode_decides_within_the_epoch_every_eval_every_epochs(tmp_path):
    # 256 images at batch 32: 8 steps an epoch; eval_every 0.25: a deciding evaluation every 2 steps
    text = suite_text(mode="reach", target=0.9, epochs=3, lr=0.05).replace("[recipe]\n", "[recipe]\neval_every = 0.25\n")
    code, record = _bench_run(tmp_path, text, "--runs", "1")
    run = record["runs"][0]
    assert code == 0 and run["reached_target"], run
    last = run["curve"][-1]
    # stopped at a quarter epoch (the separable set is learnt within one), not at the epoch's end
    assert last["step"] % 2 == 0 and last["step"] % 8 != 0, run["curve"]
    assert run["time_to_target_s"] == last["time_s"] and run["first_reached_step"] == last["step"]
    assert run["deciding_eval_s"] > 0  # the deciding evaluations' cost, inside the clock, reported
    # the key at its default keeps every existing suite's hash
    plain = suite_text(mode="reach", target=0.9, epochs=3, lr=0.05)
    explicit = plain.replace("[recipe]\n", "[recipe]\neval_every = 0\n")
    (tmp_path / "a.toml").write_text(plain)
    (tmp_path / "b.toml").write_text(explicit)
    assert load_suite(str(tmp_path / "a.toml")).hash == load_suite(str(tmp_path / "b.toml")).hash
    resolved = load_suite(str(tmp_path / "a.toml")).resolved
    legacy = {**resolved, "recipe": {k: v for k, v in resolved["recipe"].items() if k != "eval_every"}}
    assert load_suite(str(tmp_path / "a.toml")).hash == hashlib.sha256(
        json.dumps(legacy, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]
