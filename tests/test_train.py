"""The trainer and the invocation runner on synthetic data: contract, determinism, failure modes."""

import json
import os

import pytest
import torch

from bench.errors import BenchError
from bench.runner import Interrupted, run_invocation
from bench.suites import load_suite
from bench.train.optim import param_groups
from bench.train import PreparedData, resolve_device, train_run
from tests.helpers import separable_dataset, suite_text

CPU = torch.device("cpu")


@pytest.fixture
def data():
    return PreparedData.from_dataset(separable_dataset())


@pytest.fixture
def suite_file(tmp_path):
    def make(**kw):
        path = tmp_path / "tiny.toml"
        path.write_text(suite_text(**kw))
        return str(path)
    return make


@pytest.fixture
def fake_load(monkeypatch):
    """The runner's dataset loader, answering with the synthetic set."""
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())


def test_budget_run_learns_and_records_the_contract(data, suite_file):
    suite = load_suite(suite_file(epochs=3))
    run = train_run(suite.resolved, data, seed=0, device=CPU)
    assert run["status"] == "complete" and run["accuracy"] >= 0.9
    assert run["steps"] == 3 * (256 // 32)
    assert [p["epoch"] for p in run["curve"]] == [1, 2, 3]
    # budget mode: curve evaluations are paused out of the timed region and timed apart
    assert run["curve_eval_s"] > 0 and run["deciding_eval_s"] > 0
    assert run["time_to_target_s"] == run["timed_s"]
    assert run["train_time_s"] <= run["timed_s"]
    assert run["train_images_per_s"] == pytest.approx(run["train_images"] / run["train_time_s"])
    assert run["peak_memory_mb"] is None and "CUDA" in run["memory_reason"]
    assert run["energy_j"] is None and run["energy_reason"]


def test_fractional_epoch_budget(data, suite_file):
    run = train_run(load_suite(suite_file(epochs=1.5)).resolved, data, seed=0, device=CPU)
    assert run["steps"] == 12 and run["epochs"] == 1.5


def test_reach_mode_stops_at_the_first_evaluation_at_target(data, suite_file):
    suite = load_suite(suite_file(mode="reach", target=0.8, epochs=10))
    run = train_run(suite.resolved, data, seed=0, device=CPU)
    assert run["reached_target"] and run["accuracy"] >= 0.8
    assert len(run["curve"]) < 10
    assert run["time_to_target_s"] == run["curve"][-1]["time_s"]


def test_reach_mode_that_never_reaches_has_no_time(data, suite_file):
    run = train_run(load_suite(suite_file(mode="reach", target=1.0, epochs=1, lr=1e-6)).resolved, data, 0, CPU)
    assert not run["reached_target"] and run["time_to_target_s"] is None and "did not reach" in run["note"]


def test_same_seed_same_accuracy_other_seed_other_weights(data, suite_file):
    suite = load_suite(suite_file(model="lenet5", model_args="", epochs=1, tta=2))
    a = train_run(suite.resolved, data, seed=3, device=CPU)
    b = train_run(suite.resolved, data, seed=3, device=CPU)
    c = train_run(suite.resolved, data, seed=4, device=CPU)
    assert a["accuracy"] == b["accuracy"]
    assert [p["loss"] for p in a["curve"]] == [p["loss"] for p in b["curve"]]
    assert [p["loss"] for p in a["curve"]] != [p["loss"] for p in c["curve"]]


def test_airbench_net_trains_with_whitening_lookahead_and_tta(suite_file):
    data = PreparedData.from_dataset(separable_dataset(size=12, channels=3))
    text = suite_file(model="airbench", model_args="args = { widths = [8, 8, 8] }", epochs=2, tta=2)
    suite = load_suite(text, ["recipe.whiten_bias_epochs=1", "recipe.lookahead.every=2", "recipe.norm_lr_scale=4"])
    run = train_run(suite.resolved, data, seed=0, device=CPU)
    assert run["status"] == "complete" and run["accuracy"] > 0.8


def test_norm_group_has_scaled_lr_and_unchanged_step_decay():
    from bench.models import build_model
    from bench.suites import load_suite as _load

    recipe = _load("cifar10-94").recipe
    groups = {g["name"]: g for g in param_groups(build_model("airbench", 10, (3, 32, 32)), recipe)}
    assert groups["norm"]["lr"] == pytest.approx(recipe["lr"] * 64)
    assert groups["norm"]["lr"] * groups["norm"]["weight_decay"] == pytest.approx(
        groups["other"]["lr"] * groups["other"]["weight_decay"])
    assert "whiten_bias" in groups


def test_nan_loss_ends_as_diverged(tmp_path, suite_file, fake_load):
    suite = load_suite(suite_file(lr=1e30))
    record, path = run_invocation(suite, runs=2, device_choice="cpu", results_dir=tmp_path)
    assert record["status"] == "diverged" and len(record["runs"]) == 1
    assert record["runs"][0]["status"] == "diverged"
    saved = json.loads(path.read_text())
    assert saved["status"] == "diverged" and saved["aggregate"]["verdict"] == "FAIL"


def test_result_file_has_the_design_keys(tmp_path, suite_file, fake_load):
    suite = load_suite(suite_file(epochs=1), ["recipe.lr=0.04"])
    record, path = run_invocation(suite, runs=3, seed=5, device_choice="cpu", results_dir=tmp_path)
    saved = json.loads(path.read_text())
    for key in ("schema_version", "id", "status", "suite", "code", "env", "model", "runs", "aggregate"):
        assert key in saved
    assert saved["status"] == "complete" and path.stem == saved["id"]
    assert saved["suite"]["overrides"] == {"recipe.lr": 0.04} and saved["suite"]["resolved"]["recipe"]["lr"] == 0.04
    assert {"version", "git_commit", "git_dirty"} <= saved["code"].keys()
    assert saved["env"]["device"] == "cpu" and saved["env"]["cpu"]["cores"] >= 1
    assert saved["model"]["params"] > 0 and saved["model"]["flops_per_image"] > 0
    assert [r["seed"] for r in saved["runs"]] == [5, 6, 7]
    for key in ("seed", "accuracy", "time_to_target_s", "compile_s", "data_prep_s", "train_images_per_s",
                "peak_memory_mb", "energy_j", "curve"):
        assert key in saved["runs"][0]
    for key in ("verdict", "target", "mean_accuracy", "accuracy_ci95", "pass_fraction", "median_time_s",
                "min_time_s", "max_time_s", "olympic_mean_time_s"):
        assert key in saved["aggregate"]


def test_interrupt_keeps_finished_runs(tmp_path, suite_file, fake_load, monkeypatch):
    import bench.runner as runner

    real, calls = runner.train_run, []

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "train_run", interrupt_second)
    with pytest.raises(Interrupted) as stop:
        run_invocation(load_suite(suite_file(epochs=1)), runs=3, device_choice="cpu", results_dir=tmp_path)
    saved = json.loads(stop.value.path.read_text())
    assert saved["status"] == "interrupted" and len(saved["runs"]) == 1
    assert saved["aggregate"]["verdict"] == "INCOMPLETE" and saved["aggregate"]["mean_accuracy"] is not None


def test_cuda_requested_without_cuda_is_one_line():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(BenchError, match="no CUDA device"):
        resolve_device("cuda")


def test_a_race_interleaves_seeds_and_links_the_result_files(tmp_path, suite_file, fake_load, monkeypatch):
    import bench.runner as runner
    from bench.runner import run_race

    order, real = [], runner.train_run

    def record_order(resolved, data, seed, *args, **kwargs):
        order.append((resolved["recipe"]["lr"], seed))
        return real(resolved, data, seed, *args, **kwargs)

    monkeypatch.setattr(runner, "train_run", record_order)
    a = load_suite(suite_file(epochs=1))
    b = load_suite(suite_file(epochs=1), ["recipe.lr=0.02"])
    (ra, pa), (rb, pb) = run_race([a, b], runs=2, seed=7, device_choice="cpu", results_dir=tmp_path)
    assert order == [(0.05, 7), (0.02, 7), (0.05, 8), (0.02, 8)]
    assert pa != pb and ra["status"] == rb["status"] == "complete"
    saved_a, saved_b = json.loads(pa.read_text()), json.loads(pb.read_text())
    assert saved_a["invocation"]["race"] == [{"suite": "tiny", "id": saved_b["id"]}]
    assert saved_b["invocation"]["race"] == [{"suite": "tiny", "id": saved_a["id"]}]
    assert saved_a["invocation"]["matmul_flops_per_s"] == saved_b["invocation"]["matmul_flops_per_s"]


def test_train_eval_measures_the_training_set_after_the_run_without_changing_it(data, suite_file):
    plain = load_suite(suite_file(epochs=2)).resolved
    with_eval = load_suite(suite_file(epochs=2), ["recipe.train_eval=100"]).resolved
    a = train_run(plain, data, seed=5, device=CPU)
    b = train_run(with_eval, data, seed=5, device=CPU)
    assert "train_accuracy" not in a
    assert b["train_eval_images"] == 100 and 0.8 <= b["train_accuracy"] <= 1 and b["train_eval_s"] > 0
    # measured after the timed region: the run itself is the same run
    assert b["accuracy"] == a["accuracy"] and [p["loss"] for p in b["curve"]] == [p["loss"] for p in a["curve"]]
    everything = train_run(load_suite(suite_file(epochs=1), ["recipe.train_eval=100000"]).resolved, data, 0, CPU)
    assert everything["train_eval_images"] == len(data.dataset.train_labels)


def test_a_sigterm_is_taken_as_a_ctrl_c_the_finished_runs_kept_and_exit_143(tmp_path, suite_file, fake_load,
                                                                           monkeypatch, capsys):
    # kill, scancel and CI timeouts send SIGTERM: it ended the process where it stood, no line said so
    import signal

    import bench.runner as runner
    from bench.cli import main

    real, calls = runner.train_run, []

    def terminated_in_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "train_run", terminated_in_the_second)
    before = signal.getsignal(signal.SIGTERM)
    code = main(["run", suite_file(epochs=1), "--runs", "3", "--device", "cpu", "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 143 and "terminated (SIGTERM): finished runs kept" in err and "Traceback" not in err
    [path] = list((tmp_path / "r").glob("*.json"))
    saved = json.loads(path.read_text())
    assert saved["status"] == "interrupted" and len(saved["runs"]) == 1
    assert signal.getsignal(signal.SIGTERM) == before  # the handler lives only as long as the command
