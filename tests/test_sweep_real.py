"""A small study on real Fashion-MNIST through real processes, as CI runs it: twice in this
machine's process (the second sweep trains nothing), then through a local Ray with 2 workers
and through 2 local worker processes, each giving the same cells the same accuracies."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FASHION = Path("/usr/share/datasets/fashion-mnist")
STUDY = Path(__file__).parent / "fixtures" / "studies" / "fmnist-tiny.toml"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed "
                                                              "(make data)")]


def sweep(tmp_path, results, *extra):
    # one torch thread per process: tiny steps on a shared 2-core machine (and in CI)
    env = {**os.environ, "BENCH_DATA": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "bench", "sweep", str(STUDY), "--results", str(results),
                           "--device", "cpu", *extra], capture_output=True, text=True, timeout=600, env=env)


def cells(results):
    folder = results / "studies" / "fmnist-tiny" / "runs"
    out = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        out[record["study"]["cell"]] = record
    return out


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The study run once in-process; the folder and the first sweep's output."""
    tmp = tmp_path_factory.mktemp("local")
    first = sweep(tmp, tmp / "results")
    assert first.returncode == 0, first.stderr[-3000:]
    return tmp, tmp / "results", first


def test_a_small_study_runs_and_a_second_sweep_trains_nothing(local):
    tmp, results, first = local
    done = cells(results)
    assert len(done) == 8 and all(r["status"] == "complete" for r in done.values())
    files = sorted(os.listdir(results / "studies" / "fmnist-tiny" / "runs"))
    again = sweep(tmp, results)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "8 done, 0 failed, 0 not run yet; running 0" in " ".join(again.stdout.split())
    assert "started" not in again.stderr and "GPU monitor" not in again.stderr  # no run began
    assert sorted(os.listdir(results / "studies" / "fmnist-tiny" / "runs")) == files
    report = (results / "studies" / "fmnist-tiny" / "REPORT.md").read_text()
    assert "Best value of each axis" in report and "8 done, 0 failed, 0 not run yet" in report
    assert (results / "studies" / "fmnist-tiny" / "report.html").is_file()


@pytest.mark.parametrize("executor", [["--executor", "ray", "--workers", "2"], ["--workers", "2"]],
                         ids=["ray", "local-workers"])
def test_executors_give_the_same_cells_the_same_results(local, tmp_path, executor):
    if executor[:2] == ["--executor", "ray"]:
        pytest.importorskip("ray", reason="Ray is the [cluster] extra: make test installs it")
    _, reference, _ = local
    results = tmp_path / "results"
    done = sweep(tmp_path, results, *executor)
    assert done.returncode == 0, done.stderr[-3000:]
    mine, theirs = cells(results), cells(reference)
    assert set(mine) == set(theirs)
    for key, record in mine.items():
        assert record["status"] == "complete" and record["env"]["cpu"]["torch_threads"] == 1
        # the same cell is the same computation wherever it runs (fp32 on CPU, one thread)
        assert record["runs"][0]["accuracy"] == theirs[key]["runs"][0]["accuracy"]
        assert record["runs"][0]["train_accuracy"] == theirs[key]["runs"][0]["train_accuracy"]
    if "ray" in executor:
        assert "each cell asks for 0 GPU and 1 CPU" in done.stderr
