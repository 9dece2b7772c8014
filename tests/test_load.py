"""The load a measurement met (bench.load) and what bench does with it (issue 38): the probe
counts this process tree as its own, a run records it, the summary warns, a policy trial made
beside a real CPU-bound competitor is not cached."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bench import load as load_module
from bench.load import HIGH_LOAD_SHARE, CompetingLoad, run_is_high
from bench.summary import load_text, policy_line, warnings

SPIN_UNTIL_CPU = """
import sys, time
while time.process_time() < {seconds}:
    pass
print("spun", flush=True)
sys.stdin.readline()
"""


def test_the_probe_counts_a_live_child_as_its_own():
    """A loader or compile worker is the run's own work, not a competitor's: a child that has
    spun 0.3 s of CPU (it says so, then waits) is in the tree's CPU time."""
    before = CompetingLoad._own_cpu_s()
    child = subprocess.Popen([sys.executable, "-c", SPIN_UNTIL_CPU.format(seconds=0.3)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "spun"
        assert CompetingLoad._own_cpu_s() - before >= 0.25  # clock ticks of 10 ms round it down
    finally:
        child.communicate("\n", timeout=60)
    assert CompetingLoad._own_cpu_s() - before >= 0.25  # and once waited on, through os.times


def test_the_share_is_the_busy_time_past_our_own(monkeypatch):
    readings = iter([(10.0, 1.0), (12.0, 2.0)])  # the machine busy 2 s more, of which 1 s ours
    current = {}

    def busy():
        current.update(zip(("busy", "own"), next(readings)))
        return current["busy"]

    monkeypatch.setattr(CompetingLoad, "_machine_busy_s", staticmethod(busy))
    monkeypatch.setattr(CompetingLoad, "_own_cpu_s", staticmethod(lambda: current["own"]))
    monkeypatch.setattr(load_module.os, "cpu_count", lambda: 2)
    clock = iter([100.0, 101.0])
    monkeypatch.setattr(load_module.time, "perf_counter", lambda: next(clock))
    with CompetingLoad() as load:
        pass
    figures = load.figures()
    assert figures["competing_cpu_share"] == pytest.approx(0.5) and figures["high"] is True  # 1 s of 2 core-s
    assert figures["gpu_other_processes"] is None and figures["threshold"] == HIGH_LOAD_SHARE


def test_no_nvml_is_null_not_zero():
    """On a machine without a GPU driver the GPU's other processes are unknown, never 0."""
    with CompetingLoad(gpu_index=0) as load:
        pass
    if load_module.gpu_other_pids(0) is None:
        assert load.gpu_other_processes is None
    assert 0 <= (load.share if load.share is not None else 0) <= 1


def _record(shares):
    runs = [{"seed": i, "load": None if s is ... else {"competing_cpu_share": s, "high": s > HIGH_LOAD_SHARE}}
            for i, s in enumerate(shares)]
    for run in runs:
        if run["load"] is None:
            del run["load"]
    return {"suite": {"name": "tiny"}, "runs": runs}


def test_the_summary_names_the_load_and_warns_per_loaded_run():
    record = _record([0.05, 0.45])
    assert load_text(record["runs"]) == "5%–45% of the CPU taken by other processes; 1 of 2 runs above 20% (high)"
    [line] = warnings(record)
    assert line.startswith("tiny seed 1: other processes took 45% of the CPU during the timed region")
    old = _record([..., ...])  # a file written before the load was recorded
    assert load_text(old["runs"]) == "not measured" and warnings(old) == []
    assert [run_is_high(r) for r in _record([0.05, 0.45, ...])["runs"]] == [False, True, None]


def test_the_summary_says_which_policy_ran_and_from_where():
    run = {"precision": "bf16", "channels_last": True, "compile": "off"}
    cached = {"runs": [{**run, "policy_trial": {"cached": True, "tried": False, "measured_at": "2026-12-08 02:00 UTC",
                                                "choice": {}}}]}
    assert policy_line(cached) == "policy: bf16 channels-last (cached, measured 2026-12-08 02:00 UTC)"
    noisy = {"runs": [{**run, "policy_trial": {"tried": True, "cached": False, "chosen": "bf16 channels-last",
                                               "not_cached": "the trial met high load (45% ...)"}}]}
    assert policy_line(noisy) == "policy: bf16 channels-last (measured now, not cached: the trial met high load (45% ...))"
    reused = {"runs": [{**run, "policy_trial": {"tried": False, "cached": False, "reused": True,
                                                "measured_at": "2026-12-08 02:00 UTC", "not_cached": "why",
                                                "trial": {"chosen": "bf16 channels-last"}}}]}
    assert policy_line(reused) == ("policy: bf16 channels-last (measured 2026-12-08 02:00 UTC by an earlier run of "
                                   "this process, not cached: why)")


# ---------------------------------------------------------------- a real competitor ----

COMPETITOR = """
import os, sys
if os.fork():            # the parent leaves at once: the spinner is no descendant of the test
    sys.exit(0)
os.setsid()
path = sys.argv[1]
with open(path + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.replace(path + ".tmp", path)
while True:
    pass
"""


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def competitors(tmp_path):
    """One CPU-bound process per core, not of this process tree; yielded once each has run."""
    pids = []
    try:
        for i in range(os.cpu_count() or 1):
            marker = tmp_path / f"competitor-{i}.pid"
            subprocess.run([sys.executable, "-c", COMPETITOR, str(marker)], check=True, timeout=60)
            deadline = time.monotonic() + 60
            while not marker.exists():  # the event: the spinner wrote its pid
                assert time.monotonic() < deadline, "the competitor never started"
                time.sleep(0.01)
            pids.append(int(marker.read_text()))
        deadline = time.monotonic() + 60
        while min(_cpu_s(pid) for pid in pids) < 0.2:  # the event: each has taken CPU time
            assert time.monotonic() < deadline, "the competitors never ran"
            time.sleep(0.01)
        yield pids
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_trial_beside_a_real_competitor_is_not_cached(competitors, tmp_path):
    from bench.suites import load_suite
    from bench.train import PreparedData, policy_cache, train_run
    from tests.helpers import separable_dataset, suite_text

    path = tmp_path / "a.toml"
    path.write_text(suite_text(model="airbench", model_args="args = { widths = [8, 8, 8] }", epochs=1, tta=1))
    suite = load_suite(str(path), ['recipe.precision="auto"', 'recipe.channels_last="auto"',
                                   "recipe.warmup_steps=1", "recipe.batch_size=32"]).resolved
    data = PreparedData.from_dataset(separable_dataset(n_train=128, n_test=64, size=12, channels=3))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train_run(suite, data, seed=0, device=torch.device("cpu"))
    finally:
        torch.set_num_threads(threads)
    trial = run["policy_trial"]
    assert trial["tried"] is True and trial["load"]["high"] is True, trial["load"]
    assert trial["not_cached"].startswith("the trial met high load")
    assert not policy_cache.entries()
    assert run["load"]["high"] is True  # the run's own timed region met the competitors too


def test_the_leaderboard_marks_runs_made_under_load(tmp_path):
    """A result whose runs met high load is marked, with a note saying what the mark means; a
    result from before the load was recorded carries none (tests/test_reports_fresh.py keeps
    the committed pages, all of such results, as they were)."""
    import json

    from bench.reports import leaderboard
    from tests.test_reports import namespace, quiet

    source = next((Path(__file__).parent.parent / "results" / "baselines").glob("*.json"))
    record = json.loads(source.read_text())
    # a suite of the user's (no shipped suite's name): judged under its recorded target, as made
    record["suite"]["name"] = record["suite"]["resolved"]["name"] = "my-smoke"
    folder = tmp_path / "results" / "runs"
    folder.mkdir(parents=True)
    (folder / "old.json").write_text(json.dumps(record))
    record["id"] += "-busy"
    for run, share in zip(record["runs"], [0.5, 0.05, 0.6, 0.05, 0.05]):
        run["load"] = {"competing_cpu_share": share, "high": share > HIGH_LOAD_SHARE}
    (folder / "busy.json").write_text(json.dumps(record))
    assert leaderboard.command(namespace(leaderboard, ["--results", str(folder.parent)]), quiet()) == 0
    page = (folder.parent / "LEADERBOARD.md").read_text()
    assert page.count("[busy: 2 of 5 runs]") == 1 and "busy: runs whose timed region met high load" in page
    (folder / "busy.json").unlink()
    assert leaderboard.command(namespace(leaderboard, ["--results", str(folder.parent)]), quiet()) == 0
    assert "busy" not in (folder.parent / "LEADERBOARD.md").read_text()


def test_a_sweeps_cells_carry_their_load_into_the_report(synthetic_study):
    """Each cell is a run: its result records the load, the study's cells frame carries it (the
    report's Findings read comparable cells from there) and the report says it in a line."""
    from bench.studies.figures import study_frames
    from bench.studies.ledger import read_ledger
    from bench.studies.report_sections import load_line
    from bench.studies.study import load_study

    study_path, folder = synthetic_study
    study = load_study(str(study_path))
    cells = study_frames(study, read_ledger(study, folder / "runs")).cells
    assert len(cells) == 8 and cells["competing_cpu_share"].between(0, 1).all()
    assert set(cells["load_high"]) <= {True, False}
    line = load_line(cells)
    assert line.startswith("Load: other processes took ") and "of the CPU during the 8 measured cells" in line
    old = cells.assign(competing_cpu_share=None, load_high=None)  # files from before the load was recorded
    assert load_line(old) is None


LAUNCHER = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdin=subprocess.PIPE, text=True)
child.communicate(sys.stdin.readline())
"""


def test_with_several_ranks_the_launchers_other_ranks_are_the_runs_own():
    """Under torch.distributed.run the ranks are siblings, children of the launcher: a rank's
    probe counts every descendant of the launcher as its own, not as a competitor."""
    spinner = SPIN_UNTIL_CPU.format(seconds=0.3)
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, spinner.replace('print("spun", flush=True)',
                                                                               'print("spun", file=sys.stderr, '
                                                                               'flush=True)')],
                                stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    load = CompetingLoad(tree_root=launcher.pid)
    before = load._tree_cpu_s()
    try:
        assert launcher.stderr.readline().strip() == "spun"  # the other "rank" has worked 0.3 s
        assert load._tree_cpu_s() - before >= 0.25
    finally:
        launcher.communicate("\n", timeout=60)
