"""`bench sweep --executor ray`: each cell a Ray task, on a local Ray started for the study or
on the cluster at --address (`HOST:PORT` of its head's GCS, `ray://HOST:10001` through Ray
Client, or `auto`).

Connecting: a dead or wrong address must fail in seconds, in one line. `ray.init` retries a
dead address for many minutes while printing its gRPC warnings, so the address is first tried
in a child process bounded by --connect-timeout, all of Ray's output going to a log file that
the error line names. Through Ray Client (`ray://`), a failed probe is tried again while
--connect-timeout allows, and the driver's own ray.init up to CLIENT_INIT_ATTEMPTS times: the
head starts a server process for each client connection, forked from a process busy in gRPC,
and that child now and then dies at start (Ray issue 63202, open; seen here in CI), which fails
the connection after the head's channel timeout (30 s by default). The price: a ray:// address
that fails for good (another Ray version, say) takes the whole limit to say so.

While the study runs, Ray's own log lines (file descriptor 2, where its C++ core and its loggers
write) go to that same file; the board keeps the terminal.

Where cells run: each cell's result says on which Ray node it trained (study.placement). A
task whose node (or worker process) was lost is retried on a surviving node, up to --retries
times (Ray's own task retry: system failures only, never a cell that failed by itself). The
driver sees each attempt start, so a retry is noticed on the board and recorded in the
cell's result (placement.attempts, placement.lost), which the study report lists. The event
queue lives on the driver's node, so losing a worker node loses no events.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from bench.errors import BenchError
from bench.progress import BoardReporter
from bench.studies.cell import CellJob
from bench.studies.executors import Claim, Finished, POLL_S, _drive, gpu_count, worker_threads
from bench.studies.ray_task import ray_cell

DEFAULT_CONNECT_TIMEOUT_S = 20.0
DEFAULT_RETRIES = 2
CLIENT_PREFIX = "ray://"
MIN_RETRY_S = 2.0        # a Ray Client connection is tried again only with this much of the limit left
CLIENT_INIT_ATTEMPTS = 3  # ray.init through Ray Client, after the probe: the same start-up failure

# The child that tries the address: exit 0 once connected; Ray's chatter goes to the log file.
PROBE = "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR'); ray.shutdown()"


def host_port(address: str) -> tuple[str, int] | None:
    """HOST and PORT of `HOST:PORT` or `ray://HOST:PORT`; None for `auto` and other forms."""
    rest = address.removeprefix(CLIENT_PREFIX)
    host, _, port = rest.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


def probe_address(address: str, timeout_s: float, log_path: Path) -> None:
    """One line (BenchError, exit 2) unless a Ray cluster answers at `address` within timeout_s.
    A port that refuses connections is known at once; anything else is asked of Ray itself."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    hint = (f"check that the cluster is up (`ray status` on its head) and the address, and that this machine "
            f"runs the same Ray version; Ray's messages are in {log_path}")
    if (target := host_port(address)) is not None:
        try:
            socket.create_connection(target, timeout=timeout_s).close()
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
            raise BenchError(f"--address {address}: nothing answers at {target[0]}:{target[1]} ({reason}); "
                             f"check that the cluster is up (`ray status` on its head) and the address") from None
    client = address.startswith(CLIENT_PREFIX)
    deadline, attempt = time.monotonic() + timeout_s, 0
    while True:
        attempt += 1
        remaining = deadline - time.monotonic()
        with open(log_path, "ab") as log:
            log.write(f"--- bench: connecting to {address} (attempt {attempt}, {remaining:.0f} s left of the "
                      f"{timeout_s:g} s limit)\n".encode())
            log.flush()
            try:
                child = subprocess.run([sys.executable, "-c", PROBE, address], stdout=log, stderr=log,
                                       stdin=subprocess.DEVNULL, timeout=remaining, start_new_session=True)
            except subprocess.TimeoutExpired:
                raise BenchError(f"--address {address}: no Ray cluster answered within {timeout_s:g} s "
                                 f"(--connect-timeout); {hint}") from None
        if child.returncode == 0:
            return
        if not client or deadline - time.monotonic() < MIN_RETRY_S:
            raise BenchError(f"--address {address}: cannot connect to a Ray cluster; {hint}")


@contextlib.contextmanager
def ray_output_to(log_path: Path) -> Iterator[None]:
    """Everything written to file descriptor 2 (Ray's C++ core, its Python loggers, gRPC) goes to
    the log file; sys.stderr (the board, errors) keeps writing to the terminal through a copy."""
    sys.stderr.flush()
    terminal_fd = os.dup(2)
    terminal = os.fdopen(terminal_fd, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                         errors="backslashreplace")
    saved, log_fd = sys.stderr, os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    original = os.dup(2)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stderr = terminal
    try:
        yield
    finally:
        terminal.flush()
        sys.stderr = saved
        os.dup2(original, 2)
        os.close(original)
        terminal.close()


def cell_resources(resources: dict[str, float], nodes: list[dict[str, Any]], workers: int | None,
                   ranks: int = 1) -> dict[str, Any]:
    """What one cell asks of Ray: one GPU per rank where the cluster has GPUs, else a share of
    the smallest machine's CPUs (the whole of it without --workers, half with --workers 2, ...),
    at least one CPU per rank."""
    if resources.get("GPU", 0) >= 1:
        return {"num_gpus": ranks, "num_cpus": ranks}
    per_node = [n.get("Resources", {}).get("CPU", 0) for n in nodes if n.get("Alive", True)]
    smallest = int(min((c for c in per_node if c > 0), default=resources.get("CPU", 1)))
    return {"num_gpus": 0, "num_cpus": max(ranks, smallest // (workers or 1))}


def connect(address: str | None, connect_timeout_s: float, log_path: Path) -> None:
    import ray

    if address:
        probe_address(address, connect_timeout_s, log_path)
        attempts = CLIENT_INIT_ATTEMPTS if address.startswith(CLIENT_PREFIX) else 1
        for attempt in range(1, attempts + 1):
            try:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
                break
            except Exception as exc:  # it answered the probe a moment ago: say what Ray says
                if attempt < attempts:  # Ray Client's per-connection server died at start (see above)
                    ray.shutdown()
                    continue
                raise BenchError(f"--address {address}: cannot connect to a Ray cluster ({type(exc).__name__}: "
                                 f"{exc}); Ray's messages are in {log_path}") from None
    else:
        # a local Ray of this machine only: no dashboard, no worker log forwarding (cells report
        # through the board), stopped when the study ends. address="local" starts one even where
        # a Ray cluster already runs on the machine: without it ray.init joins that cluster, and
        # refuses the num_cpus and num_gpus given here with a traceback
        ray.init(address="local", num_cpus=os.cpu_count() or 1, num_gpus=gpu_count(), include_dashboard=False,
                 log_to_driver=False, logging_level="ERROR")


def run_on_ray(jobs: list[CellJob], board: BoardReporter, finished: Finished, address: str | None,
               workers: int | None, notice: Callable[[str], None], *, log_path: Path, claim: Claim = lambda job: True,
               connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S, retries: int = DEFAULT_RETRIES) -> None:
    try:
        import ray
        from ray.util.queue import Empty, Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    except ImportError:
        raise BenchError("--executor ray: Ray is not installed; pip install -e '.[cluster]' (make test installs "
                         "it)") from None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with ray_output_to(log_path):
        connect(address, connect_timeout_s, log_path)
        try:
            ranks = max((job.nproc_per_node for job in jobs), default=1)
            ask = cell_resources(ray.cluster_resources(), ray.nodes(), workers, ranks)
            alive = [n for n in ray.nodes() if n.get("Alive")]
            notice(f"ray: {len(alive)} nodes, {ray.cluster_resources().get('CPU', 0):g} CPUs, "
                   f"{ray.cluster_resources().get('GPU', 0):g} GPUs; each cell asks for {ask['num_gpus']} GPU and "
                   f"{ask['num_cpus']} CPU, retried up to {retries} times on a lost node; Ray's log: {log_path}")
            # the queue on the driver's own node: a lost worker node takes no events with it
            here = ray.get_runtime_context().get_node_id()
            events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy":
                                          NodeAffinitySchedulingStrategy(node_id=here, soft=False)})
            task = ray.remote(max_retries=retries, retry_exceptions=False)(ray_cell).options(**ask)
            threads = None if ask["num_gpus"] else worker_threads(ask["num_cpus"] // ranks)
            # every cell is a task at once: the driver claims them all as it submits them
            # the job as bytes: the worker announces the attempt before unpickling it (bench.studies.ray_task)
            pending = {task.remote(job.key, pickle.dumps(job), events, threads): job for job in jobs if claim(job)}
            attempts: dict[str, list[dict[str, Any]]] = {}
            labels = {job.key: job.label for job in jobs}

            def drain() -> list[tuple]:
                out = []
                while True:
                    try:
                        event = events.get_nowait()
                    except Empty:
                        return out
                    if event[0] == "start" and len(event) > 2:
                        tried = attempts.setdefault(event[1], [])
                        if tried:
                            notice(f"{labels.get(event[1], event[1])}: retried on node {event[2]['node_id'][:12]} "
                                   f"(attempt {len(tried) + 1}); node {tried[-1]['node_id'][:12]} was lost")
                        tried.append(event[2])
                    out.append(event)

            def placed(job: CellJob, record: dict[str, Any]) -> None:
                tried = attempts.get(job.key, [])
                placement = record.setdefault("study", dict(job.study)).setdefault("placement", {"executor": "ray"})
                placement["attempts"] = max(1, len(tried))
                placement["lost"] = [t["node_id"] for t in tried[:-1]]
                finished(job, record)

            def wait_some(refs: list) -> list:
                return ray.wait(refs, num_returns=1, timeout=POLL_S)[0]

            _drive(pending, board, placed, drain, ray.get, wait_some)
        finally:
            ray.shutdown()
