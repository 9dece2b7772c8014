"""scripts/gpu_check.sh, the GPU check of issue 23, kept from rotting while no GPU is lent.

The dry run is the same script end to end on CPU with tiny sizes: every phase, the budget stop
of the race (it always runs until its budget), the result files and the summary. The budget
stop is also tried alone on a phase that ignores nothing but its budget.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"


def script_env(out: Path) -> dict[str, str]:
    return {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}


# The phases that end when their work ends get budgets far past it: a guard, not a clock (the dry
# run's 40 s specs phase was spent on a busy machine). The race stops only at its budget, by design;
# on a loaded machine its 15 s (and 45 s, tried) can pass before any run is saved: still open, see
# the issue 41 report (the script should stop it once each suite has a saved run)
BUSY_MACHINE_BUDGETS = {"GPU_CHECK_PREP_S": "300", "GPU_CHECK_TESTS_S": "300", "GPU_CHECK_SPECS_S": "300"}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-out")
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run-cpu"], env={**script_env(out), **BUSY_MACHINE_BUDGETS},
                          capture_output=True, text=True, timeout=1200)
    return out, done


def test_dry_run_goes_through_every_phase_and_summarizes(dry_run):
    out, done = dry_run
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    outcomes = {p["phase"]: p["outcome"] for p in summary["phases"]}
    # the race runs until its budget by design: the stop that keeps the finished runs
    assert outcomes == {"prep": "finished", "tests": "finished", "race": "stopped-at-budget", "specs": "finished"}
    assert summary["tests"]["passed"] > 0 and summary["tests"]["failures"] == summary["tests"]["errors"] == 0
    assert summary["specs"]["rows"] and all(r["images_per_s"] > 0 for r in summary["specs"]["rows"])
    assert summary["prep_data_prep_s"] is not None and summary["ratio"]["median_time_ratio"] > 0
    text = (out / "summary.md").read_text()
    for suite in ("cifar10-94", "airbench94"):
        figures = summary["race"][suite]
        assert figures["runs_finished"] >= 1 and figures["median_timed_s"] > 0
        assert figures["mean_accuracy"] is not None and figures["first_compile_s"] is not None
        assert f"| {suite} | interrupted |" in text


def test_dry_run_result_files_are_json_with_their_status(dry_run):
    out, _ = dry_run
    race = sorted((out / "results" / "runs").glob("*.json"))
    assert len(race) == 2
    for path in race:
        record = json.loads(path.read_text())
        # stopped at the budget: interrupted, every kept run finished, the other suite named
        assert record["status"] == "interrupted" and record["runs"]
        assert all(run["status"] == "complete" for run in record["runs"])
        assert record["invocation"]["race"][0]["suite"] in ("cifar10-94", "airbench94")
    (prep,) = (out / "prep").glob("*.json")
    assert json.loads(prep.read_text())["status"] == "complete"
    assert (out / "tests" / "junit.xml").is_file() and list((out / "specs").glob("*.md"))
    assert (out / "logs" / "race.log").is_file()


def test_a_phase_at_its_budget_is_interrupted_and_keeps_what_finished(tmp_path):
    # A module that finishes one piece of work, then would run for a minute: at the 1-second
    # budget it must get a KeyboardInterrupt (even with SIGINT ignored by whoever started the
    # script, as a job started in the background without job control is) and keep the finished piece.
    (tmp_path / "worker.py").write_text(
        "import pathlib, sys, time\n"
        "done = pathlib.Path(sys.argv[1])\n"
        "done.write_text('finished 1\\n')\n"
        "try:\n"
        "    time.sleep(60)\n"
        "except KeyboardInterrupt:\n"
        "    done.write_text(done.read_text() + 'kept\\n')\n"
        "    sys.exit(130)\n")
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    command = (f'source "{SCRIPT}"; OUT="{out}"; PY="{sys.executable}"; GRACE_S=20; '
               f'PYTHONPATH="{tmp_path}" run_phase demo 1 "$PY" -m worker "{tmp_path / "done.txt"}"')
    subprocess.run(["bash", "-c", command], env=script_env(out), check=True, timeout=60,
                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    # stopped by SIGINT, not by the SIGKILL 20 s later: the worker's 'kept' line says so (a SIGKILL
    # leaves no line), with no clock to misread on a busy machine
    name, outcome, code, budget, _ = (out / "phases.tsv").read_text().split("\t")
    assert (name, outcome, code, budget) == ("demo", "stopped-at-budget", "124", "1")
    assert (tmp_path / "done.txt").read_text() == "finished 1\nkept\n"


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT), "--fast"], env=script_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "--dry-run-cpu" in done.stderr
