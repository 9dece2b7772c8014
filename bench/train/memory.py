"""Peak training memory on CPU: the training's own tensor allocations, per run.

CUDA has torch.cuda.max_memory_allocated. On CPU the process's resident-set high-water mark
is no per-run figure: it holds the data set, earlier runs, the Python heap and whatever the
allocator kept. What a run's training itself needs is measured instead, outside the timed
region, on one steady-state training step (the second of two, so the optimizer's state
already exists, as it does in every step but the first):

    peak = state + step peak
    state      the bytes of the tensors that live across steps: parameters, buffers, their
               gradients and the optimizer's state, each storage counted once
    step peak  the highest net amount the step allocates above that, from torch's CPU
               allocator as the profiler records it (torch.profiler with profile_memory:
               every allocation and free with its size and time, summed in time order)

so the memory cost of an unrolled graph (the activations autograd keeps for backward, and
the temporaries of the backward) is in the step peak. The input batch exists before the
step and is not counted; nor are allocations by libraries outside torch's allocator.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

METHOD = ("state (parameters, buffers, gradients, optimizer state; each storage once) + the peak net "
          "allocation of one steady-state training step recorded by torch.profiler(profile_memory=True)")


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | Any) -> int:
    seen: dict[int, int] = {}

    def add(tensors: Iterable[Any]) -> None:
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                storage = t.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()

    add(model.state_dict(keep_vars=True).values())
    add(p.grad for p in model.parameters() if p.grad is not None)
    for state in _optimizer_states(optimizer):
        add(state.values())
    return sum(seen.values())


def _optimizer_states(optimizer: Any) -> Iterable[dict]:
    parts = getattr(optimizer, "parts", None) or [optimizer]  # bench.train.optim.Combined holds several
    for part in parts:
        yield from getattr(part, "state", {}).values()


def step_peak_bytes(step: Callable[[], Any]) -> int:
    """The highest net allocation (bytes) of torch's CPU allocator while `step()` runs."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with _native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    sizes: list[tuple[int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == torch.device("cpu").type:
            sizes.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    sizes.sort()
    running = peak = 0
    for _, size in sizes:
        running += size
        peak = max(peak, running)
    return peak


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """The profiler's native libraries write start/stop notes (and a warning about blocks freed
    that were allocated before it started, which is expected here) straight to file
    descriptor 2, past Python; they would land in every run's output. Python-level errors
    still propagate as exceptions and are reported after the descriptor is restored."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # a replaced sys.stderr (pytest capture): nothing to hide
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


def cpu_training_peak(model: nn.Module, optimizer: Any, step: Callable[[], Any]) -> dict[str, Any]:
    """Runs `step` twice (the caller puts the model and optimizer back afterwards) and returns
    the figures for the run record."""
    step()  # the optimizer's state and every first allocation of a step
    state = state_bytes(model, optimizer)
    peak = step_peak_bytes(step)
    return {"train_peak_memory_mb": (state + peak) / 2**20, "train_state_memory_mb": state / 2**20,
            "train_step_peak_mb": peak / 2**20, "train_peak_memory_method": METHOD}
