"""The spec report: which networks on which devices, measured one by one into a SpecReport
whose head states how (the environment and every setting that shapes a figure)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import torch

from bench.env import fingerprint
from bench.errors import BenchError
from bench.models import build_model, model_entry, model_names
from bench.progress import Reporter
from bench.specs.files import SpecReport, SpecRow, shape_text
from bench.specs.measure import (AUX_LOSS_WEIGHT, CompetingLoad, SpecsOptions, absent_entry, busy_note,
                                 measure_device, network_figures, release_memory)

DEFAULT_BATCH = {"cpu": 8, "cuda": 64}
DEVICE_CHOICES = ("cpu", "cuda", "all")

TIMING_RULE = ("timm-style: warm-up batches, synchronize on CUDA, then each timed batch alone; "
               "median and IQR of the timed batches, images/s = batch / median")
FLOPS_RULE = ("forward FLOPs per image by torch FlopCounterMode in eval mode (multiply-add = 2 FLOPs; "
              "conv/linear/matmul only); GMACs = GFLOPs / 2; training GFLOPs = 3 x forward (not counted: "
              "FlopCounterMode overcounts the backward of grouped convolutions)")
TRAIN_STEP_RULE = ("forward, cross-entropy on random labels, backward, SGD step (momentum 0.9); "
                   f"inception_v3's auxiliary head trains too (loss weight {AUX_LOSS_WEIGHT})")


def default_models() -> list[str]:
    """The zoo in its own order, then this project's training nets (the registry's order)."""
    return model_names("zoo") + model_names("training")


def network_defaults(name: str) -> tuple[int, tuple[int, int, int]]:
    """(num_classes, input shape) a network is specified at unless the input is overridden."""
    entry = model_entry(name, where="--models")
    return entry.num_classes, entry.input_shape


def check_models(names: list[str]) -> list[str]:
    for name in names:
        model_entry(name, where="--models")  # an unknown name is a one-line error with the near names
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


def run_specs(models: list[str] | None, devices: list[str], batch: int | None,
              input_shape: tuple[int, int, int] | None, amp: bool, channels_last: bool, train: bool,
              reporter: Reporter, repeats: int = 10, warmup: int = 2, threads: int | None = None) -> SpecReport:
    """Measure every network on every device (the rules: bench/specs/__init__.py).

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
                report.rows.append(row)
                for note in (e["note"] for e in row.devices.values() if e.get("note")):
                    reporter.notice(f"{name}: {note}")
    finally:
        torch.backends.cudnn.benchmark = saved_cudnn_benchmark
        torch.set_num_threads(saved_threads)
    report.competing_cpu_share = load.share
    busy = busy_note(load.share)
    if busy:
        # measured here: with a busy neighbour one thread is 2x (big nets) to 100x (tiny nets) faster than two
        hint = "; --threads 1 suffers far less from a busy neighbour" if report.settings["torch_threads"] > 1 else ""
        reporter.notice(f"specs: other processes used {load.share:.0%} of the machine's CPU during the run: "
                        f"timings suspect{hint}")
    return report


def _new_report(names: list[str], measured: list[str], absent: dict[str, str], batches: dict[str, int],
                batch: int | None, input_shape: tuple[int, int, int] | None, options: SpecsOptions) -> SpecReport:
    """The report's head (environment and settings), before any row is measured."""
    return SpecReport(
        created=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        env=fingerprint(torch.device("cuda" if "cuda" in measured else "cpu")),
        settings={
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
    )


def _network_row(name: str, input_shape: tuple[int, int, int] | None, measured: list[str], absent: dict[str, str],
                 batches: dict[str, int], options: SpecsOptions, task: Any) -> SpecRow:
    num_classes, default_shape = network_defaults(name)
    in_shape = tuple(input_shape) if input_shape else default_shape
    master = build_model(name, num_classes, in_shape, where="--models")
    try:
        figures = network_figures(master, in_shape)
    except RuntimeError as exc:  # e.g. an input too small for the network's pooling, or the wrong channels
        raise BenchError(f"--input: {name} does not run on a {shape_text(in_shape)} input "
                         f"({str(exc).splitlines()[0]})") from None
    row = SpecRow(name=name, input=list(in_shape), num_classes=num_classes, **figures)
    for device_name in measured:
        entry = measure_device(master, in_shape, num_classes, torch.device(device_name), batches[device_name],
                               options)
        row.devices[device_name] = entry
        inference = entry["inference"] or {}
        task.advance(1, net=name, device=device_name, **{"img/s": inference.get("images_per_s")})
        release_memory(torch.device(device_name))
    for device_name, why in absent.items():
        row.devices[device_name] = absent_entry(why, device_name, options)
    return row
