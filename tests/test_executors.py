"""Executors' rules that need no cluster: what a cell asks of Ray, and a worker that dies
becoming its cell's failed record (never a missing cell)."""

import io
from concurrent.futures import Future

from rich.console import Console

from bench.progress import BoardReporter
from bench.studies.executors import _drive, worker_threads
from bench.studies.ray_executor import cell_resources
from bench.studies.study import load_study
from bench.studies.sweep import job_for


def test_a_cell_asks_ray_for_one_gpu_or_a_share_of_the_smallest_machine():
    nodes = [{"Alive": True, "Resources": {"CPU": 8.0}}, {"Alive": True, "Resources": {"CPU": 4.0}},
             {"Alive": False, "Resources": {"CPU": 2.0}}]
    assert cell_resources({"CPU": 16.0, "GPU": 4.0}, nodes, None) == {"num_gpus": 1, "num_cpus": 1}
    assert cell_resources({"CPU": 12.0}, nodes, None) == {"num_gpus": 0, "num_cpus": 4}
    assert cell_resources({"CPU": 12.0}, nodes, 2) == {"num_gpus": 0, "num_cpus": 2}
    assert cell_resources({"CPU": 12.0}, nodes, 16) == {"num_gpus": 0, "num_cpus": 1}


def test_a_worker_that_dies_leaves_a_failed_record_with_the_reason():
    study = load_study("fmnist-optimizers")
    jobs = [job_for(study, cell, "cpu") for cell in study.cells[:2]]
    died, fine = Future(), Future()
    died.set_exception(RuntimeError("worker process terminated abruptly"))
    fine.set_result({"status": "complete", "marker": 1})
    got = {}
    board = BoardReporter(Console(file=io.StringIO(), force_terminal=False), "s", total=2)
    _drive({died: jobs[0], fine: jobs[1]}, board, lambda job, record: got.__setitem__(job.key, record),
           lambda: [], lambda future: future.result())
    assert got[jobs[1].key] == {"status": "complete", "marker": 1}
    failed = got[jobs[0].key]
    assert failed["status"] == "failed" and "worker process terminated abruptly" in failed["error"]["message"]
    assert failed["suite"]["hash"] == jobs[0].suite.hash and failed["invocation"]["seeds"] == [jobs[0].seed]
    assert failed["study"]["cell"] == jobs[0].key and failed["runs"] == []


def test_worker_threads_are_a_share_of_the_cores_unless_omp_num_threads_says(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert worker_threads(4) == 4 and worker_threads(0) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert worker_threads(4) == 1


def test_the_slurm_dry_run_prints_the_job_arrays_sbatch_file(tmp_path, capsys):
    """What `bench sweep --executor slurm` would give sbatch: one array of the cells left to run,
    with the partition, GPUs, CPUs and time asked for (the README shows this output)."""
    import pytest

    pytest.importorskip("submitit", reason="submitit is the [cluster] extra: make test installs it")
    from bench.cli import main

    assert main(["sweep", "fmnist-optimizers", "--executor", "slurm", "--partition", "gpu", "--gpus-per-node", "1",
                 "--cpus-per-task", "8", "--time", "30", "--results", str(tmp_path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for line in ("#SBATCH --array=0-64%65", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --time=30", "#SBATCH --job-name=bench-fmnist-optimizers",
                 "-m submitit.core._submit"):
        assert line in out, out
    assert not (tmp_path / "studies" / "fmnist-optimizers" / "slurm").exists()  # a dry run submits nothing


def test_slurm_options_are_refused_for_other_executors_and_without_sbatch(tmp_path, capsys, monkeypatch):
    from bench.cli import main

    assert main(["sweep", "fmnist-optimizers", "--partition", "gpu", "--results", str(tmp_path)]) == 2
    assert "--partition is for --executor slurm" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert main(["sweep", "fmnist-optimizers", "--executor", "slurm", "--results", str(tmp_path)]) == 2
    assert "sbatch is not on this machine's PATH" in capsys.readouterr().err


def test_a_dead_ray_address_fails_in_one_line_within_the_connect_timeout(tmp_path):
    """Nothing listens at 127.0.0.1:1 (a typo'd port): exit 2 and one line, within the run's 120 s
    limit, not after Ray's minutes of retries (no tighter clock: the machine may be busy); an address that accepts connections but is no Ray cluster is bounded
    by --connect-timeout, Ray's own lines kept in the log file the line names."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import pytest

    pytest.importorskip("ray", reason="Ray is the [cluster] extra: make test installs it")

    def sweep(address: str, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "bench", "sweep", "fmnist-optimizers", "--executor", "ray",
                               "--address", address, "--results", str(tmp_path), *extra], capture_output=True,
                              text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
        return done, time.monotonic() - started

    dead, took = sweep("127.0.0.1:1")
    print(f"dead address: exit {dead.returncode} after {took:.1f} s")
    assert dead.returncode == 2
    [line] = [text for text in dead.stderr.splitlines() if text.strip()]
    assert "--address 127.0.0.1:1: nothing answers" in line and "Connection refused" in line
    with socket.socket() as silent:  # listens, never speaks Ray's protocol
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        mute, took = sweep(f"127.0.0.1:{port}", "--connect-timeout", "5")
    print(f"silent address: exit {mute.returncode} after {took:.1f} s")
    assert mute.returncode == 2
    [line] = [text for text in mute.stderr.splitlines() if text.strip()]
    log = tmp_path / "studies" / "fmnist-optimizers" / "ray.log"
    assert "cannot connect to a Ray cluster" in line or "no Ray cluster answered within 5 s" in line
    assert str(log) in line and log.stat().st_size > 0


def test_a_ray_client_connection_that_fails_at_start_is_tried_again_within_the_limit(tmp_path, monkeypatch):
    """Ray Client's per-connection server on the head dies at start now and then (Ray issue 63202):
    through `ray://` the probe tries again while --connect-timeout allows, each attempt in the log;
    a GCS address that refuses the probe fails at once (retrying a version mismatch would only wait)."""
    import re
    import socket
    import subprocess

    import pytest

    from bench.errors import BenchError
    from bench.studies import ray_executor

    exits = []

    def probe_child(command, **kwargs):  # the child that runs ray.init: fails once, then connects
        exits.append(1 if not exits else 0)
        return subprocess.CompletedProcess(command, exits[-1])

    monkeypatch.setattr(ray_executor.subprocess, "run", probe_child)
    log = tmp_path / "ray.log"
    with socket.socket() as head:  # something listens at the address, as a head does
        head.bind(("127.0.0.1", 0))
        head.listen()
        port = head.getsockname()[1]
        ray_executor.probe_address(f"ray://127.0.0.1:{port}", 30, log)
        assert exits == [1, 0]
        assert re.findall(r"attempt \d+", log.read_text()) == ["attempt 1", "attempt 2"]
        exits.clear()
        with pytest.raises(BenchError, match=f"--address 127.0.0.1:{port}: cannot connect to a Ray cluster"):
            ray_executor.probe_address(f"127.0.0.1:{port}", 30, log)
        assert exits == [1]
