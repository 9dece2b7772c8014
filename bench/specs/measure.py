"""Measuring one network: its layers, parameters and FLOPs, and per device its inference (and
training) time per batch and peak CUDA memory, halving the batch on out-of-memory, with the
share of the machine's CPU that other processes took meanwhile (`CompetingLoad`).

The rules are stated in bench/specs/__init__.py; figures a device cannot give are null with
the reason, never 0.
"""

from __future__ import annotations

import copy
import gc
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.load import CompetingLoad, busy_note  # noqa: F401  (re-exported: specs and its tests use these names)
from bench.measure import Stopwatch, count_params, forward_flops_per_image
from bench.models.zoo import layer_counts

BYTES_PER_MB = 2**20  # MB here means MiB, as torch.cuda reports memory

# Weight of inception_v3's auxiliary-head loss while training, as in torchvision's reference recipe.
AUX_LOSS_WEIGHT = 0.4


@dataclass(frozen=True)
class SpecsOptions:
    """How each device is measured; the same for every network of one report."""

    amp: bool = False
    channels_last: bool = False
    train: bool = False
    repeats: int = 10
    warmup: int = 2


# =============================================================================== per-network figures

def network_figures(model: nn.Module, in_shape: tuple[int, int, int]) -> dict[str, Any]:
    """Layers, parameters and forward FLOPs of `model` for one image of `in_shape`."""
    features, decision = layer_counts(model)
    params = count_params(model)
    flops = forward_flops_per_image(model, in_shape)
    return {
        "feature_layers": features,
        "decision_layers": decision,
        "params": params["params"],
        "trainable_params": params["trainable_params"],
        "forward_flops": flops,
        "forward_gflops": flops / 1e9,
        "forward_gmacs": flops / 2e9,
        "train_gflops": 3 * flops / 1e9,
    }


# =============================================================================== timing one device

def _timing(seconds: list[float], batch: int) -> dict[str, Any]:
    ms = np.asarray(seconds) * 1000.0
    q1, median, q3 = np.percentile(ms, [25, 50, 75])
    return {
        "images_per_s": batch / (median / 1000.0) if median > 0 else None,
        "median_ms": float(median),
        "iqr_ms": float(q3 - q1),
        "timed_batches": len(seconds),
    }


def _time_batches(step: Callable[[], None], device: torch.device, batch: int,
                  options: SpecsOptions) -> tuple[dict, float | None]:
    """Timing of `step`, and on CUDA the peak memory allocated over the timed batches (weights,
    activations, gradients). The peak counter is reset after the warm-up: cuDNN's benchmark mode
    tries algorithms there with workspaces of their own, which are not the network's memory."""
    for _ in range(options.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    seconds = []
    for _ in range(options.repeats):
        watch = Stopwatch(device).start()  # synchronizes on CUDA before and after: finished work only
        step()
        seconds.append(watch.pause())
    peak = torch.cuda.max_memory_allocated(device) / BYTES_PER_MB if device.type == "cuda" else None
    return _timing(seconds, batch), peak


def _autocast(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()


def _placed(master: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """A copy of the network on `device`: the master stays untouched for the next device and phase."""
    model = copy.deepcopy(master).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _input(batch: int, in_shape: tuple[int, int, int], device: torch.device, channels_last: bool) -> torch.Tensor:
    x = torch.randn(batch, *in_shape, device=device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _loss(output: torch.Tensor | tuple[torch.Tensor, ...], labels: torch.Tensor) -> torch.Tensor:
    if isinstance(output, (tuple, list)):  # inception_v3 in train mode: (logits, aux_logits)
        main, *aux = output
        return F.cross_entropy(main, labels) + AUX_LOSS_WEIGHT * sum(F.cross_entropy(a, labels) for a in aux)
    return F.cross_entropy(output, labels)


def _inference(master: nn.Module, in_shape: tuple[int, int, int], device: torch.device, batch: int,
               options: SpecsOptions) -> tuple[dict, float | None]:
    model = _placed(master, device, options.channels_last).eval()
    x = _input(batch, in_shape, device, options.channels_last)

    def step() -> None:
        with torch.inference_mode(), _autocast(device, options.amp):
            model(x)

    return _time_batches(step, device, batch, options)


def _training(master: nn.Module, in_shape: tuple[int, int, int], num_classes: int, device: torch.device,
              batch: int, options: SpecsOptions) -> tuple[dict, float | None]:
    model = _placed(master, device, options.channels_last).train()
    x = _input(batch, in_shape, device, options.channels_last)
    labels = torch.randint(0, num_classes, (batch,), device=device)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, options.amp):
            loss = _loss(model(x), labels)
        loss.backward()
        optimizer.step()

    return _time_batches(step, device, batch, options)


def _measure_at(master: nn.Module, in_shape: tuple[int, int, int], num_classes: int, device: torch.device,
                batch: int, options: SpecsOptions) -> dict[str, Any]:
    """One device's figures at one batch; raises torch.OutOfMemoryError when it does not fit."""
    entry: dict[str, Any] = {"batch": batch, "note": None, "reason": None}
    with CompetingLoad() as load:
        _measure_phases(entry, master, in_shape, num_classes, device, batch, options)
    entry["competing_cpu_share"] = load.share
    return entry


def _measure_phases(entry: dict[str, Any], master: nn.Module, in_shape: tuple[int, int, int], num_classes: int,
                    device: torch.device, batch: int, options: SpecsOptions) -> None:
    entry["inference"], memory = _inference(master, in_shape, device, batch, options)
    if device.type == "cuda":
        entry["memory_mb"] = memory
    if options.train:
        try:
            entry["train"], memory = _training(master, in_shape, num_classes, device, batch, options)
            entry["train_reason"] = None
        except ValueError as exc:  # batch norm cannot train on one value per channel (batch 1)
            entry["train"], memory, entry["train_reason"] = None, None, str(exc).splitlines()[0]
        if device.type == "cuda":
            entry["train_memory_mb"] = memory


def release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# Allocation failures outside torch's caching allocator: cuDNN and cuBLAS workspaces and handles,
# raw CUDA allocations, and the CPU allocator's refusal (a plain RuntimeError: `--batch 100000000`
# on CPU was a traceback). They mean the batch does not fit, as torch.OutOfMemoryError does.
_OOM_MARKERS = ("CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
                "CUDA error: out of memory", "CUDA out of memory", "DefaultCPUAllocator: can't allocate memory")


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or any(marker in str(exc) for marker in _OOM_MARKERS)


def measure_device(master: nn.Module, in_shape: tuple[int, int, int], num_classes: int, device: torch.device,
                   batch: int, options: SpecsOptions) -> dict[str, Any]:
    """A device's entry of a row: measured at `batch`, halving the batch on out-of-memory."""
    oom_at: list[int] = []
    while True:
        try:
            entry = _measure_at(master, in_shape, num_classes, device, batch, options)
            break
        except torch.OutOfMemoryError:
            pass  # free memory outside the handler: its traceback still holds the batch's tensors
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
        oom_at.append(batch)
        release_memory(device)
        if batch == 1:
            return absent_entry(f"out of memory at every batch from {oom_at[0]} down to 1", device, options)
        batch //= 2
    if oom_at:
        entry["note"] = f"OOM at {' and '.join(map(str, oom_at))}, halved to {batch}"
    return entry



def absent_entry(reason: str, device: torch.device | str, options: SpecsOptions) -> dict[str, Any]:
    """A device entry whose figures are all null, with the reason."""
    device_type = torch.device(device).type
    entry: dict[str, Any] = {"batch": None, "note": None, "reason": reason, "inference": None}
    if device_type == "cuda":
        entry["memory_mb"] = None
    if options.train:
        entry["train"], entry["train_reason"] = None, reason
        if device_type == "cuda":
            entry["train_memory_mb"] = None
    return entry
