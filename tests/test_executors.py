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
