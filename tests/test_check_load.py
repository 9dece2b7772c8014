"""bench check on a busy machine (issue 38): a time is judged only on runs measured under low
load, or on paired ratios where the two sides took turns; otherwise it is inconclusive (exit 5,
the load named), while an accuracy regression is still judged. --rerun pools the candidate's
reruns. The records are the committed CI baseline and edited copies of it (the rule is under
test here, not the timing: tests/test_reports.py proves the gate on genuine interleaved runs)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from bench.errors import EXIT_INCONCLUSIVE
from bench.record.schema import migrate
from bench.record.stats import aggregate
from bench.reports import check
from bench.reports.check_load import Side, interleaved, time_basis
from tests.test_reports import namespace, quiet

BASELINE = next((Path(__file__).parent.parent / "results" / "baselines").glob("*.json"))


def baseline() -> dict:
    return migrate(json.loads(BASELINE.read_text()))


def candidate(base: dict, suffix: str, *, scale: float = 1.0, shares=None, accuracy_shift: float = 0.0,
              start_offset_s: float = 86400.0) -> dict:
    """A copy of `base` with each run's times scaled, its load set (None: no load key) and its
    clock moved (a day later by default: not interleaved with the baseline)."""
    record = copy.deepcopy(base)
    record["id"] += suffix
    for i, run in enumerate(record["runs"]):
        for key in ("time_to_target_s", "timed_s", "first_reached_s"):
            if run.get(key) is not None:
                run[key] *= scale
        run["clock_start_unix_s"] += start_offset_s
        run["accuracy"] += accuracy_shift
        if shares is not None:
            run["load"] = {"competing_cpu_share": shares[i], "high": shares[i] > 0.2}
    fresh = aggregate(record["runs"], record["aggregate"]["target"], record["aggregate"].get("pass_rule", "mean"))
    record["aggregate"].update({k: v for k, v in fresh.items() if k in record["aggregate"]})
    return record


def gate(tmp_path, base: dict, cand: dict, *extra: str) -> tuple[int, check.PairReport]:
    (tmp_path / "b").mkdir(exist_ok=True)
    (tmp_path / "c").mkdir(exist_ok=True)
    b, c = tmp_path / "b" / "base.json", tmp_path / "c" / "cand.json"
    b.write_text(json.dumps(base))
    c.write_text(json.dumps(cand))
    args = namespace(check, [str(b), str(c), *extra])
    code = check.command(args, quiet())
    [report] = check.run_check(args, quiet())
    return code, report


QUIET, BUSY = [0.05] * 5, [0.45, 0.5, 0.6, 0.45, 0.55]


def test_a_candidate_measured_under_high_load_is_inconclusive_not_a_regression(tmp_path):
    """issue 38: a smoke run beside other work read +658%, REGRESSION, exit 1."""
    code, report = gate(tmp_path, baseline(), candidate(baseline(), "-busy", scale=7.5, shares=BUSY))
    finding = report.finding("median time to target")
    assert code == EXIT_INCONCLUSIVE == 5 and finding.result == check.INCONCLUSIVE and not report.regressions
    assert "candidate: every timed run under high load (5 runs, 45%–60% CPU elsewhere (5 above 20%))" in finding.allowed


def test_an_accuracy_regression_under_load_is_still_judged(tmp_path):
    code, report = gate(tmp_path, baseline(), candidate(baseline(), "-worse", shares=BUSY, accuracy_shift=-0.05))
    assert code == 1 and [f.check for f in report.regressions] == ["mean accuracy"]
    assert report.finding("median time to target").result == check.INCONCLUSIVE


def test_a_quiet_candidate_against_a_baseline_without_load_is_judged(tmp_path):
    """The committed baseline predates the load key: its runs count as quiet, and the table says so."""
    code, report = gate(tmp_path, baseline(), candidate(baseline(), "-slow", scale=1.3, shares=QUIET))
    finding = report.finding("median time to target")
    assert code == 1 and finding.result == check.REGRESSION and finding.value == pytest.approx(0.3)
    assert "baseline: load of 5 runs not measured, taken as quiet" in finding.allowed
    code, _ = gate(tmp_path, baseline(), candidate(baseline(), "-same", shares=QUIET))
    assert code == 0


def test_only_the_quiet_runs_of_a_partly_loaded_candidate_count(tmp_path):
    shares = [0.05, 0.9, 0.05, 0.9, 0.05]  # runs 1 and 3 ran beside something
    cand = candidate(baseline(), "-mixed", shares=shares)
    for i in (1, 3):
        cand["runs"][i]["time_to_target_s"] *= 8  # and were slowed by it
    code, report = gate(tmp_path, baseline(), cand)
    finding = report.finding("median time to target")
    assert code == 0 and abs(finding.value) < 0.1, finding
    assert "candidate: 2 of 5 runs left out, under high load" in finding.allowed


def test_interleaved_runs_are_paired_whatever_the_load(tmp_path):
    base = baseline()
    slow = candidate(base, "-slow", scale=1.3, shares=BUSY, start_offset_s=0.0)
    t0 = base["runs"][0]["clock_start_unix_s"]
    for i, (a, b) in enumerate(zip(base["runs"], slow["runs"])):  # took turns: base, candidate, base, ...
        a["load"] = {"competing_cpu_share": 0.5, "high": True}
        a["clock_start_unix_s"], b["clock_start_unix_s"] = t0 + 3 * i, t0 + 3 * i + 1.5
    sides = Side.from_records("baseline", [base]), Side.from_records("candidate", [slow])
    assert interleaved(*sides) and time_basis(*sides).how == "paired"
    code, report = gate(tmp_path, base, slow)
    finding = report.finding("median time to target")
    assert code == 1 and finding.value == pytest.approx(0.3) and "paired in time order" in finding.allowed
    # the same runs at the same moments (a copied file) did not take turns: not paired
    copy_sides = Side.from_records("baseline", [base]), Side.from_records("candidate", [base])
    assert not interleaved(*copy_sides)


def test_rerun_pools_the_candidates_reruns_until_the_time_is_judged(tmp_path, monkeypatch):
    """bench check --rerun N: `bench run` of the candidate's suite (the command is shown), into the
    candidate's folder; here a stand-in writes a quiet rerun where bench run would."""
    base, busy = baseline(), candidate(baseline(), "-busy", scale=3.0, shares=BUSY)
    commands = []

    def bench_run(argv, **kwargs):
        commands.append(argv)
        folder = Path(argv[argv.index("--results") + 1])
        rerun = candidate(baseline(), f"-rerun{len(commands)}", scale=1.02, shares=QUIET,
                          start_offset_s=2 * 86400.0)
        (folder / f"{rerun['id']}.json").write_text(json.dumps(rerun))
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(check.subprocess, "run", bench_run)
    code, report = gate(tmp_path, base, busy, "--rerun", "2")
    assert len(commands) == 2  # one in command(), one in run_check() (each judges from scratch)
    argv = commands[0]
    assert argv[2:5] == ["bench", "run", "fashion-mnist-smoke"] or argv[4].endswith("fashion-mnist-smoke.toml")
    assert argv[argv.index("--runs") + 1] == "5" and argv[argv.index("--seed") + 1] == "0"
    assert argv[argv.index("--device") + 1] == "cpu" and argv[argv.index("--results") + 1] == str(tmp_path / "c")
    assert code == 0 and report.finding("median time to target").result == check.OK
    assert "candidate: 5 of 10 runs left out, under high load" in report.finding("median time to target").allowed


def test_without_rerun_the_busy_candidate_stays_inconclusive(tmp_path, monkeypatch):
    monkeypatch.setattr(check.subprocess, "run", lambda *a, **k: pytest.fail("rerun without --rerun"))
    code, _ = gate(tmp_path, baseline(), candidate(baseline(), "-busy", shares=BUSY))
    assert code == 5


def test_a_negative_rerun_is_one_line_exit_2(tmp_path):
    from bench.errors import BenchError

    path = tmp_path / "base.json"
    path.write_text(json.dumps(baseline()))
    with pytest.raises(BenchError, match=r"--rerun -1: give a number of reruns >= 0") as error:
        check.command(namespace(check, [str(path), str(path), "--rerun", "-1"]), quiet())
    assert error.value.exit_code == 2
