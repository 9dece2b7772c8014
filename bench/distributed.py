"""One run on many processes: torch.distributed.run starts the ranks, this module joins them.

One run on many devices is still one run (docs/design.md#8-studies-scale-out-and-interop). Each
rank trains on its slice of every global batch (the suite's batch_size is the global batch, so a suite is the
same recipe at any world size), DistributedDataParallel averages the gradients, evaluation
is sharded and its counts summed, rank 0 keeps the clock and writes the one result file.

`Dist` says where this process stands (rank, world size, nodes, backend); `SINGLE` is the
one-process case, in which every helper here is a no-op, so the trainer has one code path.
`launch` starts `bench run ...` under torch.distributed.run (PyTorch's own launcher, the
library behind `torchrun`); `torchrun -m bench run ...` reaches the same worker code.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bench.errors import EXIT_BROKEN, EXIT_INTERRUPTED, EXIT_OK, BenchError

# A collective that waits longer than this ends the run (failed) instead of hanging. It must
# cover the longest gap between two ranks reaching the same collective: a first torch.compile
# on one rank while the others wait at the clock's barrier, on a slow machine.
DEFAULT_TIMEOUT_S = 1800.0

# The launcher flags `bench run` takes; they are the launcher's, so the workers never see them.
LAUNCH_FLAGS = ("--nproc-per-node", "--nnodes", "--node-rank", "--rdzv-endpoint", "--dist-timeout", "--rdzv-timeout")

# How long the nodes of a several-node run wait for each other at the start (torch's static
# rendezvous): a node that never arrives ends the run after this long, in one line.
DEFAULT_RDZV_TIMEOUT_S = 900


class RendezvousFailed(BenchError):
    """The nodes of a run did not all meet: the run never started (nothing written)."""

    exit_code = 3


class Terminated(BaseException):
    """SIGTERM in a worker: the launcher stops the ranks when another rank died or the job was
    cancelled. A BaseException, like KeyboardInterrupt, so no library's `except Exception` eats it;
    the invocation records it as failed and keeps the finished runs."""


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    nproc_per_node: int = 1
    nnodes: int = 1
    backend: str | None = None           # None: no process group (one process)
    device: torch.device | None = None   # this rank's device, when launched
    timeout_s: float = DEFAULT_TIMEOUT_S
    ranks: list[dict[str, Any]] = field(default_factory=list, compare=False)

    @property
    def active(self) -> bool:
        return self.backend is not None and self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world_size

    # ------------------------------------------------------------ recipe ----

    def rank_batch(self, batch_size: int, key: str = "recipe.batch_size") -> int:
        """This rank's share of the global batch; the global batch must split evenly, or ranks
        would train on different batch sizes and the recipe would change with the world size."""
        if batch_size % self.world_size:
            raise BenchError(f"{key} {batch_size} does not split over world size {self.world_size}; "
                             f"use a multiple of {self.world_size}, or another --nproc-per-node/--nnodes")
        return batch_size // self.world_size

    def test_shard(self, images, labels):
        """Every world_size-th test image from this rank's position: the shards partition the test
        set, so the summed correct counts are exact top-1 over all of it."""
        if not self.active:
            return images, labels
        return images[self.rank::self.world_size], labels[self.rank::self.world_size]

    # ------------------------------------------------------------ model ----

    def prepare_model(self, model: nn.Module, sync_bn: bool, device: torch.device) -> nn.Module:
        """SyncBatchNorm when the suite asks for it (batch statistics over the global batch);
        otherwise each rank normalizes with its own slice's statistics."""
        if not (self.active and sync_bn):
            return model
        if device.type != "cuda":
            raise BenchError("recipe.sync_bn needs CUDA: torch's SyncBatchNorm does not run on CPU; "
                             "use --set recipe.sync_bn=false for a CPU run")
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def wrap(self, model: nn.Module, device: torch.device, compiled: bool) -> nn.Module:
        """DistributedDataParallel around the model (the model itself in one process).
        static_graph: every step uses every parameter in the same order, so DDP can fix its
        buckets after the first step; it is left to the compiler's DDPOptimizer when compiling.
        gradient_as_bucket_view: gradients live in the buckets, no second copy."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                       static_graph=not compiled, gradient_as_bucket_view=True)

    def sync_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (BN running statistics) on every rank before an evaluation, so every
        shard of the test set is judged by the same model; DDP does the same before each training
        forward, and with sync_bn they are already equal."""
        if not self.active:
            return
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, src=0)

    # ------------------------------------------------------------ collectives ----

    def barrier(self) -> None:
        if not self.active:
            return
        if self.backend == "nccl":
            torch.distributed.barrier(device_ids=[self.device.index])
        else:
            torch.distributed.barrier()

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            torch.distributed.all_reduce(tensor)
        return tensor

    def mean_(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.active:
            torch.distributed.all_reduce(tensor)
            tensor /= self.world_size
        return tensor

    def gather(self, value: Any) -> list[Any]:
        """Every rank's value, on every rank, in rank order."""
        if not self.active:
            return [value]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, value)
        return out

    def describe(self) -> dict[str, Any] | None:
        """The machine description's distributed part (env.distributed in the result)."""
        if self.backend is None:
            return None
        return {"world_size": self.world_size, "nnodes": self.nnodes, "nproc_per_node": self.nproc_per_node,
                "backend": self.backend, "timeout_s": self.timeout_s, "ranks": self.ranks}


SINGLE = Dist()


def launched() -> bool:
    """True in a process that torch.distributed.run (torchrun) started."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def _rank_fingerprint(rank: int, local_rank: int, device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"rank": rank, "local_rank": local_rank,
                            "node_rank": int(os.environ.get("GROUP_RANK", 0)), "hostname": socket.gethostname(),
                            "device": str(device), "pid": os.getpid(), "gpu": None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {"name": props.name, "memory_gb": props.total_memory / 2**30,
                       "capability": f"{props.major}.{props.minor}", "uuid": str(getattr(props, "uuid", "")) or None,
                       "pci_bus_id": getattr(props, "pci_bus_id", None)}
    return info


def join(device: torch.device, timeout_s: float | None = None) -> Dist:
    """Joins the process group torchrun set up: NCCL for CUDA, gloo for CPU. Each rank takes
    the GPU of its local rank. The collectives' timeout turns a hung or vanished peer into an
    error instead of a hang; SIGTERM (the launcher stopping the ranks) becomes Terminated."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    nproc = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    nnodes = int(os.environ.get("GROUP_WORLD_SIZE", max(1, world // max(nproc, 1))))
    timeout_s = timeout_s or float(os.environ.get("BENCH_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise BenchError(f"local rank {local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                             "lower --nproc-per-node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    _remember_ctrl_c()
    _terminate_on_sigterm()
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s),
                                             device_id=device if device.type == "cuda" else None)
    me = Dist(rank=rank, world_size=world, local_rank=local_rank, nproc_per_node=nproc, nnodes=nnodes,
              backend=backend, device=device, timeout_s=timeout_s)
    ranks = me.gather(_rank_fingerprint(rank, local_rank, device))
    return Dist(rank=rank, world_size=world, local_rank=local_rank, nproc_per_node=nproc, nnodes=nnodes,
                backend=backend, device=device, timeout_s=timeout_s, ranks=ranks)


def leave(dist: Dist) -> None:
    if dist.backend is not None and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def exit_rank(code: int) -> None:
    """Ends a torchrun rank with `code` without the interpreter's teardown. With gloo on CPU
    (torch 2.13), about one rank in 20-40 aborts in teardown ("terminate called without an active
    exception", SIGABRT, no Python frame) after everything was done and saved, turning a finished
    run into a failed launch; the result file is written atomically before this point and the
    process group is gone, so nothing is lost by skipping the teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


# How long a rank whose collective failed waits for its own Ctrl-C: with Ctrl-C every rank is
# signalled, but a rank blocked in a collective may see a faster peer's exit before its own signal.
SIGNAL_GRACE_S = 0.5


def settle(exc: BaseException) -> BaseException:
    """What ended this rank, once its own signals are in. From here the rank only saves and
    exits, so the launcher's SIGTERM is ignored (it would cut the save short; the launcher kills
    a rank that does not exit). A collective that failed because a peer left on Ctrl-C is this
    rank's Ctrl-C too: the signal that reaches it within the grace becomes the cause."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # A SIGTERM (the launcher stopping the ranks after a peer ended) can land while this rank's own
    # Ctrl-C is still on its way up: a KeyboardInterrupt anywhere in the chain is the cause. (On
    # Ctrl-C, torch 2.13's launcher forwards SIGINT to each rank's own session, rank 0 first.)
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        cause = cause.__context__
    if _ctrl_c.seen:  # its KeyboardInterrupt was raised where Python drops exceptions (see _remember_ctrl_c)
        interrupt = KeyboardInterrupt()
        interrupt.__context__ = exc
        return interrupt
    if isinstance(exc, Terminated):
        return exc
    try:
        time.sleep(SIGNAL_GRACE_S)
    except KeyboardInterrupt as interrupt:
        return interrupt
    return exc


class _CtrlC:
    seen = False


_ctrl_c = _CtrlC()


def _remember_ctrl_c() -> None:
    """Python's own Ctrl-C handler, which also notes that the signal came. A KeyboardInterrupt
    raised while a finalizer or weakref callback runs (the garbage collector can run them at any
    allocation) is printed as "Exception ignored" and dropped: the rank trains on into its next
    collective, which fails once the peers have left on their Ctrl-C, and without the note that
    failure would be recorded as the cause instead of the interrupt."""
    _ctrl_c.seen = False

    def handler(signum, frame):
        _ctrl_c.seen = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)


def _terminate_on_sigterm() -> None:
    def handler(signum, frame):  # once: a second SIGTERM while the record is saved is ignored
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated("stopped by the launcher (SIGTERM): another rank ended or the job was cancelled")

    signal.signal(signal.SIGTERM, handler)


# ---------------------------------------------------------------- the launcher ----

def worker_argv(argv: list[str]) -> list[str]:
    """`bench run ...` as the workers get it: the launcher's own flags taken out."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCH_FLAGS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def launch(argv: list[str], *, nproc_per_node: int, nnodes: int = 1, node_rank: int = 0,
           rdzv_endpoint: str | None = None, timeout_s: float | None = None, cpu: bool = False,
           notice=lambda message: None, rdzv_timeout_s: float | None = None) -> int:
    """Runs `python -m bench <argv>` on nproc_per_node ranks of this node (one of nnodes) under
    torch.distributed.run and returns the exit code: rank 0's when it ended on its own terms,
    EXIT_BROKEN when a rank died, EXIT_INTERRUPTED when the launcher was interrupted (bench.errors)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import RendezvousError
    from torch.distributed.run import get_args_parser, run

    if nproc_per_node < 1 or nnodes < 1:
        raise BenchError("--nproc-per-node and --nnodes must be at least 1")
    if not 0 <= node_rank < nnodes:
        raise BenchError(f"--node-rank {node_rank} is not in 0..{nnodes - 1}")
    if nnodes > 1 and not rdzv_endpoint:
        raise BenchError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (node 0's address, the same on every node)")
    if rdzv_endpoint and (":" not in rdzv_endpoint or not rdzv_endpoint.rsplit(":", 1)[1].isdigit()):
        raise BenchError(f"--rdzv-endpoint {rdzv_endpoint!r}: give HOST:PORT, e.g. node0.example:29500")
    launcher = ["--nproc-per-node", str(nproc_per_node), "--nnodes", str(nnodes), "--max-restarts", "0",
                "--monitor-interval", "0.5"]
    if rdzv_endpoint:
        # static rendezvous: node 0 hosts the store at HOST:PORT, every node names its rank
        launcher += ["--node-rank", str(node_rank), "--rdzv-endpoint", rdzv_endpoint, "--rdzv-conf",
                     f"timeout={max(1, round(rdzv_timeout_s or DEFAULT_RDZV_TIMEOUT_S))}"]
    else:
        launcher += ["--standalone"]  # one node: a store on a free local port
    env_updates = {}
    if "OMP_NUM_THREADS" not in os.environ:
        # the launcher would set 1 (with a warning); on CPU the ranks share the node's cores
        env_updates["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // nproc_per_node) if cpu else 1)
    if timeout_s:
        env_updates["BENCH_DIST_TIMEOUT_S"] = str(timeout_s)
    args = get_args_parser().parse_args([*launcher, "-m", "bench", *worker_argv(argv)])
    saved = {k: os.environ.get(k) for k in env_updates}
    os.environ.update(env_updates)
    try:
        run(args)
        return EXIT_OK
    except (torch.distributed.DistError, RendezvousError) as exc:
        if nnodes == 1:
            raise
        raise RendezvousFailed(f"node {node_rank}: the {nnodes} nodes did not all meet at {rdzv_endpoint} within "
                               f"{rdzv_timeout_s or DEFAULT_RDZV_TIMEOUT_S:g} s (--rdzv-timeout): {str(exc).rstrip('.')}; start "
                               "every node with the same --rdzv-endpoint (node 0's address) and --nnodes, each "
                               "with its own --node-rank") from None
    except ChildFailedError as failed:
        return _exit_code(failed.failures, notice)
    except SignalException as stop:
        notice(f"the launcher got {stop.sigval.name}; the ranks were stopped")
        return EXIT_INTERRUPTED if stop.sigval == signal.SIGINT else EXIT_BROKEN
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _exit_code(failures: dict[int, Any], notice) -> int:
    """Rank 0 decides the exit code when it ended by itself (a FAIL verdict is exit 1, a failed
    run 3, an interrupted one 130); a rank killed by a signal makes the invocation broken (3)."""
    died = {rank: f for rank, f in failures.items() if f.exitcode < 0}
    for rank, f in sorted(died.items()):
        # the launcher itself stops the remaining ranks with SIGTERM once one has ended
        stopped = f.exitcode == -signal.SIGTERM and len(failures) > 1
        notice(f"rank {rank} was stopped by the launcher (SIGTERM)" if stopped else
               f"rank {rank} died ({f.signal_name()})")
    if 0 in failures and failures[0].exitcode > 0:
        return failures[0].exitcode
    if died:
        return EXIT_BROKEN
    return max(f.exitcode for f in failures.values())


def main_process_output() -> bool:
    """Only rank 0 prints (progress, tables, errors the other ranks share)."""
    return not launched() or os.environ.get("RANK") == "0"


__all__ = ["DEFAULT_TIMEOUT_S", "Dist", "SINGLE", "Terminated", "join", "launch", "launched", "leave",
           "main_process_output", "worker_argv"]
