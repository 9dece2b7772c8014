"""The command line: bad input is one line, a non-zero exit, no traceback, and results/ untouched."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench import cli
from bench.cli import main
from tests.helpers import separable_dataset, suite_text


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "earlier.json").write_text('{"kept": true}')
    return folder


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, results, fragment):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert fragment in lines[0]
    assert "Traceback" not in err
    assert sorted(os.listdir(results)) == ["earlier.json"]
    assert (results / "earlier.json").read_text() == '{"kept": true}'


@pytest.fixture
def suite_path(tmp_path):
    def make(text):
        path = tmp_path / "s.toml"
        path.write_text(text)
        return str(path)
    return make


@pytest.mark.parametrize("text, fragment", [
    (suite_text().replace("batch_size = 32", "batch_size = 0"), "'recipe.batch_size' is 0"),
    (suite_text().replace("target = 0.9", "target = 1.2"), "'target' is 1.2"),
    (suite_text() + "\nspeed = 3\n", "unknown key 'recipe.augment.speed'"),
    (suite_text().replace("lr = 0.05", 'lr = "fast"'), "'recipe.lr' must be a number"),
    ("name = [", "malformed TOML"),
])
def test_bad_suite_files(capsys, results, suite_path, text, fragment):
    code, _, err = run_cli(capsys, "run", suite_path(text), "--results", str(results))
    assert_one_line_error(code, err, results, fragment)


def test_unknown_suite_name_suggests(capsys, results):
    code, _, err = run_cli(capsys, "run", "fashion-mnist-19", "--results", str(results))
    assert_one_line_error(code, err, results, "did you mean fashion-mnist-91")


def test_cuda_without_cuda(capsys, results):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run_cli(capsys, "run", "fashion-mnist-91", "--device", "cuda", "--results", str(results))
    assert_one_line_error(code, err, results, "no CUDA device")


def test_unwritable_results_folder(capsys, tmp_path, results):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    code, _, err = run_cli(capsys, "run", "fashion-mnist-91", "--results", str(blocked / "runs"))
    assert_one_line_error(code, err, results, f"is not writable: {blocked} is a file, not a folder")


def test_dataset_missing_offline(capsys, results, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "empty-cache"))
    code, _, err = run_cli(capsys, "run", "mnist-mlp", "--offline", "--device", "cpu", "--results", str(results))
    assert_one_line_error(code, err, results, "http")
    assert str(tmp_path / "empty-cache") in err


def test_empty_imagefolder(capsys, results, tmp_path, suite_path):
    (tmp_path / "imgs" / "train" / "a").mkdir(parents=True)
    (tmp_path / "imgs" / "test" / "a").mkdir(parents=True)
    text = suite_text().replace('name = "fashion-mnist"', f'name = "imagefolder"\npath = "{tmp_path / "imgs"}"')
    code, _, err = run_cli(capsys, "run", suite_path(text), "--device", "cpu", "--results", str(results))
    assert_one_line_error(code, err, results, "imgs")


def test_list_and_env(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "cifar10-94" in out and "fashion-mnist-91" in out
    studies = out.split("studies (bench sweep)")[1]
    assert "fmnist-optimizers" in studies and "fmnist-data-size" in studies and "invalid" not in studies
    code, out, _ = run_cli(capsys, "env", "--json")
    assert code == 0 and '"torch"' in out


def test_run_end_to_end_writes_a_result(capsys, results, suite_path, monkeypatch):
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())
    code, out, _ = run_cli(capsys, "run", suite_path(suite_text(epochs=2)), "--runs", "2", "--device", "cpu",
                           "--results", str(results))
    assert code == 0 and "PASS" in out
    written = [f for f in os.listdir(results) if f != "earlier.json"]
    assert len(written) == 1 and written[0].endswith(".json")


def test_no_traceback_from_a_real_process(tmp_path):
    env = {**os.environ, "BENCH_RESULTS": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "bench", "run", "no-such-suite"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "unknown suite 'no-such-suite'" in done.stderr
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("args, fragment", [
    (["run", "fashion-mnist-91", "--runs", "x"], "bench run: argument --runs: 'x': give a whole number of runs or auto"),
    (["run", "fashion-mnist-91", "--loader", "fast"], "bench run: argument --loader: invalid choice"),
    # an empty path was the working directory: result files, weights or reports landed there unasked
    (["run", "fashion-mnist-91", "--results", ""], "bench run: argument --results: an empty path"),
    (["run", "fashion-mnist-91", "--save-weights", " "], "bench run: argument --save-weights: an empty path"),
    (["leaderboard", "--out", ""], "bench leaderboard: argument --out: an empty path"),
    (["run", "fashion-mnist-91", "--bogus"], "bench run: unrecognized arguments: --bogus"),
    (["specs", "--bogus"], "bench specs: unrecognized arguments"),
    (["check"], "bench check: the following arguments are required: baseline"),
    (["leaderboard", "--bogus"], "bench leaderboard: unrecognized arguments"),
    (["compare", "--baseline"], "bench compare: argument --baseline: expected one argument"),
    (["nosuch"], "bench: argument COMMAND: invalid choice"),
    (["sweep"], "bench sweep: the following arguments are required: study"),
    (["sweep", "fmnist-optimizers", "--executor", "dask"], "bench sweep: argument --executor: invalid choice"),
])
def test_wrong_arguments_are_one_line(capsys, results, args, fragment):
    with pytest.raises(SystemExit) as stop:
        main(args)
    _, err = capsys.readouterr()
    assert_one_line_error(stop.value.code, err, results, fragment)


@pytest.mark.parametrize("args, fragment", [
    (["sweep", "fmnist-optimiser"], "unknown study 'fmnist-optimiser'; did you mean fmnist-optimizers"),
    (["sweep", "fmnist-optimizers", "--workers", "0"], "--workers 0: give at least 1"),
    (["sweep", "fmnist-optimizers", "--address", "auto"], "--address is for --executor ray"),
])
def test_bad_sweep_input_is_one_line(capsys, results, args, fragment):
    code, _, err = run_cli(capsys, *args, "--results", str(results))
    assert_one_line_error(code, err, results, fragment)


@pytest.mark.parametrize("args, fragment", [
    (["leaderboard", "--out", "{file}"], "--out {file} is a file, not a folder"),
    (["compare", "--out", "{file}"], "--out {file} is a file, not a folder"),
    (["compare", "--specs", "{tmp}/nowhere"], "--specs {tmp}/nowhere is no folder"),
    (["specs", "--models", "lenet5", "--device", "cpu", "--out", "{file}"], "--out {file} is a file, not a folder"),
])
def test_a_report_folder_that_takes_no_files_is_one_line_before_any_work(capsys, results, tmp_path, args, fragment):
    # a traceback from deep in the page writer before; specs measured for minutes first
    file = tmp_path / "a-file"
    file.write_text("mine")
    argv = [a.format(file=file, tmp=tmp_path) for a in args]
    code, _, err = run_cli(capsys, *argv[:1], "--results", str(results), *argv[1:]) if argv[0] != "specs" \
        else run_cli(capsys, *argv)
    assert_one_line_error(code, err, results, fragment.format(file=file, tmp=tmp_path))
    assert file.read_text() == "mine"


@pytest.mark.parametrize("text", ["not json", "[" * 100_000 + "]" * 100_000], ids=["not-json", "nested-too-deep"])
@pytest.mark.parametrize("command", ["check", "leaderboard --results", "compare --results"])
def test_a_named_file_that_is_no_result_is_one_line(capsys, results, tmp_path, command, text):
    # JSON nested deeper than the parser's recursion limit was a RecursionError traceback
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    code, _, err = run_cli(capsys, *command.split(), str(bad))
    assert_one_line_error(code, err, results, "give a result JSON written by 'bench run'")


@pytest.mark.parametrize("args, fragment", [
    (["--seed", str(2**64 - 1)], f"--seed {2**64 - 1}: the seeds"),  # torch's traceback before
    (["--seed", str(2**32 - 1), "--runs", "2"], f"give --seed from 0 to {2**32 - 2}"),  # numpy's stream would wrap
    (["--seed", "-1"], "--seed -1: the seeds -1–"),
    (["--seed", "-1", "--nproc-per-node", "2"], "--seed -1: the seeds"),  # once, before any rank
])
def test_a_seed_out_of_numpys_range_is_one_line(capsys, results, args, fragment):
    code, _, err = run_cli(capsys, "run", "fashion-mnist-smoke", "--device", "cpu", "--results", str(results), *args)
    assert_one_line_error(code, err, results, fragment)


@pytest.mark.parametrize("args, fragment", [
    (["--nproc-per-node", "3"], "recipe.batch_size 128 does not split over world size 3"),
    (["--nproc-per-node", "2", "--nnodes", "2"], "--nnodes > 1 needs --rdzv-endpoint"),
    (["--nproc-per-node", "2", "--nnodes", "2", "--node-rank", "1", "--rdzv-endpoint", "node0"], "give HOST:PORT"),
    (["--nproc-per-node", "1", "--nnodes", "2", "--node-rank", "2", "--rdzv-endpoint", "h:1"], "--node-rank 2"),
    (["--nproc-per-node", "0"], "at least 1"),
])
def test_launcher_input_is_checked_before_any_rank_starts(capsys, results, args, fragment):
    code, _, err = run_cli(capsys, "run", "fashion-mnist-smoke", "--device", "cpu", "--results", str(results), *args)
    assert_one_line_error(code, err, results, fragment)


def test_more_ranks_than_gpus_is_one_line(capsys, results, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    code, _, err = run_cli(capsys, "run", "fashion-mnist-smoke", "--device", "cuda", "--nproc-per-node", "4",
                           "--results", str(results))
    assert_one_line_error(code, err, results, "this node has 2 GPUs")


# ---------------------------------------------------------------- destinations, second round (issue 25) ----

@pytest.fixture
def no_training(monkeypatch):
    """Every destination is checked before any training: a run that starts fails the test."""
    def train_run(*args, **kwargs):
        raise AssertionError("training started before the destinations were checked")
    monkeypatch.setattr("bench.runner.train_run", train_run)


@pytest.mark.parametrize("args, fragment", [
    (["--save-weights", "{tmp}/a-file"], "a-file is a file, not a folder"),
    (["--save-weights", "{tmp}/a-file/sub"], "has a file on its way"),
    (["--mllog", "/proc/bench.log"], "--mllog /proc/bench.log: cannot write in /proc"),
    (["--runs", "2", "--mllog", "/proc/bench.log"], ": cannot write in /proc"),
    (["--mllog", "{tmp}/a-file/run.log"], "is not a folder"),
    (["--mllog", "{tmp}"], "is a folder; give a file name"),
])
def test_run_destinations_are_refused_before_training(capsys, results, tmp_path, no_training, args, fragment):
    (tmp_path / "a-file").write_text("mine")
    argv = [a.format(tmp=tmp_path) for a in args]
    code, _, err = run_cli(capsys, "run", "fashion-mnist-smoke", "--device", "cpu", "--results", str(results), *argv)
    assert_one_line_error(code, err, results, fragment)
    assert (tmp_path / "a-file").read_text() == "mine"


def test_results_on_a_place_that_takes_no_files_is_refused_before_training(capsys, results, no_training):
    # /proc refuses new files whatever the user (tests run as root, where permission bits stop nothing)
    code, _, err = run_cli(capsys, "run", "fashion-mnist-smoke", "--device", "cpu", "--results", "/proc/bench-results")
    assert_one_line_error(code, err, results, "results folder /proc/bench-results is not writable")


def test_results_on_a_read_only_mount_is_refused_before_training(capsys, results, tmp_path, no_training):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(read_only)], capture_output=True).returncode:
        pytest.skip("mounting a read-only tmpfs needs privileges this machine does not give")
    try:
        code, _, err = run_cli(capsys, "run", "fashion-mnist-smoke", "--device", "cpu", "--results", str(read_only))
    finally:
        subprocess.run(["umount", str(read_only)], check=True)
    assert_one_line_error(code, err, results, "Read-only file system")


@pytest.mark.parametrize("out, fragment", [
    ("results/x.csv", "is inside the result folder"),            # relative: resolved before it is compared
    ("results/runs/../x.csv", "is inside the result folder"),
    ("/proc/x.csv", "--out /proc/x.csv: cannot write in /proc"),
])
def test_export_destinations_are_refused(capsys, results, tmp_path, monkeypatch, out, fragment):
    monkeypatch.chdir(tmp_path)
    (results / "runs").mkdir()
    code, _, err = run_cli(capsys, "export", "--results", "results", "--format", "csv", "--out", out)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert sorted(os.listdir(results)) == ["earlier.json", "runs"] and not os.listdir(results / "runs")


def test_bracketed_words_in_messages_and_paths_are_printed_verbatim(capsys, results, tmp_path, suite_path):
    missing = tmp_path / "runs[1]" / "data[dataset]"
    text = suite_text().replace('name = "fashion-mnist"', f'name = "fashion-mnist"\npath = "{missing}"')
    code, _, err = run_cli(capsys, "run", suite_path(text), "--device", "cpu", "--results", str(results))
    assert_one_line_error(code, err, results, f"dataset path {missing} does not exist")
    assert "check the path in the suite's [dataset] table" in err and "runs[1]/data[dataset]" in err


def test_shuffled_bptt_windows_that_skip_steps_are_refused(capsys, results, suite_path):
    text = suite_text(model="lstm", model_args="args = { hidden = 16 }").replace(
        "[recipe]\n", '[recipe]\nbptt = { mode = "shuffled", length = 2, step = 4 }\n')
    code, _, err = run_cli(capsys, "run", suite_path(text), "--device", "cpu", "--results", str(results))
    assert_one_line_error(code, err, results, "shuffled windows would skip steps; make step <= length")


def test_an_unexpected_error_keeps_its_traceback_and_exits_3_not_the_verdicts_1(capsys, monkeypatch):
    # exit 1 means a verdict FAILed (or a regression): a CI step must not read a crash as one
    def broken(args, console):
        raise ZeroDivisionError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "env", broken)
    code, _, err = run_cli(capsys, "env")
    assert code == 3
    assert "Traceback" in err and "ZeroDivisionError: a bug" in err and "an unexpected ZeroDivisionError" in err


def test_a_ctrl_c_while_the_parser_is_set_up_is_one_line_and_130(capsys, monkeypatch):
    # the parser's set-up imports torch (seconds): a Ctrl-C there printed a KeyboardInterrupt traceback
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_parser", interrupted)
    code, _, err = run_cli(capsys, "list")
    assert code == 130 and err.strip() == "interrupted" and "Traceback" not in err


def test_importing_the_command_line_imports_no_torch():
    # the `bench` script imports bench.cli before main() can catch a Ctrl-C: that import must be quick
    done = subprocess.run([sys.executable, "-c", "import sys, bench.cli; print('torch' in sys.modules)"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


def test_a_nan_in_a_result_file_is_refused_not_averaged(capsys, results, tmp_path):
    # Python's json reads NaN (not JSON); the schema's number type took it, and every median with it
    committed = sorted((Path(__file__).resolve().parent.parent / "results" / "runs").glob("*.json"))[0]
    text = committed.read_text()
    record = json.loads(text)
    accuracy = json.dumps(record["runs"][0]["accuracy"])
    bad = tmp_path / "nan.json"
    bad.write_text(text.replace(f'"accuracy": {accuracy}', '"accuracy": NaN', 1))
    assert "NaN" in bad.read_text()
    code, _, err = run_cli(capsys, "check", str(bad))
    assert_one_line_error(code, err, results, "NaN is not JSON")
