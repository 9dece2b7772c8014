"""Careless and hostile input against the newest features (issue 41): each case ends in one
line naming the culprit and exit 2 before any work, or as the outcome it is (a divergence);
never a traceback, a hang or a silent wrong result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from tests.helpers import separable_dataset, suite_text

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def suite(tmp_path, monkeypatch):
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())
    path = tmp_path / "tiny.toml"
    path.write_text(suite_text(epochs=1))
    return path


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_an_enormous_rate_diverges(suite, tmp_path, capsys, optimizer):
    """lr = 1e308 is past what torch's optimizers take (an overflow traceback, recorded as
    failed): the rate in force stops at the ceiling, and the weights' overflow is a divergence."""
    results = tmp_path / "results"
    code = main(["run", str(suite), "--runs", "1", "--device", "cpu", "--results", str(results),
                 "--set", "recipe.lr=1e308", "--set", "recipe.weight_decay=1e308",
                 "--set", f'recipe.optimizer="{optimizer}"'])
    out, err = capsys.readouterr()
    assert code == 3 and "Traceback" not in err, out + err
    [path] = results.iterdir()
    record = json.loads(path.read_text())
    assert record["status"] == "diverged" and [run["status"] for run in record["runs"]] == ["diverged"]
    assert record["suite"]["resolved"]["recipe"]["lr"] == 1e308  # the record keeps what was asked


# ---------------------------------------------------------------- result files a reader meets ----

REPO = Path(__file__).resolve().parent.parent
BASELINE = sorted((REPO / "results" / "baselines").glob("*.json"))[0]


def results_with(tmp_path, edit) -> Path:
    """A results folder holding the committed baseline and an edited copy (text in, text out)."""
    folder = tmp_path / "res" / "runs"
    folder.mkdir(parents=True)
    text = BASELINE.read_text()
    (folder / "good.json").write_text(text)
    record = json.loads(text)
    record["id"] = "edited"
    (folder / "edited.json").write_text(edit(json.dumps(record, indent=1)))
    return folder.parent


HOSTILE = {
    "impossible date": lambda t: t.replace(json.loads(t)["started_at"], "2026-13-45T99:99:99Z"),
    "400-digit integer": lambda t: t.replace('"runs": 5', '"runs": ' + "9" * 400, 1),
    "1e999": lambda t: t.replace(f'"median_time_s": {json.loads(t)["aggregate"]["median_time_s"]}',
                                 '"median_time_s": 1e999'),
    "complete with no runs": lambda t: json.dumps({**json.loads(t), "runs": []}),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_readers_skip_an_impossible_result_with_a_notice(tmp_path, capsys, case):
    results = results_with(tmp_path, HOSTILE[case])
    assert (results / "runs" / "edited.json").read_text() != (results / "runs" / "good.json").read_text()
    for command in (["leaderboard", "--results", str(results), "--out", str(tmp_path / "lb")],
                    ["export", "--results", str(results), "--out", str(tmp_path / "runs.csv")]):
        code = main(command)
        out, err = capsys.readouterr()
        assert code == 0 and "Traceback" not in err, out + err
        flat = (out + err).replace("\n", "")  # rich wraps long paths
        assert "skipped" in flat and "edited.json" in flat, out + err
    rows = (tmp_path / "runs.csv").read_text().splitlines()
    assert len(rows) == 1 + len(json.loads(BASELINE.read_text())["runs"])  # the good file's runs only


@pytest.mark.parametrize("case", HOSTILE)
def test_check_refuses_an_impossible_candidate(tmp_path, capsys, case):
    """`bench check` trusted a complete candidate's stored summary over its empty list of runs
    ('no regression'), and took a 400-digit integer."""
    results = results_with(tmp_path, HOSTILE[case])
    code = main(["check", str(BASELINE), str(results / "runs" / "edited.json")])
    out, err = capsys.readouterr()
    assert code == 2 and "edited.json" in one_error_line(err), out + err


def test_a_symlink_loop_in_the_results_folder_is_skipped(tmp_path, capsys):
    results = results_with(tmp_path, lambda t: t)
    (results / "runs" / "loop.json").symlink_to("loop.json")
    (results / "runs" / "up.json").symlink_to("..")
    for command in (["leaderboard", "--results", str(results), "--out", str(tmp_path / "lb")],
                    ["export", "--results", str(results), "--out", str(tmp_path / "runs.csv")]):
        code = main(command)
        out, err = capsys.readouterr()
        assert code == 0 and "Traceback" not in err and "loop.json" in (out + err).replace("\n", ""), out + err


def test_a_tiny_fraction_rule_still_needs_a_run_at_target():
    """fraction:1e-13 fell inside the fixed 1e-12 tolerance: no run at target was a PASS."""
    from bench.record.stats import rule_holds

    assert not rule_holds("fraction:0.0000000000001", 0.5, 0.0, 0.9)
    assert not rule_holds("fraction:0.0000001", 0.5, 0.0, 0.9)
    assert rule_holds("fraction:0.6", 0.9, 3 / 5, 0.9) and rule_holds("fraction:0.7", 0.9, 7 / 10, 0.9)


# ---------------------------------------------------------------- arguments blamed wrongly ----

@pytest.mark.parametrize("args, culprit", [
    (["run", "{suite}", "--runs", "auto", "--max-runs", "5000000000"], "--max-runs 5000000000"),
    (["run", "{suite}", "--runs", "20000"], "--runs 20000"),
    (["calibrate", "{suite}", "--runs", "1000000000000"], "--runs 1000000000000"),
    (["run", "{suite}", "--dist-timeout", "-5", "--nproc-per-node", "2"], "--dist-timeout"),
    (["run", "{suite}", "--rdzv-timeout", "nan", "--nproc-per-node", "2"], "--rdzv-timeout"),
])
def test_an_argument_out_of_range_is_blamed_itself(suite, capsys, args, culprit):
    """A huge run count was refused by blaming --seed / --seed-base (the seeds it needs leave the
    range); a negative timeout reached torch's sockets (41 lines of C++ errors)."""
    try:  # the results go to tmp_path should a refusal be missed (the launcher would train)
        code = main([a.format(suite=suite) for a in args] + ["--results" if args[0] == "run" else "--out",
                                                            str(suite.parent / "out")])
    except SystemExit as exit:  # argparse's refusal
        code = exit.code
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert code == 2 and culprit in line and "seed" not in line, out + err


# ---------------------------------------------------------------- TOML dates and times ----

@pytest.mark.parametrize("where, text", [
    ("axes", '[axes]\n"recipe.lr" = [0.1, 1979-05-27]\n'),
    ("exclude", '[axes]\n"recipe.lr" = [0.1, 0.2]\n[[exclude]]\n"recipe.lr" = [1979-05-27T07:32:00Z]\n'),
    ("set", '[set]\n"model.args" = { since = 07:32:00 }\n[axes]\n"recipe.lr" = [0.1, 0.2]\n'),
    ("description", 'description = 1979-05-27\n[axes]\n"recipe.lr" = [0.1, 0.2]\n'),
])
def test_a_toml_date_in_a_study_is_one_line_and_list_goes_on(tmp_path, monkeypatch, capsys, where, text):
    """A date as an axis value, an exclude, anywhere: 'Object of type date is not JSON
    serializable', and one such file broke `bench list` for every study."""
    from tests.helpers import STUDY_BASE

    studies = tmp_path / "suites" / "studies"
    studies.mkdir(parents=True)
    (studies / "base.toml").write_text(STUDY_BASE)
    (studies / "dated.toml").write_text('name = "dated"\nsuite = "base.toml"\nseeds = [0]\n' + text)
    monkeypatch.setenv("BENCH_SUITES", str(tmp_path / "suites"))
    code = main(["sweep", str(studies / "dated.toml"), "--dry-run"])
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert code == 2 and "dated.toml" in line and "TOML date/time" in line, out + err
    code = main(["list"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, out + err
    assert "dated" in out and "fmnist-optimizers" in out  # the bad study is listed as invalid, the others as ever


@pytest.mark.parametrize("edit", [
    lambda t: t.replace("args = { hidden = [32] }", "args = { hidden = [32, 1979-05-27] }"),
    lambda t: t + "[recipe.schedule]\nkind = \"step\"\nmilestones = [1979-05-27]\n",
    lambda t: t.replace('devices = ["cpu"]', 'devices = ["cpu", 07:32:00]'),
])
def test_a_toml_date_in_a_suite_is_one_line(tmp_path, capsys, edit):
    """Suites refused these before (by the model's build, a list's check), each its own way; now
    one check, where the file is read, names the key and says what to write instead."""
    path = tmp_path / "dated.toml"
    path.write_text(edit(suite_text()))
    code = main(["run", str(path), "--results", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert code == 2 and "dated.toml" in line and "TOML date/time" in line, out + err


# ---------------------------------------------------------------- sizes ----

def test_an_evaluation_batch_past_the_test_set_is_capped(suite, tmp_path, capsys):
    """eval_batch_size = 10^9 asked the allocator for it all (313 GB) for the padded last batch."""
    results = tmp_path / "results"
    code = main(["run", str(suite), "--runs", "1", "--device", "cpu", "--results", str(results),
                 "--set", "recipe.eval_batch_size=1000000000"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, out + err
    [path] = results.iterdir()
    [run] = json.loads(path.read_text())["runs"]
    assert run["status"] == "complete" and run["eval_batch_size"] == len(separable_dataset().test_labels)


LONG = "a" * 300


@pytest.mark.parametrize("args, culprit", [
    (["run", "{long_suite}"], "'name'"),
    (["calibrate", "{long_suite}", "--runs", "2", "--out", "{tmp}/cal"], "'name'"),  # before it trains
    (["run", "{suite}", "--results", "{tmp}/" + "b/" * 2600], "--results"),
    (["run", "{suite}", "--mllog", "{tmp}/" + LONG], "--mllog"),
    (["run", "{suite}", "--set", 'model.init="{tmp}/' + LONG + '"'], "model.init"),
    (["run", "{suite}", "--set", 'description="' + "x" * 20_000 + '"'], "'description' is a string of 20,000"),
    (["sweep", "{long_study}", "--dry-run"], "'name'"),
])
def test_names_and_paths_past_the_file_system_are_one_line_before_work(suite, tmp_path, monkeypatch, capsys,
                                                                        args, culprit):
    """A 300-character name or a 5,000-character path was 'OSError: File name too long' after
    the work (a long suite name made calibration train first); a 20,000-character description
    was copied into every result file."""
    long_suite = tmp_path / "long.toml"
    long_suite.write_text(suite.read_text().replace('name = "tiny"', f'name = "{LONG}"'))
    from tests.helpers import STUDY, STUDY_BASE
    (tmp_path / "base.toml").write_text(STUDY_BASE)
    long_study = tmp_path / "study.toml"
    long_study.write_text(STUDY.replace('name = "syn-report"', f'name = "{LONG}"'))
    trained = []
    monkeypatch.setattr("bench.runner.train_run", lambda *a, **k: trained.append(1) or pytest.fail("trained"))
    filled = [a.format(suite=suite, long_suite=long_suite, long_study=long_study, tmp=tmp_path) for a in args]
    if args[0] == "run" and "--results" not in args:
        filled += ["--results", str(tmp_path / "out")]
    try:
        code = main(filled)
    except SystemExit as exit:  # argparse's refusal
        code = exit.code
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert code == 2 and culprit in line and len(line) < 400 and not trained, out + err


# ---------------------------------------------------------------- the policy cache ----

@pytest.mark.parametrize("choice", [
    {"channels_last": False, "compile": "off", "eval_batch_size": 256},  # no precision
    {"precision": "fp32", "channels_last": False, "compile": "turbo", "eval_batch_size": 256},
    {"precision": "fp32", "channels_last": "yes", "compile": "off", "eval_batch_size": 256},
    {"precision": "fp32", "channels_last": False, "compile": "off", "eval_batch_size": -1},
    "fp32",
])
def test_a_cache_entry_that_is_no_whole_choice_is_a_miss(choice):
    """A miss re-measures; the entry was taken as it stood (KeyError: 'precision', or an unknown
    compile mode handed to torch.compile)."""
    from bench.train import policy_cache

    whole = {"precision": "fp32", "channels_last": False, "compile": "off", "eval_batch_size": 256}
    policy_cache.folder().mkdir(parents=True, exist_ok=True)
    policy_cache.path().write_text(json.dumps({"broken": {"choice": choice}, "whole": {"choice": whole}}))
    assert policy_cache.load("broken") is None
    assert policy_cache.load("whole") == {"choice": whole}


# ---------------------------------------------------------------- studies ----

@pytest.mark.parametrize("flags", [["--dry-run"], ["--report-only"]])
def test_a_study_named_as_a_shipped_one_is_refused(tmp_path, capsys, flags):
    """Both sweep into results/studies/<name>: the copy rewrote the shipped study's REPORT.md and
    report.html (exit 0)."""
    shipped = REPO / "suites" / "studies" / "fmnist-mlp-lr.toml"
    copy = tmp_path / "mine.toml"
    copy.write_text(shipped.read_text().replace('name = "fmnist-mlp-lr"', 'name = "fmnist-optimizers"'))
    results = tmp_path / "results"
    report = results / "studies" / "fmnist-optimizers" / "REPORT.md"
    report.parent.mkdir(parents=True)
    report.write_text("the shipped study's report")
    code = main(["sweep", str(copy), "--results", str(results), *flags])
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert code == 2 and "fmnist-optimizers.toml" in line and "mine.toml" in line, out + err
    assert report.read_text() == "the shipped study's report"


@pytest.mark.parametrize("option, value", [
    ("--partition", "gpu\n#SBATCH --mem=1T"),
    ("--partition", "gpu --mem=1T"),
    ("--results", "{tmp}/res\n#SBATCH --mem=1T"),
])
def test_slurm_options_cannot_write_lines_into_the_job_script(tmp_path, capsys, option, value):
    """A newline in --partition wrote an #SBATCH line of the user's choosing (an injection)."""
    args = ["sweep", "fmnist-mlp-lr", "--executor", "slurm", "--dry-run", option, value.format(tmp=tmp_path)]
    if option != "--results":
        args += ["--results", str(tmp_path / "res")]
    code = main(args)
    out, err = capsys.readouterr()
    line = one_error_line(err)
    assert code == 2 and option in line and "#SBATCH --mem" not in out, out + err


# ---------------------------------------------------------------- writing: a full disk, the umask ----

def a_full_disk(monkeypatch):
    import errno
    import os

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr("bench.record.files.os.fsync", full)


def test_a_full_disk_under_the_leaderboard_is_one_line_and_keeps_the_old_page(tmp_path, capsys, monkeypatch):
    results = results_with(tmp_path, lambda t: t)
    (tmp_path / "lb").mkdir()
    (tmp_path / "lb" / "LEADERBOARD.md").write_text("the earlier page")
    a_full_disk(monkeypatch)
    code = main(["leaderboard", "--results", str(results), "--out", str(tmp_path / "lb")])
    out, err = capsys.readouterr()
    assert code == 3 and "No space left on device" in one_error_line(err), out + err
    assert (tmp_path / "lb" / "LEADERBOARD.md").read_text() == "the earlier page"
    assert not [p for p in (tmp_path / "lb").iterdir() if p.name.startswith(".tmp")]


def test_a_full_disk_under_specs_is_one_line_and_the_figures_are_printed(tmp_path, capsys, monkeypatch):
    from bench.specs.files import read_spec_report

    measured = read_spec_report(sorted((REPO / "results" / "specs").glob("*.json"))[0])
    monkeypatch.setattr("bench.specs.command.run_specs", lambda *a, **k: measured)  # minutes of measuring
    a_full_disk(monkeypatch)
    code = main(["specs", "--out", str(tmp_path / "specs"), "--format", "csv"])
    out, err = capsys.readouterr()
    assert code == 3 and "No space left on device" in one_error_line(err), out + err
    assert measured.rows[0].name in out  # the measurements, printed, are not lost with the files
    assert not list((tmp_path / "specs").iterdir())


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_result_files_respect_the_umask(tmp_path, umask, mode):
    """They were 0600 (mkstemp's) under any umask: nobody else on a shared cluster could read them."""
    import os
    import stat

    from bench.record.files import ResultWriter

    record = json.loads((REPO / "results" / "runs" / "20261203T202537-vm-6eab.json").read_text())
    before = os.umask(umask)
    try:
        path = ResultWriter(tmp_path / "runs").write(record)
    finally:
        os.umask(before)
    assert stat.S_IMODE(path.stat().st_mode) == mode
