"""Beyond one machine without a cluster: two torchrun nodes simulated on this machine (two
`bench run` launchers meeting at one --rdzv-endpoint, gloo on CPU, one rank each), a node
that never arrives, SLURM job arrays through submitit's local executor, and a study whose
cells are themselves 2-rank torchrun runs. All on a small real Fashion-MNIST subset."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

FASHION = Path("/usr/share/datasets/fashion-mnist")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed "
                                                              "(make data)")]

# fp32 and no batch norm: two ranks on half batches each differ from one process only in the
# order of float sums
SUITE = """
name = "multinode-tiny"
target = 0.5
runs = 1
devices = ["cpu"]
[dataset]
name = "fashion-mnist"
train_size = 1024
test_size = 500
[model]
name = "mlp"
args = { hidden = [32] }
[recipe]
epochs = 2
batch_size = 64
lr = 0.05
precision = "fp32"
curve_eval = true
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench(*args: str, cache: Path) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


def env(cache: Path) -> dict[str, str]:
    return {**os.environ, "BENCH_DATA": str(cache), "OMP_NUM_THREADS": "1"}


def only_record(folder: Path) -> dict:
    [path] = list(folder.glob("*.json"))
    return json.loads(path.read_text())


def test_two_nodes_meet_at_one_endpoint_and_train_the_one_process_run(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(SUITE)
    cache, endpoint = tmp_path / "cache", f"127.0.0.1:{free_port()}"
    nodes = [subprocess.Popen(bench("run", str(suite), "--device", "cpu", "--nproc-per-node", "1", "--nnodes", "2",
                                    "--node-rank", str(rank), "--rdzv-endpoint", endpoint, "--rdzv-timeout", "120",
                                    "--results", str(tmp_path / f"node{rank}"), cache=cache),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(cache))
             for rank in (0, 1)]
    outputs = [node.communicate(timeout=600) for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    assert not (tmp_path / "node1").exists() or not list((tmp_path / "node1").glob("*.json"))  # rank 0's node writes
    two = only_record(tmp_path / "node0")
    scale = two["env"]["distributed"]
    assert scale["nnodes"] == 2 and scale["world_size"] == 2 and scale["nproc_per_node"] == 1
    assert [(r["rank"], r["node_rank"]) for r in scale["ranks"]] == [(0, 0), (1, 1)]

    one_run = subprocess.run(bench("run", str(suite), "--device", "cpu", "--results", str(tmp_path / "one"),
                                   cache=cache), capture_output=True, text=True, timeout=600, env=env(cache))
    assert one_run.returncode == 0, one_run.stderr[-2000:]
    one = only_record(tmp_path / "one")
    two_losses = [p["loss"] for p in two["runs"][0]["curve"]]
    one_losses = [p["loss"] for p in one["runs"][0]["curve"]]
    print(f"losses per epoch: two nodes {two_losses}, one process {one_losses}")
    assert two_losses == pytest.approx(one_losses, rel=1e-4)
    assert two["runs"][0]["accuracy"] == one["runs"][0]["accuracy"]


def test_a_node_that_never_arrives_ends_the_run_within_the_rendezvous_timeout(tmp_path):
    suite = tmp_path / "tiny.toml"
    suite.write_text(SUITE)
    cache = tmp_path / "cache"
    started = time.monotonic()
    alone = subprocess.run(bench("run", str(suite), "--device", "cpu", "--nproc-per-node", "1", "--nnodes", "2",
                                 "--node-rank", "0", "--rdzv-endpoint", f"127.0.0.1:{free_port()}", "--rdzv-timeout",
                                 "5", "--results", str(tmp_path / "results"), cache=cache),
                           capture_output=True, text=True, timeout=120, env=env(cache))
    took = time.monotonic() - started
    assert alone.returncode == 3, alone.stderr[-2000:]
    lines = [line for line in alone.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "did not all meet" in lines[0] and "--rdzv-timeout" in lines[0], alone.stderr
    # it waited for the rendezvous (no earlier failure); the subprocess's 120 s limit bounds it above,
    # with room for starting Python and torch on a busy machine (a fixed 35 s was not, under load)
    assert took >= 5
    assert not list((tmp_path / "results").glob("*.json"))  # no run started, nothing written


STUDY = """
name = "{name}"
suite = "tiny.toml"
seeds = [0]
{extra}
[axes]
"recipe.lr" = {lrs}
"""


def write_study(folder: Path, name: str, extra: str = "", lrs: str = "[0.05, 0.01]") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny.toml").write_text(SUITE)
    path = folder / f"{name}.toml"
    path.write_text(STUDY.format(name=name, extra=extra, lrs=lrs))
    return path


def sweep(study: Path, results: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(bench("sweep", str(study), "--results", str(results), "--device", "cpu", *extra,
                                cache=cache), capture_output=True, text=True, timeout=600, env=env(cache))


def test_a_study_runs_as_one_job_array_through_submitit(tmp_path):
    """submitit's local executor runs the array's tasks as processes here, as SLURM would on its nodes:
    one array for the study, each task's record written by the driver, a second sweep submits nothing."""
    pytest.importorskip("submitit", reason="submitit is the [cluster] extra: make test installs it")
    study, results, cache = write_study(tmp_path, "slurm-tiny"), tmp_path / "results", tmp_path / "cache"
    done = sweep(study, results, cache, "--executor", "slurm", "--slurm-cluster", "local", "--time", "10")
    assert done.returncode == 0, done.stderr[-3000:]
    folder = results / "studies" / "slurm-tiny"
    found = [json.loads(p.read_text()) for p in sorted((folder / "runs").glob("*.json"))]
    assert len(found) == 2 and all(r["status"] == "complete" for r in found)
    placements = [r["study"]["placement"] for r in found]
    # one submission of the whole study (the local executor gives each task a process, so an id of its own)
    assert all(p["executor"] == "slurm" for p in placements) and len({p["job_id"] for p in placements}) == 2
    assert done.stderr.count("tasks submitted") == 1 and "job array (local processes) of 2 tasks" in done.stderr
    again = sweep(study, results, cache, "--executor", "slurm", "--slurm-cluster", "local")
    assert again.returncode == 0 and "running 0" in again.stdout and "submitted" not in again.stderr


def test_study_cells_that_are_two_rank_torchrun_runs(tmp_path):
    # one cell (a launcher and two ranks) keeps the test short
    study = write_study(tmp_path, "ddp-cells", "nproc_per_node = 2", lrs="[0.05]")
    results, cache = tmp_path / "r", tmp_path / "c"
    done = sweep(study, results, cache)
    assert done.returncode == 0, done.stderr[-3000:]
    found = [json.loads(p.read_text()) for p in sorted((results / "studies" / "ddp-cells" / "runs").glob("*.json"))]
    assert len(found) == 1 and all(r["status"] == "complete" for r in found)
    for record in found:
        scale = record["env"]["distributed"]
        assert scale["world_size"] == 2 and scale["backend"] == "gloo" and len(record["runs"][0]["ranks"]) == 2
    # the cells are the study's: a rerun finds both done and trains nothing
    again = sweep(study, results, cache)
    assert again.returncode == 0 and "1 done, 0 failed, 0 not run yet; running 0" in " ".join(again.stdout.split())
