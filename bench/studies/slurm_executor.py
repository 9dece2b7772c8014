"""`bench sweep --executor slurm`: a study's cells as one SLURM job array, through submitit.

The driver (the `bench sweep` process, on a login node) pickles each cell job into
RESULTS/studies/<study>/slurm/, submits one array of len(cells) tasks with sbatch (one cell
per task: `--partition`, `--gpus-per-node`, `--cpus-per-task`, `--time`), waits for them and
writes each returned record itself, as every executor does: the tasks write nothing into the
study's runs/. A task that SLURM ended (timeout, preemption, a node failure) becomes its cell's
failed record with submitit's reason; the next sweep retries it. Ctrl-C cancels the array's
tasks. The bench installation and the study's files must be reachable from the compute nodes
at the same paths (a shared file system), as is usual on SLURM clusters.

`--slurm-cluster local` runs the same array through submitit's local executor, each task a
process of this machine: the submission path can be tried without a cluster.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.progress import BoardReporter
from bench.studies.cell import CellJob, run_cell
from bench.studies.executors import Finished, POLL_S, _drive

DEFAULT_TIME_MIN = 60


def slurm_cell(job: CellJob) -> dict[str, Any]:
    """One array task: the cell's record, with the SLURM task that ran it."""
    record = run_cell(job)
    task = os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID", ""))
    index = os.environ.get("SLURM_ARRAY_TASK_ID")
    try:
        import submitit

        job_id = submitit.JobEnvironment().job_id
    except RuntimeError:  # not inside a submitit job (never in practice); the variables say what they can
        job_id = f"{task}_{index}" if index else task
    record["study"] = {**record["study"], "placement": {"executor": "slurm", "hostname": socket.gethostname(),
                                                        "job_id": job_id, "attempts": 1, "lost": []}}
    return record


def parameters(args: Any, jobs: list[CellJob], name: str) -> dict[str, Any]:
    """submitit's AutoExecutor parameters for the array (slurm_* ones are ignored by the local executor)."""
    ranks = max((job.nproc_per_node for job in jobs), default=1)
    params: dict[str, Any] = {"name": f"bench-{name}", "timeout_min": args.time or DEFAULT_TIME_MIN,
                              "nodes": 1, "tasks_per_node": 1, "cpus_per_task": args.cpus_per_task or ranks,
                              "gpus_per_node": args.gpus_per_node or 0}
    if args.partition:
        params["slurm_partition"] = args.partition
    if args.workers:
        params["slurm_array_parallelism"] = args.workers  # tasks of the array running at once
    return params


def make_executor(folder: Path, cluster: str, params: dict[str, Any]):
    try:
        import submitit
    except ImportError:
        raise BenchError("--executor slurm: submitit is not installed; pip install -e '.[cluster]' (make test "
                         "installs it)") from None
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise BenchError("--executor slurm: sbatch is not on this machine's PATH; run bench sweep on a SLURM "
                         "login node (or try the array here with --slurm-cluster local)")
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
    executor.update_parameters(**params)
    return executor


def sbatch_script(folder: Path, count: int, params: dict[str, Any]) -> str:
    """The sbatch file submitit writes for the array (what `sbatch` is given), for --dry-run and the README."""
    try:
        from submitit.slurm.slurm import _make_sbatch_string
    except ImportError:
        raise BenchError("--executor slurm: submitit is not installed; pip install -e '.[cluster]'") from None
    translated = {"job_name": params["name"], "time": params["timeout_min"], "nodes": params["nodes"],
                  "ntasks_per_node": params["tasks_per_node"], "cpus_per_task": params["cpus_per_task"],
                  "map_count": count, "array_parallelism": params.get("slurm_array_parallelism", 256)}
    if params["gpus_per_node"]:
        translated["gpus_per_node"] = params["gpus_per_node"]
    if "slurm_partition" in params:
        translated["partition"] = params["slurm_partition"]
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder / "%j"))])
    return _make_sbatch_string(command=command, folder=folder / "%j", **translated)


def run_on_slurm(jobs: list[CellJob], board: BoardReporter, finished: Finished, args: Any, folder: Path,
                 name: str) -> None:
    if not jobs:  # every cell is claimed by another sweep
        return
    executor = make_executor(folder, args.slurm_cluster, parameters(args, jobs, name))
    submitted = executor.map_array(slurm_cell, jobs)  # one sbatch --array for the study's cells
    # SLURM numbers the array's tasks JOBID_INDEX; the local executor runs each as a process of its own
    array = submitted[0].job_id.split("_")[0] if args.slurm_cluster == "slurm" else "(local processes)"
    board.notice(f"slurm: job array {array} of {len(jobs)} tasks submitted; submitit's files in {folder}")
    pending = dict(zip(submitted, jobs))
    try:
        def wait_some(handles: list) -> list:
            done = [job for job in handles if job.done()]
            if not done:
                time.sleep(POLL_S)
            return done

        _drive(pending, board, finished, lambda: [], lambda job: job.result(), wait_some)
    finally:
        for job in pending:  # Ctrl-C or an error of the driver: no task outlives the sweep
            try:
                job.cancel(check=False)
            except Exception:  # cancelling is best effort; the error that brought us here matters more
                pass
