"""bench tune (issue 42): trials on the validation split and their own seeds, pruned by time, the
study resumable, the best recipe verified beside the default, bad input refused before training.
Synthetic data (tests/helpers.py) in this process; the Ray run is in test_ray_cluster.py."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.datasets import ArrayDataset
from bench.seeds import TUNE_SEED_BASE
from bench.suites import available_suites, load_suite, suite_with
from tests.helpers import separable_dataset, serve_separable_data, suite_text

SPACE = """
"recipe.lr" = {low = 0.01, high = 0.3, log = true}
"recipe.epochs" = {low = 1, high = 3, step = 1}
"recipe.batch_size" = [16, 32]
"""


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """A suite and a space on the separable set, one torch thread; returns the files and the results folder."""
    import torch

    serve_separable_data(monkeypatch)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    suite = tmp_path / "tiny.toml"
    suite.write_text(suite_text(mode="reach", target=0.8, epochs=3))
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    yield suite, space, tmp_path / "results"
    torch.set_num_threads(threads)


def tune(suite: Path, space: Path, results: Path, *extra: str) -> int:
    return main(["tune", str(suite), "--space", str(space), "--results", str(results), "--device", "cpu",
                 "--validation-size", "64", "--margin", "0", "--verify-runs", "3", *extra])


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_a_search_writes_its_trials_a_tuned_suite_and_the_verification_and_resumes(tiny, monkeypatch):
    suite, space, results = tiny
    assert tune(suite, space, results, "--trials", "4") in (0, 1)  # a verdict either way
    folder = results / "tune" / "tiny"
    trials = records(folder / "trials")
    assert len(trials) == 4
    verdict_seeds = set(range(load_suite(str(suite)).resolved["runs"]))
    for record in trials:
        seed = record["invocation"]["seeds"][0]
        assert seed >= TUNE_SEED_BASE and seed not in verdict_seeds
        assert record["dataset"]["judged_on"] == "validation" and record["dataset"]["test_size"] == 0
        assert record["suite"]["resolved"]["dataset"]["judged_on"] == "validation"
    verification = records(folder / "verify")
    assert sorted(r["suite"]["name"] for r in verification) == ["tiny", "tiny-tuned"]
    assert all(r["invocation"]["seeds"] == [0, 1, 2] and r["invocation"]["race"] for r in verification)
    assert not {s for r in verification for s in r["invocation"]["seeds"]} & {r["invocation"]["seeds"][0]
                                                                               for r in trials}
    confirmed = records(folder / "confirm")  # the fastest trials again, on the confirmation seeds, on validation
    assert 1 <= len(confirmed) <= 3
    from bench.tune.confirm import CONFIRM_SEED_BASE

    for record in confirmed:
        assert record["invocation"]["seeds"] == [CONFIRM_SEED_BASE + i for i in range(3)]
        assert record["dataset"]["judged_on"] == "validation" and "time_limit_s" not in record["suite"]["resolved"]["recipe"]
    tuned_path = folder / "tiny-tuned.toml"
    tuned = load_suite(str(tuned_path))
    origin = tuned.resolved["tuned_from"]
    assert {"storage", "trials", "space", "machine", "commit", "confirmation"} <= set(origin)
    assert origin["trials"] == 4 and set(origin["space"]) == {"recipe.lr", "recipe.epochs", "recipe.batch_size"}
    assert tuned.target == 0.8 and "judged_on" not in tuned.dataset and "time_limit_s" not in tuned.recipe
    page = (folder / "REPORT.md").read_text()
    assert "trials.png" in page and "## Trials" in page and "Best recipe against the default" in page
    assert (folder / "report.html").is_file() and (folder / "trials.png").is_file()

    assert tune(suite, space, results, "--trials", "2") in (0, 1)  # resumed: 2 more, not 6
    assert len(records(folder / "trials")) == 6
    import optuna

    study = optuna.load_study(study_name="tiny-time", storage=f"sqlite:///{(folder / 'study.db').resolve()}")
    assert len(study.trials) == 6
    assert tomllib.loads(tuned_path.read_text())["name"] == "tiny-tuned"  # the first tuned suite is kept as it was
    (folder / "REPORT.md").unlink()
    monkeypatch.setattr("bench.runner.train_run", lambda *a, **k: pytest.fail("trained"))
    assert tune(suite, space, results, "--report-only") == 0  # from the stored study: nothing runs
    page = (folder / "REPORT.md").read_text()
    assert "| 5 |" in page and "Best recipe against the default" in page and "Parameter importances" in page


def test_report_only_without_a_search_is_one_line(tiny, capsys):
    suite, space, results = tiny
    assert tune(suite, space, results, "--report-only") == 2
    assert "no search of tiny here yet" in capsys.readouterr().err
    assert not results.exists()


class Tripwire:
    """A split that fails the run that touches it in any way."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read ({name})")

    def __len__(self):
        raise AssertionError("the test split was read (len)")

    def __getitem__(self, item):
        raise AssertionError("the test split was read (indexing)")

    def __array__(self, *args, **kwargs):
        raise AssertionError("the test split was read (as an array)")


def tripwired() -> ArrayDataset:
    data = separable_dataset()
    return ArrayDataset(name=data.name, train_images=data.train_images, train_labels=data.train_labels,
                        test_images=Tripwire(), test_labels=Tripwire(), classes=data.classes, source="synthetic",
                        sha256=None)


def test_no_trial_reads_the_test_split(tiny, monkeypatch):
    suite, space, results = tiny
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: tripwired())
    monkeypatch.setattr("bench.datasets.load_dataset", lambda *a, **k: tripwired())
    monkeypatch.setattr("bench.tune.finish.conclude", lambda *a, **k: 0)  # verification reads test, as it must
    assert tune(suite, space, results, "--trials", "3") == 0
    trials = records(results / "tune" / "tiny" / "trials")
    assert len(trials) == 3
    assert all(r["status"] == "complete" for r in trials), [r.get("error") for r in trials]
    # every image the trainer judged on was a validation image: 64 per deciding evaluation
    for record in trials:
        run = record["runs"][0]
        assert run["steps"] >= 1 and run["accuracy"] is not None and record["dataset"]["validation_size"] == 64


def test_the_tripwire_catches_a_run_judged_on_test(tiny, monkeypatch):
    """The check above can fail: the same split judged on test (an ordinary run) trips it."""
    from bench.runner import run_invocation

    suite, _, results = tiny
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: tripwired())
    with pytest.raises(AssertionError, match="the test split was read"):
        run_invocation(suite_with(suite, {"dataset.validation_size": 64}, "test"), runs=1, seed=0,
                       device_choice="cpu", results_dir=results)


def test_a_time_limit_stops_the_run_where_it_stands(tiny):
    from bench.runner import run_invocation

    suite, _, results = tiny
    limited = suite_with(suite, {"recipe.time_limit_s": 1e-9, "recipe.lr": 1e-7, "target": 0.999}, "test")
    record, _ = run_invocation(limited, runs=1, seed=0, device_choice="cpu", results_dir=results)
    run = record["runs"][0]
    assert run["stopped_at_time_limit"] is True and run["steps"] == 1 and run["time_limit_s"] == 1e-9
    assert run["accuracy"] is not None and run["time_to_target_s"] is None and "time limit" in run["note"]
    plain, _ = run_invocation(load_suite(str(suite)), runs=1, seed=0, device_choice="cpu", results_dir=results)
    assert "stopped_at_time_limit" not in plain["runs"][0] and "time_limit_s" not in plain["runs"][0]
    assert plain["runs"][0]["steps"] > 1


def test_the_new_keys_leave_every_shipped_suite_as_it_was():
    """recipe.time_limit_s, dataset.judged_on and tuned_from are absent unless set: no shipped suite's
    resolved form (and so its hash and its records) changes; setting one changes the hash."""
    for name, path in available_suites().items():
        suite = load_suite(str(path))
        assert "time_limit_s" not in suite.recipe and "judged_on" not in suite.dataset, name
        assert "tuned_from" not in suite.resolved, name
    smoke = load_suite("fashion-mnist-smoke")
    assert suite_with(smoke.path, {"recipe.time_limit_s": 5.0}, "test").hash != smoke.hash


def test_trial_outcomes_pruned_not_reached_failed():
    from bench.tune.search import trial_outcome

    def record(**run):
        return {"status": "complete", "runs": [{"status": "complete", "accuracy": 0.9, "timed_s": 3.0, **run}]}

    assert trial_outcome(record(reached_target=True, time_to_target_s=2.5), "time")[:2] == ("reached", 2.5)
    assert trial_outcome(record(reached_target=False, stopped_at_time_limit=True), "time")[:2] == ("pruned", None)
    assert trial_outcome(record(reached_target=True, stopped_at_time_limit=True), "time")[0] == "pruned"
    assert trial_outcome(record(reached_target=False), "time")[0] == "not reached"
    assert trial_outcome(record(reached_target=False), "accuracy")[:2] == ("not reached", 0.9)
    assert trial_outcome({"status": "failed", "runs": [], "error": {"message": "boom"}}, "time")[0] == "failed"
    assert trial_outcome({"status": "diverged", "runs": [{"status": "diverged"}]}, "time")[0] == "diverged"


def test_the_speed_up_and_its_paired_interval():
    from bench.tune.verify import speedup

    assert speedup([2.0] * 4, [1.0] * 4) == {"ratio": 2.0, "ci95": [2.0, 2.0], "pairs": 4}
    noisy = speedup([2.0, 2.2, 1.8, 2.1, 1.9], [1.0, 1.1, 0.9, 1.0, 1.2])
    assert noisy["ci95"][0] < noisy["ratio"] < noisy["ci95"][1]
    assert speedup([2.0, None, 2.0], [1.0, 1.0, None])["ci95"] is None  # one pair: no interval


BAD_SPACES = {
    "unknown key": ('"recipe.lrr" = [0.1]', "no suite key"),
    "impossible range": ('"recipe.lr" = {low = 0.3, high = 0.1}', "must be below high"),
    "log from zero": ('"recipe.lr" = {low = 0.0, high = 0.1, log = true}', "log range needs low > 0"),
    "a value the suite refuses": ('"recipe.momentum" = {low = 0.5, high = 1.5}', "recipe.momentum"),
    "the data": ('"dataset.train_size" = [100, 200]', "cannot be searched"),
}


@pytest.mark.parametrize("case", list(BAD_SPACES))
def test_a_bad_space_is_one_line_before_any_training(tiny, monkeypatch, capsys, case):
    suite, space, results = tiny
    text, message = BAD_SPACES[case]
    space.write_text(text)
    monkeypatch.setattr("bench.runner.train_run", lambda *a, **k: pytest.fail("trained"))
    assert tune(suite, space, results, "--trials", "2") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and str(space) in err
    assert not (results / "tune" / "tiny" / "trials").exists()


@pytest.mark.parametrize("extra, message", [
    (["--trials", "0"], "--trials 0: give at least 1"),
    (["--verify-runs", "2"], "--verify-runs 2: give at least 3"),
    (["--storage", "sqlite:////nonexistent-folder/x/study.db"], "cannot open the study's storage"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot open the study's storage"),
    (["--storage", "/nonexistent-folder/x/study.journal"], "does not exist"),
])
def test_bad_options_are_one_line_before_any_training(tiny, monkeypatch, capsys, extra, message):
    suite, space, results = tiny
    monkeypatch.setattr("bench.runner.train_run", lambda *a, **k: pytest.fail("trained"))
    assert tune(suite, space, results, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (results / "tune" / "tiny" / "trials").exists()


def test_the_slurm_dry_run_prints_the_trials_and_the_array(tiny, capsys):
    suite, space, results = tiny
    assert tune(suite, space, results, "--executor", "slurm", "--workers", "2", "--partition", "cpu",
                "--dry-run") == 0
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-1%2" in out and "#SBATCH --partition=cpu" in out
    assert f"--seed {TUNE_SEED_BASE}" in out and f"--seed {TUNE_SEED_BASE + 1}" in out
    assert 'dataset.judged_on="validation"' in out
    assert not results.exists()  # nothing stored: the values were drawn in memory


def test_the_shipped_default_space_loads_against_its_suite():
    from bench.tune.space import default_space, load_space

    smoke = load_suite("fashion-mnist-smoke")
    space = load_space(default_space(smoke), smoke)
    assert {d.key for d in space.dimensions} >= {"recipe.lr", "recipe.batch_size", "recipe.epochs"}
    assert np.isclose(space.dimensions[0].low, 0.02)


def test_the_tuned_suite_leaves_out_what_was_not_measured(tiny):
    """A search on Ray measures no load (its trials ran on other machines): TOML has no null, so the
    figure is left out of tuned_from rather than failing the write after the search."""
    from bench.tune.output import write_tuned_suite

    suite, _, results = tiny
    origin = {"storage": "sqlite:///x.db", "trials": 4, "machine": {"summary": "a CPU", "hostname": None},
              "competing_cpu_share": None, "space": {"recipe.lr": {"low": 0.01, "high": 0.1, "log": True}}}
    path = write_tuned_suite(load_suite(str(suite)), {"recipe.lr": 0.02, "recipe.batch_size": 16}, origin, results)
    tuned = load_suite(str(path))
    assert tuned.recipe["lr"] == 0.02 and tuned.recipe["batch_size"] == 16
    assert "competing_cpu_share" not in tuned.resolved["tuned_from"]
    assert tuned.resolved["tuned_from"]["machine"] == {"summary": "a CPU"}


def test_the_accuracy_objective_trains_each_trial_s_whole_budget_unlimited(tiny, monkeypatch):
    suite, space, results = tiny
    monkeypatch.setattr("bench.tune.finish.conclude", lambda *a, **k: 0)
    assert tune(suite, space, results, "--trials", "3", "--objective", "accuracy") == 0
    import optuna

    folder = results / "tune" / "tiny"
    study = optuna.load_study(study_name="tiny-accuracy", storage=f"sqlite:///{(folder / 'study.db').resolve()}")
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    for record in records(folder / "trials"):
        resolved = record["suite"]["resolved"]
        assert resolved["mode"] == "budget" and "time_limit_s" not in resolved["recipe"]
        assert record["runs"][0]["epochs"] == resolved["recipe"]["epochs"]  # the whole budget
    assert {t.value for t in study.trials if t.value is not None} <= {r["runs"][0]["accuracy"]
                                                                       for r in records(folder / "trials")}


def test_a_time_budget_starts_trials_until_it_has_passed(tiny, monkeypatch):
    suite, space, results = tiny
    monkeypatch.setattr("bench.tune.finish.conclude", lambda *a, **k: 0)
    assert tune(suite, space, results, "--time-budget", "0.001") == 0
    assert len(records(results / "tune" / "tiny" / "trials")) == 1  # the first starts at once; none after it


def test_the_trials_target_is_the_suites_calibration_replayed_on_validation(tiny, monkeypatch):
    """A calibrated target is a rule over the default recipe's runs on given seeds: the same rule on
    the same seeds, judged on validation, is what trials must reach (the splits differ in difficulty)."""
    suite, space, results = tiny
    calibration = suite.parent / "calibration.json"
    calibration.write_text(json.dumps({
        "kind": "bench-calibration", "format": 1, "seeds": [1000, 1001], "accuracies": [0.8, 0.8], "target": 0.8,  # the rule's own target
        "rule": {"kind": "quantile", "quantile": 0.1, "text": "the 0.1-quantile"}}))
    suite.write_text(suite.read_text().replace('runs = 2', f'runs = 2\ntarget_source = "calibration:{calibration}"'))
    monkeypatch.setattr("bench.tune.finish.conclude", lambda *a, **k: 0)
    assert tune(suite, space, results, "--trials", "1") == 0
    folder = results / "tune" / "tiny"
    replayed = records(folder / "calibrate")
    assert sorted(r["invocation"]["seeds"][0] for r in replayed) == [1000, 1001]
    assert all(r["dataset"]["judged_on"] == "validation" and r["suite"]["resolved"]["mode"] == "budget"
               for r in replayed)
    from bench.record.calibration import implied_target

    expected, _ = implied_target([r["runs"][0]["accuracy"] for r in replayed], 0.1)
    import optuna

    study = optuna.load_study(study_name="tiny-time", storage=f"sqlite:///{(folder / 'study.db').resolve()}")
    assert study.user_attrs["validation_target"]["target"] == expected
    assert "calibrated on validation" in study.user_attrs["validation_target"]["source"]
    assert records(folder / "trials")[0]["suite"]["resolved"]["target"] == expected
    assert tune(suite, space, results, "--trials", "1") == 0  # resumed: kept, not replayed
    assert len(records(folder / "calibrate")) == 2


def test_the_first_trial_is_the_suites_own_recipe_where_the_space_holds_it(tiny, monkeypatch):
    suite, space, results = tiny
    monkeypatch.setattr("bench.tune.finish.conclude", lambda *a, **k: 0)
    assert tune(suite, space, results, "--trials", "2") == 0
    first = records(results / "tune" / "tiny" / "trials")[0]
    base = load_suite(str(suite)).recipe
    assert first["study"]["trial"] == 0
    assert {k: first["suite"]["resolved"]["recipe"][k] for k in ("lr", "epochs", "batch_size")} == \
        {k: base[k] for k in ("lr", "epochs", "batch_size")}


def test_a_suite_outside_its_space_is_not_a_trial():
    from bench.tune.space import default_params, load_space

    smoke = load_suite("fashion-mnist-smoke")
    space = load_space(Path(__file__).parent.parent / "suites" / "spaces" / "fashion-mnist-smoke.toml", smoke)
    assert default_params(space, smoke) == {"recipe.lr": 0.05, "recipe.batch_size": 128, "recipe.epochs": 2.0,
                                            "recipe.momentum": 0.9, "model.args.hidden": "[256]"}
    faster = suite_with(smoke.path, {"recipe.lr": 0.5}, "test")
    assert default_params(space, faster) is None
