"""A study on a real Ray cluster of three nodes on this machine (ray.cluster_utils.Cluster: a
head without CPUs, where the driver's Ray Client server and event queue live, and two worker
nodes of one CPU each), driven by `bench sweep --executor ray --address ...` in a child
process, on a small real Fashion-MNIST subset:

- through a `ray://` address (Ray Client): the cells land on both worker nodes, each result
  names its node, one file per cell;
- the driver killed mid-study: the same command resumes, each cell ends with one file;
- a worker node killed while its cell trains: the cell is retried on the surviving node, one
  complete file per cell (no partial file), the retry recorded in the result and the report.

A dead address failing in one line lives in test_executors.py (it needs no cluster).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is the [cluster] extra: make test installs it")
from ray.cluster_utils import Cluster  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed "
                                                              "(make data)")]
SMALL_STORE = 80 * 1024 * 1024  # bytes of object store per node: records are small
# a lost node is declared dead after about 3 s instead of Ray's default 15 s or more
FAST_HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
               "health_check_failure_threshold": 3}

STUDY = """
name = "{name}"
suite = "fashion-mnist-smoke"
seeds = {seeds}
[set]
"dataset.train_size" = 1500
"dataset.test_size" = 500
"recipe.epochs" = {epochs}
"recipe.curve_eval" = false
"model.args" = {{ hidden = [32] }}
[axes]
"recipe.lr" = [0.05, 0.01]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    client_port = free_port()
    # the nodes' processes (and so the cells) inherit this environment: one torch thread, a shared data cache
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        patch.setenv("BENCH_DATA", str(cache))
        # Ray Client's first connection starts a server process on the head, which Ray gives 30 s to
        # answer; a CI run here failed so ("Starting Ray client server failed"), the process still
        # importing Ray on the busy 2-core machine. The test is about where cells land, not start-up.
        # Not longer than 60 s: that process also dies at start now and then (Ray issue 63202), and
        # the head waits this long before the connection fails and bench tries again.
        patch.setenv("RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S", "60")
        nodes = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 0, "include_dashboard": False, "object_store_memory": SMALL_STORE,
            "ray_client_server_port": client_port, "_system_config": FAST_HEALTH})
        workers = [nodes.add_node(num_cpus=1, object_store_memory=SMALL_STORE) for _ in range(2)]
        nodes.wait_for_nodes()
    try:
        yield nodes, workers, client_port, cache
    finally:
        nodes.shutdown()


def write_study(folder: Path, name: str, seeds: list[int], epochs: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(STUDY.format(name=name, seeds=seeds, epochs=epochs))
    return path


def sweep_command(study: Path, results: Path, address: str) -> list[str]:
    # --connect-timeout 240: a Ray Client address's first connection starts a server process for
    # it on the head, which took over bench's default 20 s on the 2-core CI machine (a CI run failed
    # so), and which dies at start now and then (Ray issue 63202): 240 s leaves room for a second
    # and third try after the head's 60 s channel timeout; the test is about where cells land, not
    # how fast Ray Client starts
    return [sys.executable, "-m", "bench", "sweep", str(study), "--results", str(results), "--device", "cpu",
            "--executor", "ray", "--address", address, "--connect-timeout", "240"]


def run_sweep(study: Path, results: Path, address: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BENCH_DATA": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.run(sweep_command(study, results, address), capture_output=True, text=True, timeout=600,
                          env=env)


def records(runs: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))]


def one_complete_file_per_cell(runs: Path, cells: int) -> list[dict]:
    found = records(runs)
    # no temporary or partial file (the claims' lock file stays: bench.studies.claims)
    assert sorted(p.name for p in runs.iterdir() if p.suffix != ".json" and p.name != ".claims.lock") == []
    assert len(found) == cells, [r["study"]["cell"] for r in found]
    assert len({r["study"]["cell"] for r in found}) == cells  # no cell twice
    assert all(r["status"] == "complete" for r in found)
    return found


def test_cells_land_on_both_worker_nodes_through_a_ray_client_address(cluster, tmp_path):
    nodes, workers, client_port, cache = cluster
    study = write_study(tmp_path, "ray-spread", [0, 1])
    done = run_sweep(study, tmp_path / "results", f"ray://127.0.0.1:{client_port}", cache)
    assert done.returncode == 0, done.stderr[-3000:]
    found = one_complete_file_per_cell(tmp_path / "results" / "studies" / "ray-spread" / "runs", 4)
    per_node = Counter(r["study"]["placement"]["node_id"] for r in found)
    print(f"cells per node: {dict(per_node)}")
    assert set(per_node) == {w.node_id for w in workers}  # both worker nodes ran cells, the head (0 CPUs) none
    assert all(r["study"]["placement"]["attempts"] == 1 and r["study"]["placement"]["lost"] == [] for r in found)
    assert "ray: 3 nodes" in done.stderr
    # Ray's own lines stay out of the terminal
    assert "INFO" not in done.stderr and "WARNING" not in done.stderr


def _cell_process(exclude: set[int] = frozenset()) -> tuple[int, int] | None:
    """(pid, parent pid) of a Ray worker process running a cell (Ray titles it after the task),
    other than those in `exclude`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().split(b"\0")[0]
            status = (entry / "status").read_text()
        except OSError:
            continue
        if title.startswith(b"ray::ray_cell") and int(entry.name) not in exclude:
            ppid = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("PPid:"))
            return int(entry.name), ppid
    return None


def _start_driver(study: Path, results: Path, address: str, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "BENCH_DATA": str(cache), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(sweep_command(study, results, address), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)


def test_a_killed_driver_is_resumed_by_the_same_command(cluster, tmp_path):
    nodes, workers, _, cache = cluster
    study = write_study(tmp_path, "ray-resume", [2, 3])
    results = tmp_path / "results"
    runs = results / "studies" / "ray-resume" / "runs"
    driver = _start_driver(study, results, nodes.address, cache)
    try:
        deadline = time.monotonic() + 300
        while not list(runs.glob("*.json")) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(driver.pid, signal.SIGKILL)  # the driver's machine is gone: no cleanup of any kind
    finally:
        driver.communicate(timeout=60)
    kept = len(records(runs))
    assert 1 <= kept < 4
    again = run_sweep(study, results, nodes.address, cache)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{kept} done, 0 failed, {4 - kept} not run yet; running {4 - kept}" in again.stdout.replace("\n", " ")
    one_complete_file_per_cell(runs, 4)


def _has_torch(pid: int) -> bool:
    """Whether the process has torch loaded: a cell announces its start before it imports torch
    (bench.studies.ray_task.ray_cell, which gets its job as bytes and unpickles it, torch with it, after
    announcing), so a cell with torch loaded has announced itself."""
    try:
        return "libtorch_cpu" in (Path("/proc") / str(pid) / "maps").read_text()
    except OSError:
        return False


def test_a_node_lost_mid_cell_is_retried_on_the_surviving_node(cluster, tmp_path):
    nodes, workers, _, cache = cluster
    # cells long enough (a second or more of training) that the kill lands inside one, not after it
    study = write_study(tmp_path, "ray-loss", [4, 5], epochs=40)
    results = tmp_path / "results"
    # cells of an earlier test's killed driver may still run on the shared cluster: not this study's
    orphans = set()
    while (orphan := _cell_process(orphans)) is not None:
        orphans.add(orphan[0])
    driver = _start_driver(study, results, nodes.address, cache)
    raylets = {w.all_processes["raylet"][0].process.pid: w for w in workers}
    try:
        deadline = time.monotonic() + 300
        while (cell := _cell_process(orphans)) is None and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert cell is not None and cell[1] in raylets, "no cell seen running on a worker node"
        # the kill lands while the cell works, past its start announcement: killed before it, the
        # attempt was never announced (this test failed so in 2 of 4 CI runs, when it killed the
        # cell as soon as Ray titled its process, while it imported torch)
        while not _has_torch(cell[0]) and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        lost = raylets[cell[1]]
        # frozen first, so that it cannot finish (and hand its result over) while remove_node takes its time
        try:
            os.kill(cell[0], signal.SIGSTOP)
        except ProcessLookupError:
            pass
        nodes.remove_node(lost, allow_graceful=False)  # the node's raylet and object store, killed
        try:
            os.kill(cell[0], signal.SIGKILL)  # and the cell's process with it, as a machine loss would
        except ProcessLookupError:
            pass
        out, err = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, err[-3000:]
    folder = results / "studies" / "ray-loss"
    found = one_complete_file_per_cell(folder / "runs", 4)
    survivor = next(w for w in workers if w is not lost)
    retried = [r for r in found if r["study"]["placement"]["attempts"] > 1]
    print(f"node {lost.node_id[:12]} killed; retried cells: "
          f"{[(r['study']['cell'], r['study']['placement']) for r in retried]}")
    tries = [(r["study"]["cell"], r["study"]["placement"]["attempts"], r["study"]["placement"]["node_id"][:8])
             for r in found]
    assert len(retried) == 1, (f"killed pid {cell[0]} on node {lost.node_id[:8]}; (cell, attempts, "
                               f"node): {tries}; driver: {err[-1500:]}")
    assert retried[0]["study"]["placement"]["attempts"] == 2
    assert retried[0]["study"]["placement"]["lost"] == [lost.node_id]
    assert retried[0]["study"]["placement"]["node_id"] == survivor.node_id
    assert "retried on node" in err
    report = (folder / "REPORT.md").read_text()
    assert "Retried cells" in report and lost.node_id[:12] in report


def test_a_local_ray_sweep_starts_its_own_ray_beside_a_running_cluster(cluster, tmp_path):
    """`--executor ray` without an address is a Ray of this machine's own, even while a cluster runs
    here (whose head is then the machine's current cluster, which a plain ray.init would join and
    then refuse its CPU count with a traceback)."""
    nodes, workers, _, cache = cluster
    study = write_study(tmp_path, "ray-own", [0], epochs=1)
    results = tmp_path / "results"
    command = [sys.executable, "-m", "bench", "sweep", str(study), "--results", str(results), "--device", "cpu",
               "--executor", "ray", "--workers", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "BENCH_DATA": str(cache), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    found = one_complete_file_per_cell(results / "studies" / "ray-own" / "runs", 2)
    cluster_nodes = {nodes.head_node.node_id, *(w.node_id for w in workers)}
    assert not {r["study"]["placement"]["node_id"] for r in found} & cluster_nodes


TUNE_SUITE = """
name = "ray-tune"
mode = "reach"
target = 0.6
runs = 3
devices = ["cpu"]
[dataset]
name = "fashion-mnist"
train_size = 1500
test_size = 500
[model]
name = "mlp"
args = { hidden = [32] }
[recipe]
epochs = 2
batch_size = 64
lr = 0.05
curve_eval = false
precision = "fp32"
"""

TUNE_SPACE = """
"recipe.lr" = {low = 0.01, high = 0.1, log = true}
"recipe.batch_size" = [32, 64]
"""


def test_a_tuning_search_runs_its_trials_on_the_worker_nodes(cluster, tmp_path):
    """`bench tune --executor ray --address`: the trials (rounds of --workers 2) land on the two
    worker nodes, one result file each; the verification runs in the driver, beside the default."""
    nodes, workers, _, cache = cluster
    suite, space, results = tmp_path / "ray-tune.toml", tmp_path / "space.toml", tmp_path / "results"
    suite.write_text(TUNE_SUITE)
    space.write_text(TUNE_SPACE)
    command = [sys.executable, "-m", "bench", "tune", str(suite), "--space", str(space), "--trials", "4",
               "--workers", "2", "--executor", "ray", "--address", nodes.address, "--results", str(results),
               "--device", "cpu", "--validation-size", "500", "--margin", "0", "--verify-runs", "3",
               "--connect-timeout", "240"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "BENCH_DATA": str(cache), "OMP_NUM_THREADS": "1"})
    assert done.returncode in (0, 1), done.stderr[-3000:]  # a verdict either way
    trials = records(results / "tune" / "ray-tune" / "trials")
    assert len(trials) == 4 and all(r["status"] == "complete" for r in trials)
    placed = Counter(r["study"]["placement"]["node_id"] for r in trials)
    print(f"trials per node: {dict(placed)}")
    # on the cluster's worker nodes; Ray's scheduler may pack a round of two onto one node (it did
    # in one CI run of five), so which of the two is not asserted
    assert placed and set(placed) <= {w.node_id for w in workers}
    assert sorted(r["study"]["trial"] for r in trials) == [0, 1, 2, 3]
    assert len(records(results / "tune" / "ray-tune" / "verify")) == 2
    assert (results / "tune" / "ray-tune" / "ray-tune-tuned.toml").is_file()
