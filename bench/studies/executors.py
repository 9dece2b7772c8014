"""Where a study's cells run. Every executor takes cell jobs and hands each finished cell's
record to `finished(job, record)` in the driver, which writes it; none writes files itself.

local, 1 worker   cells one after another in this process (per-run bars on the board)
local, N workers  N worker processes (spawned); with GPUs each is pinned to one with
                  CUDA_VISIBLE_DEVICES, on CPU each gets cores / N torch threads (or
                  OMP_NUM_THREADS when set); Ctrl-C
                  (the driver's) ends them, and a cell whose worker died is failed
ray               each cell a Ray task on a local Ray or a cluster (bench.studies.ray_executor)
slurm             each cell a task of one SLURM job array (bench.studies.slurm_executor)

Workers send their runs' progress to the driver's board as events over a queue. A failure
of the machinery (a worker process that died, a Ray task lost) becomes the cell's failed
record with the reason, like any failure of the cell itself.
"""

from __future__ import annotations

import multiprocessing
import os
import queue as queue_module
import signal
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Any, Callable

from bench.errors import BenchError
from bench.progress import BoardReporter, PrefixReporter, QueueReporter
from bench.studies.cell import CellJob, failed_record, run_cell

Finished = Callable[[CellJob, dict[str, Any]], None]
Claim = Callable[[CellJob], bool]  # True: this sweep runs the cell; False: another sweep has it
POLL_S = 0.25  # how often the driver looks for finished cells and progress events


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # a broken CUDA set-up counts as none; the cells will say why
        return 0


def worker_threads(share: int) -> int:
    """Torch threads for a worker: OMP_NUM_THREADS when the user set it (it wins, as it does
    in this process), else its share of the cores."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return max(1, share)


# ---------------------------------------------------------------- in this process ----

def run_in_process(jobs: list[CellJob], board: BoardReporter, finished: Finished,
                   claim: Claim = lambda job: True) -> None:
    for job in jobs:
        if not claim(job):  # claimed when it is its turn, so two sweeps share what is left
            continue
        board.job_started(job.label)
        finished(job, run_cell(job, PrefixReporter(board, job.label)))


# ---------------------------------------------------------------- worker processes ----

def _worker_main(worker: int, jobs: Any, events: Any, gpu: int | None, threads: int) -> None:
    """A worker process: takes cell jobs until the None at the end, sends events and records."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before this process touches CUDA
    else:
        import torch

        torch.set_num_threads(threads)  # the workers share the cores instead of fighting over them
    while (job := jobs.get()) is not None:
        events.put(("start", job.key, worker))
        try:
            record = run_cell(job, QueueReporter(events.put, job.key))
        except BaseException as exc:  # run_cell keeps its own failures; this is the machinery's
            record = failed_record(job, exc)
        events.put(("result", job.key, record))


def run_in_workers(jobs: list[CellJob], board: BoardReporter, finished: Finished, workers: int,
                   claim: Claim = lambda job: True) -> None:
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited CUDA or threads
    gpus = gpu_count()
    threads = worker_threads((os.cpu_count() or 1) // workers)
    job_queue, events = context.Queue(), context.Queue()
    pending: dict[str, CellJob] = {}
    feed = _feeder(jobs, claim, pending, job_queue, workers)
    for _ in range(workers):  # one cell per worker at a time, each claimed when it is handed out
        feed()
    processes = []
    for i in range(workers):
        gpu = i % gpus if gpus else None  # more workers than GPUs share them round-robin
        processes.append(context.Process(target=_worker_main, args=(i, job_queue, events, gpu, threads),
                                         daemon=True, name=f"bench-cell-worker-{i}"))
    # the workers are born ignoring Ctrl-C (an ignored signal stays ignored across exec): it is
    # the driver's to handle, by ending them
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for process in processes:
            process.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    running: dict[int, str] = {}  # worker -> the cell it runs
    try:
        while pending:
            try:
                event = events.get(timeout=POLL_S)
            except queue_module.Empty:
                for worker, process in enumerate(processes):
                    if not process.is_alive() and worker in running:  # it died mid-cell: say so, go on
                        job = pending.pop(running.pop(worker))
                        finished(job, failed_record(job, f"the worker process running this cell died (exit code "
                                                         f"{process.exitcode})"))
                        feed()
                if not any(p.is_alive() for p in processes):
                    break  # no worker left: the cells not started stay pending for the next sweep
                continue
            if event[0] == "start":
                running[event[2]] = event[1]
                board.job_started(pending[event[1]].label)
            elif event[0] == "result":
                running = {w: k for w, k in running.items() if k != event[1]}
                board.forget(event[1])
                finished(pending.pop(event[1]), event[2])
                feed()
            elif event[1] in pending:
                board.replay(event, pending[event[1]].label)
    finally:
        for process in processes:  # done, or Ctrl-C: no cell outlives the sweep
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=10)


def _feeder(jobs: list[CellJob], claim: Claim, pending: dict[str, CellJob], job_queue: Any,
            workers: int) -> Callable[[], None]:
    """Hands the workers the next cell this sweep could claim; when none is left, tells every
    worker to stop (a None each)."""
    left = iter(jobs)
    stopped = [False]

    def feed() -> None:
        for job in left:
            if claim(job):
                pending[job.key] = job
                job_queue.put(job)
                return
        if not stopped[0]:
            stopped[0] = True
            for _ in range(workers):
                job_queue.put(None)

    return feed


def _drive(pending: dict[Any, CellJob], board: BoardReporter, finished: Finished, drain: Callable[[], list],
           result: Callable[[Any], dict[str, Any]], wait_some: Callable | None = None) -> None:
    """The driver's loop: hand each finished cell's record on, and show the workers' events."""
    labels = {job.key: job.label for job in pending.values()}
    announced: set[str] = set()
    ended: set[str] = set()

    def show(events: list[tuple]) -> None:
        for event in events:
            if event[0] == "start":
                if event[1] not in announced:  # a late start of a cell already handed on is old news
                    announced.add(event[1])
                    board.job_started(labels[event[1]])
            elif event[1] not in ended:
                board.replay(event, labels.get(event[1], event[1]))

    while pending:
        done = wait_some(list(pending)) if wait_some else wait(list(pending), timeout=POLL_S,
                                                                 return_when=FIRST_COMPLETED)[0]
        show(drain())
        for handle in done:
            job = pending.pop(handle)
            try:
                record = result(handle)
            except (KeyboardInterrupt, BenchError):
                raise
            except Exception as exc:  # the worker, not the cell, failed: still the cell's failed record
                record = failed_record(job, f"the worker running this cell failed: {type(exc).__name__}: {exc}")
            if job.key not in announced:
                announced.add(job.key)
                board.job_started(job.label)
            ended.add(job.key)
            board.forget(job.key)  # bars its worker could not close (it died) go with it
            finished(job, record)
    show(drain())
