"""Targets with a source (issue 19, item 2): `bench calibrate` writes a calibration from seeds the
verdicts never use, `bench run` refuses to judge those seeds, every shipped suite names where its
target comes from, and `bench list` and the leaderboard show it."""

import json
import os

import numpy as np
import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.record.calibration import (implied_target, problem, read_calibration, record_source_text, source_text,
                                      target_kind, target_problem,
                                      repository_root)
from bench.suites import SUITES_DIR, available_suites, load_suite
from tests.helpers import separable_dataset, suite_text

# Shipped suites without a source yet, each with why (the test below fails once one gets a source,
# so the list can only shrink). `bench list` and the leaderboard say "no source" for them.
NO_SOURCE_YET = {
    # fitted to its judged seeds 0 and 1 (0.9078, 0.9063); 7-28 minutes a run on the 2-core CPU
    "cifar10-jpeg-airbench": "calibrate on a GPU",
    # a guess (the dense recipe's 94% less about 3 points for JPEG), never measured
    "cifar10-jpeg-resnet9-sparse": "calibrate on a GPU",
}


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def synthetic(monkeypatch):
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())


@pytest.fixture
def calibrated(tmp_path, capsys, synthetic):
    """A synthetic suite, calibrated on 3 seeds from 1000, then citing the file (relative to its folder,
    which is in no git checkout, so that is its repository root)."""
    suite = tmp_path / "tiny.toml"
    suite.write_text(suite_text(epochs=1))
    code, out, _ = run_cli(capsys, "calibrate", suite, "--runs", 3, "--device", "cpu", "--quantile", 0.5,
                           "--out", tmp_path / "results" / "calibration")
    assert code == 0, out
    (written,) = (tmp_path / "results" / "calibration").glob("tiny-*.json")
    data = json.loads(written.read_text())
    # top-level keys go first: the suite text ends inside [recipe.augment]
    suite.write_text(f'target_source = "calibration:results/calibration/{written.name}"\n'
                     + suite_text(epochs=1, target=data["target"]))
    return suite, written, data, out


def test_calibrate_writes_seeds_accuracies_rule_and_target(calibrated):
    suite, written, data, out = calibrated
    assert problem(data) is None
    assert data["seeds"] == [1000, 1001, 1002]
    assert [run["seed"] for run in data["runs"]] == data["seeds"]
    assert len(data["accuracies"]) == 3 and data["accuracies"] == [run["accuracy"] for run in data["runs"]]
    statistic = float(np.quantile(data["accuracies"], 0.5))
    assert data["rule"]["kind"] == "quantile" and data["rule"]["statistic"] == pytest.approx(statistic)
    assert statistic - 0.001 < data["target"] <= statistic + 1e-12
    assert data["suite"]["name"] == "tiny" and len(data["suite"]["hash"]) == 16
    assert data["env"]["hostname"] and data["device"] == "cpu" and data["code"]["version"]
    assert written.name == f"tiny-{data['id']}.json"
    assert f"target {data['target']:g}" in out and f"calibration:results/calibration/{written.name}" in out
    assert not [p for p in written.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_run_refuses_a_calibration_seed_before_training(calibrated, capsys, tmp_path, monkeypatch):
    suite, _, data, _ = calibrated

    def no_training(*args, **kwargs):
        raise AssertionError("training started before the seeds were checked")

    monkeypatch.setattr("bench.runner.train_run", no_training)
    results = tmp_path / "runs"
    code, _, err = run_cli(capsys, "run", suite, "--seed", 1001, "--runs", 1, "--device", "cpu", "--results", results)
    line = one_error_line(err)
    assert code == 2 and "seed 1001" in line and "1000–1002" in line
    assert not results.exists() or not list(results.iterdir())
    # a range that only ends inside the calibration's is refused too
    code, _, err = run_cli(capsys, "run", suite, "--seed", 998, "--runs", 3, "--device", "cpu", "--results", results)
    assert code == 2 and "seed 1000" in one_error_line(err)


def test_run_outside_the_calibration_records_it(calibrated, capsys, tmp_path):
    suite, written, data, _ = calibrated
    results = tmp_path / "runs"
    code, _, _ = run_cli(capsys, "run", suite, "--runs", 1, "--device", "cpu", "--results", results)
    assert code in (0, 1)
    (path,) = results.glob("*.json")
    record = json.loads(path.read_text())
    facts = record["invocation"]["calibration"]
    assert facts["seeds"] == data["seeds"] and facts["target"] == data["target"] and facts["id"] == data["id"]
    assert facts["file"] == f"results/calibration/{written.name}"
    assert record["suite"]["resolved"]["target_source"].startswith("calibration:")
    assert written.name in record_source_text(record) and "0.5-quantile" in record_source_text(record)
    # the leaderboard says where the target came from
    code, out, _ = run_cli(capsys, "leaderboard", "--results", results, "--out", tmp_path / "board")
    assert code == 0
    assert f"target source: calibration {written.name}" in (tmp_path / "board" / "LEADERBOARD.md").read_text()


@pytest.mark.parametrize("content, fragment", [
    ("{not json", "is not JSON"),
    ('{"kind": "bench-calibration", "format": 1, "seeds": [], "accuracies": [], "target": 0.5}', "'seeds'"),
    ('{"kind": "bench-calibration", "format": 1, "seeds": [1000], "accuracies": [1.5], "target": 0.5}',
     "'accuracies'"),
    ('{"kind": "something else"}', "is not a calibration file"),
])
def test_a_missing_or_invalid_calibration_is_one_line(tmp_path, capsys, content, fragment):
    if content is not None:
        (tmp_path / "cal.json").write_text(content)
    suite = tmp_path / "s.toml"
    suite.write_text('target_source = "calibration:cal.json"\n' + suite_text())
    code, _, err = run_cli(capsys, "run", suite, "--device", "cpu", "--results", tmp_path / "runs")
    line = one_error_line(err)
    assert code == 2 and str(suite) in line and "'target_source'" in line and fragment in line


def test_a_copied_suite_runs_its_target_unsourced(tmp_path, capsys, synthetic):
    """A shipped suite copied out of the repository (and renamed) cites a calibration path that is
    not beside the copy: the copy runs, a notice says its target is unsourced, the result records
    no calibration, and `bench list` says 'no source' (it was one line, exit 2)."""
    text = (SUITES_DIR / "fashion-mnist-smoke.toml").read_text().replace('"fashion-mnist-smoke"', '"my-smoke"')
    copy = tmp_path / "my.toml"
    copy.write_text(text)
    code, _, err = run_cli(capsys, "run", copy, "--runs", 1, "--device", "cpu", "--results", tmp_path / "runs")
    assert code in (0, 1), err
    said = " ".join(err.split())  # the notice wraps with the console's width
    assert "my-smoke: target 0.824 is unsourced" in said and "does not exist" in said
    (result,) = (tmp_path / "runs").glob("*.json")
    record = json.loads(result.read_text())
    assert record["invocation"]["calibration"] is None
    assert record_source_text(record).startswith("no source: cites results/calibration/fashion-mnist-smoke-")
    code, out, _ = run_cli(capsys, "show", copy)
    assert code == 0 and "no source: it cites the calibration file" in " ".join(out.split())


def test_a_copy_citing_another_suites_calibration_is_unsourced(tmp_path, capsys):
    """A renamed copy whose citation resolves (an absolute path) still cites another suite's
    calibration: unsourced, not that suite's source. A sibling suite's (mlp-pruned citing mlp) counts."""
    text = (SUITES_DIR / "fashion-mnist-smoke.toml").read_text().replace('"fashion-mnist-smoke"', '"my-smoke"')
    cited = SUITES_DIR.parent / "results" / "calibration"
    (calibration,) = cited.glob("fashion-mnist-smoke-*.json")
    copy = tmp_path / "my.toml"
    copy.write_text(text.replace("calibration:results/calibration/", f"calibration:{cited}/"))
    suite = load_suite(str(copy))
    notices = []
    from bench.record.calibration import refuse_calibrated_seeds, source_text

    assert refuse_calibrated_seeds(suite, [0], notices.append) is None
    assert "calibrated suite 'fashion-mnist-smoke', not 'my-smoke'" in notices[0]
    assert source_text(suite).startswith("no source")
    assert read_calibration(load_suite("fashion-mnist-mlp-pruned"))["suite"]["name"] == "fashion-mnist-mlp"


@pytest.mark.parametrize("source", ["", "calibration:", "reference:  ", "Jordan 2024", "calibrated"])
def test_a_target_source_of_neither_kind_is_refused(tmp_path, source):
    suite = tmp_path / "s.toml"
    suite.write_text(f'target_source = "{source}"\n' + suite_text())
    with pytest.raises(BenchError, match="'target_source'.*reference: "):
        load_suite(str(suite))


@pytest.mark.parametrize("args, fragment", [
    (["--runs", 3, "--seed-base", 1], "must miss tiny's verdict seeds 0–1"),
    (["--runs", 1], "at least 2 runs"),
    (["--runs", 3, "--seed-base", 2**32 - 2], f"give --seed-base from 0 to {2**32 - 3}"),
    (["--runs", 3, "--seed-base", -5], "--seed-base -5: the seeds -5–-3 leave"),
    (["--runs", 3, "--quantile", 1.5], "--quantile 1.5"),
])
def test_calibrate_input_is_one_line_before_training(tmp_path, capsys, monkeypatch, args, fragment):
    monkeypatch.setattr("bench.runner.train_run", lambda *a, **k: pytest.fail("trained"))
    suite = tmp_path / "tiny.toml"
    suite.write_text(suite_text())
    code, _, err = run_cli(capsys, "calibrate", suite, "--out", tmp_path / "cal", *args)
    assert code == 2 and fragment in one_error_line(err)
    assert not (tmp_path / "cal").exists()


def test_implied_target_is_the_quantile_rounded_down():
    target, rule = implied_target([0.8755, 0.8753, 0.8732, 0.8801, 0.8790], 0.1)
    assert rule["statistic"] == pytest.approx(0.8732 + 0.4 * (0.8753 - 0.8732))
    assert target == 0.874
    assert implied_target([0.87, 0.88], 0.0)[0] == 0.87  # a statistic on the grid stays there


def test_paths_are_taken_from_the_suites_repository_root():
    assert repository_root(SUITES_DIR / "fashion-mnist-smoke.toml") == SUITES_DIR.parent


@pytest.mark.parametrize("name", sorted(available_suites()))
def test_every_shipped_suite_names_its_target_source(name, monkeypatch):
    monkeypatch.delenv("BENCH_SUITES", raising=False)
    path = available_suites()[name]
    if path.parent != SUITES_DIR:
        pytest.skip("not a shipped suite")
    suite = load_suite(str(path))
    if name in NO_SOURCE_YET:
        assert suite.target_source is None, f"{name} has a source now: drop it from NO_SOURCE_YET"
        return
    assert suite.target_source, f"{path}: add target_source (a reference, or bench calibrate's file)"
    calibration = read_calibration(suite)  # raises on a missing or invalid file
    if calibration is not None:
        # derived: the calibration's own target; a goal: at most what the calibration reaches
        assert target_problem(suite, calibration) is None, f"{name}: {target_problem(suite, calibration)}"
        assert not set(calibration["seeds"]) & set(range(suite.resolved["runs"])), "calibrated on verdict seeds"
        assert os.path.isfile(calibration["path"])


def test_a_target_is_derived_from_its_calibration_or_named_a_goal(tmp_path):
    # fashion-mnist-91's calibration gives 0.918 by its rule; its 0.91 is a goal with that evidence
    suite = load_suite("fashion-mnist-91")
    calibration = read_calibration(suite)
    assert target_kind(suite.target_source) == "goal" and calibration["target"] == pytest.approx(0.918)
    assert target_problem(suite, calibration) is None
    text = source_text(suite)
    assert text.startswith("goal: 91% top-1") and "-> 0.918" in text and "NOT AS STATED" not in text
    # the same 0.91 cited as derived from that calibration is not what the rule gives: said so
    from types import SimpleNamespace

    derived = SimpleNamespace(target=0.91, target_source="calibration:" + calibration["path"])
    assert target_problem(derived, calibration).startswith("the target 0.91 is not the calibration's 0.918")
    assert target_problem(SimpleNamespace(target=0.918, target_source=derived.target_source), calibration) is None
    above = SimpleNamespace(target=0.93, target_source=suite.target_source)
    assert "lies above what its evidence reaches (0.918)" in target_problem(above, calibration)


def test_list_shows_every_target_source(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # the sources whole: at 100 columns bench list cuts them
    code, out, _ = run_cli(capsys, "list")
    assert code == 0 and "target source" in out
    suites_part = out.split("studies (bench sweep)")[0]
    assert "invalid" not in suites_part
    assert "94.01%" in suites_part  # airbench94's published mean
    assert "0.1-quantile" in suites_part  # a calibrated suite's rule


def test_a_study_cell_keeps_its_identity_when_its_target_source_changes(tmp_path):
    """Citing a new calibration changes nothing a cell runs, so its results stay its own."""
    from bench.studies.study import identity_hash

    suite = tmp_path / "s.toml"
    suite.write_text(suite_text())
    plain = load_suite(str(suite)).resolved
    suite.write_text('target_source = "reference: a paper"\n' + suite_text())
    cited = load_suite(str(suite)).resolved
    assert cited["target_source"] and identity_hash(cited) == identity_hash(plain)
    assert identity_hash({**plain, "target": 0.5}) != identity_hash(plain)  # the target itself still counts


def test_a_calibration_out_that_takes_no_files_is_refused_before_training(tmp_path, capsys, monkeypatch):
    # it was checked only when the file was written, after minutes of runs
    monkeypatch.setattr("bench.runner.train_run", lambda *a, **k: pytest.fail("trained"))
    suite = tmp_path / "tiny.toml"
    suite.write_text(suite_text())
    taken = tmp_path / "taken"
    taken.write_text("mine")
    code, _, err = run_cli(capsys, "calibrate", suite, "--runs", 3, "--out", taken)
    assert code == 2 and f"--out {taken} is a file, not a folder" in one_error_line(err)
    assert taken.read_text() == "mine"


def test_a_calibration_whose_target_was_edited_is_refused(calibrated, capsys, tmp_path):
    """The target is recomputed from the file's accuracies by its rule: one edited by hand was
    trusted and recorded without a word."""
    suite, written, data, _ = calibrated
    written.write_text(json.dumps({**data, "target": round(data["target"] - 0.05, 6)}))
    code, _, err = run_cli(capsys, "run", suite, "--device", "cpu", "--seed", 0, "--results", tmp_path / "runs")
    line = one_error_line(err)
    assert code == 2 and written.name in line and "edited by hand" in line
    assert not list((tmp_path / "runs").glob("*.json"))  # refused before any run


def test_sigterm_during_calibrate_says_one_thing(tmp_path, capsys, monkeypatch, synthetic):
    """It said both 'no calibration file written' and 'finished runs kept' (the runs go with the
    calibration's scratch folder). The signal comes from inside the first run, so no timing."""
    import signal

    def terminated(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises at once, in this thread
        pytest.fail("SIGTERM was not taken")
    monkeypatch.setattr("bench.runner.train_run", terminated)
    suite = tmp_path / "tiny.toml"
    suite.write_text(suite_text())
    code, out, err = run_cli(capsys, "calibrate", suite, "--runs", 3, "--out", tmp_path / "cal")
    said = out + err
    assert code == 143 and "no calibration file written" in said and "runs kept" not in said, said
    assert not (tmp_path / "cal").exists() or not any((tmp_path / "cal").iterdir())


def test_a_disk_that_refuses_the_calibration_file_is_a_fault_not_bad_input(tmp_path, capsys, monkeypatch, synthetic):
    """After the training the disk is full: exit 3 (as for a result file), and the line keeps the
    figures the training produced; it was exit 2, bad input."""
    import errno

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    suite = tmp_path / "tiny.toml"
    suite.write_text(suite_text(epochs=1))
    real_write = __import__("bench.record.calibration", fromlist=["write_calibration"]).write_calibration

    def write_on_a_full_disk(*args, **kwargs):
        monkeypatch.setattr("bench.record.files.os.fsync", full)
        return real_write(*args, **kwargs)
    monkeypatch.setattr("bench.calibrate.write_calibration", write_on_a_full_disk)
    code, _, err = run_cli(capsys, "calibrate", suite, "--runs", 2, "--device", "cpu", "--out", tmp_path / "cal")
    [line] = [line for line in err.splitlines() if line.startswith("error:")]  # after the progress lines
    assert code == 3 and "Traceback" not in err and "No space left on device" in line and "target" in line and "accuracies" in line
    assert not [p for p in (tmp_path / "cal").iterdir() if not p.name.startswith(".probe")]


def test_a_tuned_suite_keeps_its_base_suites_calibration_wherever_it_lives(tmp_path):
    """bench tune writes `<base>-tuned.toml` under results/tune/, citing the base's calibration: the
    citation is deliberate (tuned_from.suite names the base), so its target keeps its source. It was
    refused as a copy's ('calibrated suite fashion-mnist-smoke, not fashion-mnist-smoke-tuned')."""
    base = load_suite("fashion-mnist-smoke")
    cited = (SUITES_DIR.parent / base.target_source.split(":", 1)[1]).resolve()
    text = (SUITES_DIR / "fashion-mnist-smoke.toml").read_text().replace(
        '"fashion-mnist-smoke"', '"fashion-mnist-smoke-tuned"', 1).replace(base.target_source, f"calibration:{cited}")
    tuned = tmp_path / "fashion-mnist-smoke-tuned.toml"
    tuned.write_text(text + '\n[tuned_from]\nsuite = "fashion-mnist-smoke"\n')
    assert read_calibration(load_suite(str(tuned)))["target"] == base.target
    tuned.write_text(text + '\n[tuned_from]\nsuite = "another-suite"\n')  # not its base: a copy's citation
    with pytest.raises(BenchError, match="calibrated suite 'fashion-mnist-smoke'"):
        read_calibration(load_suite(str(tuned)))
