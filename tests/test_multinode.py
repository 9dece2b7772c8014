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
    assert took < 5 + 30  # the timeout, plus starting Python and torch on a busy machine
    assert not list((tmp_path / "results").glob("*.json"))  # no run started, nothing written
