"""`bench specs`: the network specification table.

For each network: input shape, classes, feature and decision layers, parameters,
forward GFLOPs and GMACs per image, and per device the inference (and, with
`train`, training) throughput at a fixed batch, plus the peak GPU memory on CUDA.

How the figures are defined (they go into the report's `settings` too):

* Layers are counted by `bench.models.zoo.layer_counts` (convs outside the head are
  feature layers; linear layers and head convs are decision layers).
* FLOPs are forward only, counted by torch's FlopCounterMode (a multiply-add is 2
  FLOPs; conv, linear and matmul ops -- norms, activations and pooling are not
  counted); MACs = FLOPs / 2. Training is given as 3x forward rather than counted:
  FlopCounterMode overcounts the backward of grouped (depthwise) convolutions.
* Timing follows timm's benchmark script: warm-up batches, synchronize (on CUDA),
  then each of N batches timed alone (synchronized before every clock reading); the
  figure is the median with the IQR, and images/s = batch / median.
* On out-of-memory the batch is halved and the device measured again; the row says so.

Figures a device cannot give are null with the reason, never 0.
"""

from __future__ import annotations

import argparse
import copy
import csv
import difflib
import gc
import io
import json
import math
import os
import re
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch import nn

from bench.env import fingerprint
from bench.errors import BenchError
from bench.measure import Stopwatch, count_params, forward_flops_per_image
from bench.models import build_model, model_entry, model_names
from bench.models.zoo import layer_counts
from bench.progress import Reporter, RichReporter
from bench.results import link_new, staged_file

SCHEMA_VERSION = 1
DEFAULT_BATCH = {"cpu": 8, "cuda": 64}
DEVICE_CHOICES = ("cpu", "cuda", "all")
DEFAULT_OUT = Path("results/specs")
BYTES_PER_MB = 2**20  # MB here means MiB, as torch.cuda reports memory

# Weight of inception_v3's auxiliary-head loss while training, as in torchvision's reference recipe.
AUX_LOSS_WEIGHT = 0.4

TIMING_RULE = ("timm-style: warm-up batches, synchronize on CUDA, then each timed batch alone; "
               "median and IQR of the timed batches, images/s = batch / median")
FLOPS_RULE = ("forward FLOPs per image by torch FlopCounterMode in eval mode (multiply-add = 2 FLOPs; "
              "conv/linear/matmul only); GMACs = GFLOPs / 2; training GFLOPs = 3 x forward (not counted: "
              "FlopCounterMode overcounts the backward of grouped convolutions)")
TRAIN_STEP_RULE = ("forward, cross-entropy on random labels, backward, SGD step (momentum 0.9); "
                   f"inception_v3's auxiliary head trains too (loss weight {AUX_LOSS_WEIGHT})")


@dataclass(frozen=True)
class SpecsOptions:
    """How each device is measured; the same for every network of one report."""

    amp: bool = False
    channels_last: bool = False
    train: bool = False
    repeats: int = 10
    warmup: int = 2


# Above this share of the machine's CPU time used by other processes, a row says its timings are suspect.
BUSY_MACHINE_SHARE = 0.2


class CompetingLoad:
    """The share of the machine's CPU time that *other* processes used during a region.

    Timings on a shared machine are only as good as the machine was quiet: on a 2-core
    box, a second busy process can make a 2-thread torch forward of a small net 100x
    slower (OpenMP threads wait for a descheduled sibling). Measured as the machine's
    busy time (Linux /proc/stat, steal included) less this process's own CPU time, per
    wall second per core: 0 is a quiet machine, 0.5 one core of two busy elsewhere.
    `share` is None where /proc/stat cannot be read.
    """

    def __init__(self) -> None:
        self.share: float | None = None

    @staticmethod
    def _machine_busy_s() -> float | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        # user nice system idle iowait irq softirq steal ...: all but idle and iowait is busy
        busy = sum(fields[:8]) - fields[3] - fields[4]
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_cpu_s() -> float:
        t = os.times()
        return t.user + t.system

    def __enter__(self) -> "CompetingLoad":
        self._start = (self._machine_busy_s(), self._own_cpu_s(), time.perf_counter())
        return self

    def __exit__(self, *exc: object) -> None:
        busy0, own0, t0 = self._start
        busy1, own1, wall = self._machine_busy_s(), self._own_cpu_s(), time.perf_counter() - t0
        if busy0 is None or busy1 is None or wall <= 0:
            return
        others = max(0.0, (busy1 - busy0) - (own1 - own0))
        self.share = min(1.0, others / (wall * (os.cpu_count() or 1)))


# =============================================================================== choosing what to measure

def default_models() -> list[str]:
    """The zoo in its own order, then this project's training nets (the registry's order)."""
    return model_names("zoo") + model_names("training")


def network_defaults(name: str) -> tuple[int, tuple[int, int, int]]:
    """(num_classes, input shape) a network is specified at unless the input is overridden."""
    entry = model_entry(name, where="--models")
    return entry.num_classes, entry.input_shape


def check_models(names: list[str]) -> list[str]:
    known = model_names()
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3)
            hint = f"did you mean {', '.join(close)}?" if close else f"known models: {', '.join(known)}"
            raise BenchError(f"--models: unknown model '{name}'; {hint}")
    if not names:
        raise BenchError("--models: no model named; give a comma-separated list such as resnet18,vgg16")
    return names


def resolve_devices(devices: list[str]) -> tuple[list[str], dict[str, str]]:
    """(devices to measure, {absent device: why}) from the user's choice."""
    cuda = torch.cuda.is_available()
    measured: list[str] = []
    absent: dict[str, str] = {}
    for choice in devices:
        if choice not in DEVICE_CHOICES:
            raise BenchError(f"--device: unknown device '{choice}'; choose one of {', '.join(DEVICE_CHOICES)}")
        if choice == "cuda" and not cuda:
            raise BenchError("--device cuda: CUDA is not available here (torch.cuda.is_available() is False); "
                             "use --device cpu or all")
        wanted = ["cpu", "cuda"] if choice == "all" else [choice]
        for name in wanted:
            if name == "cuda" and not cuda:
                absent["cuda"] = "CUDA not available (torch.cuda.is_available() is False)"
            elif name not in measured:
                measured.append(name)
    if not measured:
        raise BenchError("--device: no device chosen; use cpu, cuda or all")
    return measured, absent


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


def _release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# Allocation failures outside torch's caching allocator: cuDNN and cuBLAS workspaces and handles,
# and raw CUDA allocations. They mean the batch does not fit, as torch.OutOfMemoryError does.
_OOM_MARKERS = ("CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
                "CUDA error: out of memory", "CUDA out of memory")


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
        _release_memory(device)
        if batch == 1:
            return _absent_entry(f"out of memory at every batch from {oom_at[0]} down to 1", device, options)
        batch //= 2
    if oom_at:
        entry["note"] = f"OOM at {' and '.join(map(str, oom_at))}, halved to {batch}"
    return entry


def _busy_note(share: float | None) -> str | None:
    if share is None or share <= BUSY_MACHINE_SHARE:
        return None
    return f"busy: {share:.0%} CPU elsewhere"


def _absent_entry(reason: str, device: torch.device | str, options: SpecsOptions) -> dict[str, Any]:
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


# =============================================================================== the report

def run_specs(models: list[str] | None, devices: list[str], batch: int | None,
              input_shape: tuple[int, int, int] | None, amp: bool, channels_last: bool, train: bool,
              reporter: Reporter, repeats: int = 10, warmup: int = 2, threads: int | None = None) -> dict[str, Any]:
    """Measure every network on every device; returns the JSON-able report (see the module docstring).

    `threads` sets torch's CPU threads for the run (default: torch's own choice, all cores).
    """
    names = check_models(list(models) if models is not None else default_models())
    measured, absent = resolve_devices(devices)
    if batch is not None and batch < 1:
        raise BenchError(f"--batch: must be at least 1, got {batch}")
    if repeats < 1 or warmup < 0:
        raise BenchError(f"--repeats must be at least 1 and --warmup at least 0, got {repeats} and {warmup}")
    if threads is not None and threads < 1:
        raise BenchError(f"--threads: must be at least 1, got {threads}")
    options = SpecsOptions(amp=amp, channels_last=channels_last, train=train, repeats=repeats, warmup=warmup)
    batches = {d: batch if batch is not None else DEFAULT_BATCH[d] for d in measured}

    saved_cudnn_benchmark, saved_threads = torch.backends.cudnn.benchmark, torch.get_num_threads()
    torch.backends.cudnn.benchmark = "cuda" in measured  # as timm's benchmark does: let cuDNN pick its kernels
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        report = _new_report(names, measured, absent, batches, batch, input_shape, options)
        with reporter.task("specs", total=len(names) * len(measured)) as task, CompetingLoad() as load:
            for name in names:
                row = _network_row(name, input_shape, measured, absent, batches, options, task)
                report["rows"].append(row)
                for note in (e["note"] for e in row["devices"].values() if e.get("note")):
                    reporter.notice(f"{name}: {note}")
    finally:
        torch.backends.cudnn.benchmark = saved_cudnn_benchmark
        torch.set_num_threads(saved_threads)
    report["competing_cpu_share"] = load.share
    busy = _busy_note(load.share)
    if busy:
        # measured here: with a busy neighbour one thread is 2x (big nets) to 100x (tiny nets) faster than two
        hint = "; --threads 1 suffers far less from a busy neighbour" if report["settings"]["torch_threads"] > 1 else ""
        reporter.notice(f"specs: other processes used {load.share:.0%} of the machine's CPU during the run: "
                        f"timings suspect{hint}")
    return report


def _new_report(names: list[str], measured: list[str], absent: dict[str, str], batches: dict[str, int],
                batch: int | None, input_shape: tuple[int, int, int] | None, options: SpecsOptions) -> dict[str, Any]:
    """The report's head (environment and settings), before any row is measured."""
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "specs",
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "env": fingerprint(torch.device("cuda" if "cuda" in measured else "cpu")),
        "settings": {
            "models": names,
            "devices": {**{d: {"measured": True, "batch": batches[d], "reason": None} for d in measured},
                        **{d: {"measured": False, "batch": None, "reason": why} for d, why in absent.items()}},
            "batch_rule": (f"--batch {batch} on every device" if batch is not None else
                           f"default: {DEFAULT_BATCH['cuda']} on CUDA, {DEFAULT_BATCH['cpu']} on CPU"),
            "input_shape": list(input_shape) if input_shape else None,
            "amp": options.amp,
            "amp_dtype": "bfloat16" if options.amp else None,
            "channels_last": options.channels_last,
            "train": options.train,
            "repeats": options.repeats,
            "warmup": options.warmup,
            "torch_threads": torch.get_num_threads(),
            "cudnn_benchmark": "cuda" in measured,
            "timing": TIMING_RULE,
            "flops": FLOPS_RULE,
            "train_step": TRAIN_STEP_RULE if options.train else None,
        },
        "competing_cpu_share": None,
        "rows": [],
    }


def _network_row(name: str, input_shape: tuple[int, int, int] | None, measured: list[str], absent: dict[str, str],
                 batches: dict[str, int], options: SpecsOptions, task: Any) -> dict[str, Any]:
    num_classes, default_shape = network_defaults(name)
    in_shape = tuple(input_shape) if input_shape else default_shape
    master = build_model(name, num_classes, in_shape, where="--models")
    try:
        figures = network_figures(master, in_shape)
    except RuntimeError as exc:  # e.g. an input too small for the network's pooling, or the wrong channels
        raise BenchError(f"--input: {name} does not run on a {_shape_text(in_shape)} input "
                         f"({str(exc).splitlines()[0]})") from None
    row: dict[str, Any] = {"name": name, "input": list(in_shape), "num_classes": num_classes, **figures,
                           "devices": {}}
    for device_name in measured:
        entry = measure_device(master, in_shape, num_classes, torch.device(device_name), batches[device_name],
                               options)
        row["devices"][device_name] = entry
        inference = entry["inference"] or {}
        task.advance(1, net=name, device=device_name, **{"img/s": inference.get("images_per_s")})
        _release_memory(torch.device(device_name))
    for device_name, why in absent.items():
        row["devices"][device_name] = _absent_entry(why, device_name, options)
    return row


# =============================================================================== tables

def _sig(value: float | None, digits: int = 3) -> str:
    """`digits` significant figures without exponent notation (12,345 / 15.5 / 0.000846); None is a dash."""
    if value is None:
        return "—"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{decimals}f}"


def _shape_text(shape: list[int] | tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def _row_notes(row: dict[str, Any]) -> str:
    notes = []
    for device_name, entry in row["devices"].items():
        if entry.get("note"):
            notes.append(f"{device_name}: {entry['note']}")
        if entry.get("reason") is None and entry.get("train_reason"):
            notes.append(f"{device_name} train: {entry['train_reason']}")
        busy = _busy_note(entry.get("competing_cpu_share"))
        if busy:
            notes.append(f"{device_name}: {busy}")
    return "; ".join(notes)


def _ms_with_iqr(timing: dict[str, Any] | None) -> str:
    if not timing:
        return "—"
    return f"{_sig(timing['median_ms'])} [{_sig(timing['iqr_ms'], 2)}]"


def _count(value: int) -> str:
    return f"{value:,}"


# (header, cell text from a row); a header's line break is kept on screen, a space in Markdown
Column = tuple[str, Callable[[dict[str, Any]], str]]


def _columns(report: dict[str, Any]) -> list[Column]:
    """The human table's columns, shared by the screen table and the Markdown file.

    A device that was not measured gets one column of dashes (the reason is in the
    settings lines); the JSON and CSV keep its every null figure.
    """
    train = report["settings"]["train"]
    columns: list[Column] = [
        ("network", lambda r: r["name"]),
        ("input", lambda r: _shape_text(r["input"])),
        ("classes", lambda r: str(r["num_classes"])),
        ("feature\nlayers", lambda r: str(r["feature_layers"])),
        ("decision\nlayers", lambda r: str(r["decision_layers"])),
        ("params", lambda r: _count(r["params"])),
        ("trainable\nparams", lambda r: _count(r["trainable_params"])),
        ("fwd\nGFLOPs", lambda r: _sig(r["forward_gflops"])),
        ("fwd\nGMACs", lambda r: _sig(r["forward_gmacs"])),
        ("train\nGFLOPs", lambda r: _sig(r["train_gflops"])),
    ]
    for d, how in report["settings"]["devices"].items():
        if not how["measured"]:
            columns.append((f"{d}\nimg/s", lambda r: "—"))
            continue

        def entry(r: dict[str, Any], d: str = d) -> dict[str, Any]:
            return r["devices"][d]
        columns += [
            (f"{d}\nbatch", lambda r, e=entry: "—" if e(r)["batch"] is None else str(e(r)["batch"])),
            (f"{d}\nimg/s", lambda r, e=entry: _sig((e(r)["inference"] or {}).get("images_per_s"))),
            (f"{d} ms\n[IQR]", lambda r, e=entry: _ms_with_iqr(e(r)["inference"])),
        ]
        if train:
            columns += [
                (f"{d} train\nimg/s", lambda r, e=entry: _sig((e(r)["train"] or {}).get("images_per_s"))),
                (f"{d} train\nms [IQR]", lambda r, e=entry: _ms_with_iqr(e(r)["train"])),
            ]
        if d == "cuda":
            columns.append(("cuda\nMB", lambda r, e=entry: _sig(e(r)["memory_mb"])))
            if train:
                columns.append(("cuda train\nMB", lambda r, e=entry: _sig(e(r)["train_memory_mb"])))
    columns.append(("note", _row_notes))
    return columns


def _load_line(share: float | None) -> str:
    if share is None:
        return "competing load: not measured (no /proc/stat)"
    suspect = " (timings suspect)" if _busy_note(share) else ""
    return f"competing load: other processes used {share:.0%} of the machine's CPU during the run{suspect}"


def _settings_lines(report: dict[str, Any]) -> list[str]:
    s, env = report["settings"], report["env"]
    cpu = env.get("cpu") or {}
    on_gpu = s["devices"].get("cuda", {}).get("measured") and env.get("gpu")
    machine = f"{env['gpu']['name']}, " if on_gpu else ""
    lines = [
        f"{env.get('hostname')}: {machine}{cpu.get('model')} ({cpu.get('cores')} cores), torch {env.get('torch')}, "
        f"created {report['created']}",
        "devices: " + ", ".join(f"{d} batch {v['batch']}" if v["measured"] else f"{d} not measured ({v['reason']})"
                                for d, v in s["devices"].items()) + f" ({s['batch_rule']})",
        f"amp (bf16 autocast): {'on' if s['amp'] else 'off'}; channels_last: {'on' if s['channels_last'] else 'off'}; "
        f"training measured: {'yes' if s['train'] else 'no'}",
        f"timing: {s['timing']}; {s['repeats']} timed batches after {s['warmup']} warm-up; "
        f"torch CPU threads {s['torch_threads']}",
        _load_line(report["competing_cpu_share"]),
        f"FLOPs: {s['flops']}",
    ]
    if s["train"]:
        lines.append(f"training step: {s['train_step']}")
    return lines


def specs_table(report: dict[str, Any]) -> Table:
    """The report as a rich table for the screen."""
    table = Table(title="network specifications", caption="\n".join(_settings_lines(report)), caption_justify="left")
    columns = _columns(report)
    for header, _ in columns:
        if header == "note":
            table.add_column(header, overflow="fold")
        else:  # figures stay whole on one line; a narrow screen drops columns' padding first
            table.add_column(header, justify="left" if header in ("network", "input") else "right", no_wrap=True)
    for row in report["rows"]:
        table.add_row(*(cell(row) for _, cell in columns))
    return table


def specs_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown document: the settings, then one table row per network."""
    columns = _columns(report)

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["# Network specifications", ""]
    lines += [f"- {cell(line)}" for line in _settings_lines(report)]
    lines += ["", "| " + " | ".join(h.replace("\n", " ") for h, _ in columns) + " |",
              "|" + "|".join(":---" if h in ("network", "input", "note") else "---:" for h, _ in columns) + "|"]
    for row in report["rows"]:
        lines.append("| " + " | ".join(cell(fn(row)) for _, fn in columns) + " |")
    return "\n".join(lines) + "\n"


def _flat_row(row: dict[str, Any], devices: list[str], train: bool) -> dict[str, Any]:
    """One row with raw numbers under machine-friendly keys (the CSV's columns)."""
    flat: dict[str, Any] = {key: row[key] for key in (
        "name", "num_classes", "feature_layers", "decision_layers", "params", "trainable_params",
        "forward_flops", "forward_gflops", "forward_gmacs", "train_gflops")}
    flat["input"] = _shape_text(row["input"])
    for d in devices:
        entry = row["devices"][d]
        flat[f"{d}_batch"] = entry["batch"]
        phases = [("infer", entry["inference"])] + ([("train", entry.get("train"))] if train else [])
        for phase, timing in phases:
            for key in ("images_per_s", "median_ms", "iqr_ms"):
                flat[f"{d}_{phase}_{key}"] = (timing or {}).get(key)
        if d == "cuda":
            flat["cuda_memory_mb"] = entry.get("memory_mb")
            if train:
                flat["cuda_train_memory_mb"] = entry.get("train_memory_mb")
        flat[f"{d}_reason"] = entry.get("reason")
    flat["note"] = _row_notes(row)
    return flat


def specs_csv(report: dict[str, Any]) -> str:
    devices, train = list(report["settings"]["devices"]), report["settings"]["train"]
    flat = [_flat_row(row, devices, train) for row in report["rows"]]
    out = io.StringIO()
    if flat:
        writer = csv.DictWriter(out, fieldnames=list(flat[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
    return out.getvalue()


# =============================================================================== result files

def _slug(text: str | None, limit: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
    return slug[:limit].rstrip("-") or "unknown"


def specs_stem(report: dict[str, Any]) -> str:
    """`specs-<gpu or cpu model>-<hostname>-<UTC time>`: the machine the figures belong to, then when."""
    env, devices = report["env"], report["settings"]["devices"]
    on_gpu = devices.get("cuda", {}).get("measured") and env.get("gpu")
    machine = env["gpu"]["name"] if on_gpu else (env.get("cpu") or {}).get("model")
    stamp = report["created"].replace("-", "").replace(":", "")
    return f"specs-{_slug(machine)}-{_slug(env.get('hostname'), 32)}-{stamp}"


def write_specs(report: dict[str, Any], out_dir: Path = DEFAULT_OUT) -> tuple[Path, Path]:
    """Write the report as JSON and Markdown under fresh names; never overwrites a file.

    Each file is written in full to a temp file first and then hard-linked to its name:
    os.link is atomic and fails if the name exists, so a reader never sees half a file
    and an earlier report is never replaced (a later suffix -2, -3 ... is taken instead).
    """
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"--out: cannot create {out_dir} ({exc.strerror or exc})") from None
    json_text = json.dumps(report, indent=1, allow_nan=False) + "\n"
    try:
        with staged_file(out_dir, json_text, ".json") as staged_json, \
                staged_file(out_dir, specs_markdown(report), ".md") as staged_md:
            stem = specs_stem(report)
            for attempt in range(1, 1000):
                name = stem if attempt == 1 else f"{stem}-{attempt}"
                json_path, md_path = out_dir / f"{name}.json", out_dir / f"{name}.md"
                if not link_new(staged_json, json_path):
                    continue
                if not link_new(staged_md, md_path):  # a stray Markdown file holds this name: give it up whole
                    os.unlink(json_path)
                    continue
                return json_path, md_path
        raise BenchError(f"--out: no free file name for {stem} in {out_dir}")
    except PermissionError as exc:
        raise BenchError(f"--out: {out_dir} is not writable ({exc.strerror or exc})") from None


# =============================================================================== command line

FORMATS = ("table", "md", "csv", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `bench specs` options (the CLI adds the sub-command and calls `command`)."""
    parser.add_argument("--models", help="comma-separated networks (default: the whole zoo and this project's nets)")
    parser.add_argument("--device", default="all", choices=DEVICE_CHOICES,
                        help="where to measure; all = cpu plus cuda when available (default all)")
    parser.add_argument("--batch", type=int, help=f"batch size on every device (default {DEFAULT_BATCH['cuda']} on "
                                                  f"CUDA, {DEFAULT_BATCH['cpu']} on CPU; halved on out-of-memory)")
    parser.add_argument("--input", metavar="CxHxW", help="input shape for every network, e.g. 3x224x224 "
                                                         "(default: each network's usual input)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format for model and input")
    parser.add_argument("--train", action="store_true", help="also measure training steps (forward+backward+SGD)")
    parser.add_argument("--format", default="table", choices=FORMATS, help="what to print (default table); "
                                                                           "JSON and Markdown files are always written")
    parser.add_argument("--repeats", type=int, default=10, help="timed batches per measurement (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up batches before timing (default 2)")
    parser.add_argument("--threads", type=int, help="torch CPU threads for the run (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the files (default {DEFAULT_OUT})")


def parse_models(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise BenchError(f"--models: empty name in '{text}'; give names separated by single commas")
    return check_models(names)


def parse_input(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or any(int(g) < 1 for g in match.groups()):
        raise BenchError(f"--input: expected CxHxW with positive sizes, such as 3x224x224; got '{text}'")
    c, h, w = (int(g) for g in match.groups())
    return c, h, w


def command(args: argparse.Namespace, console: Console) -> int:
    """`bench specs`: measure, write the JSON and Markdown files, print in the chosen format."""
    models = parse_models(args.models)
    input_shape = parse_input(args.input)
    stderr = Console(stderr=True, highlight=False)
    report = run_specs(models, [args.device], args.batch, input_shape, amp=args.amp,
                       channels_last=args.channels_last, train=args.train, reporter=RichReporter(stderr),
                       repeats=args.repeats, warmup=args.warmup, threads=args.threads)
    json_path, md_path = write_specs(report, args.out)
    if args.format == "table":
        table = specs_table(report)
        # on a terminal rich fits the table to the screen; into a file or pipe it is printed whole
        width = None if console.is_terminal else max(console.width, console.measure(table).maximum)
        console.print(table, width=width)
    elif args.format == "md":
        console.out(specs_markdown(report), highlight=False, end="")
    elif args.format == "csv":
        console.out(specs_csv(report), highlight=False, end="")
    else:
        console.out(json.dumps(report, indent=1), highlight=False)
    stderr.print(f"wrote {json_path} and {md_path}", soft_wrap=True)
    return 0
