"""One run: a seed of a suite trained on a prepared dataset, measured per the contract.

Order of a run (DESIGN.md section 3):
  init (model, optimizer)  ->  data upload (loader) and the data-dependent init's image
  batch  ->  compile + warm-up: every first call the timed region will make (the training
  step on a real loader batch with random labels, the loader's plan, gathers and kernels,
  the whitening init's eigh, the lookahead update, the evaluation at its one shape with
  its TTA views), then the model and the loader's random state put back exactly  ->
  TIMED REGION: data-dependent init, every training step with its augmentation, and
  every evaluation that decides the verdict; evaluations made only for the curve are
  paused out (clock and GPU monitor alike) and timed apart.

Compilation is reused across the seeds of an invocation: torch.compile's cache keys on
the code and the shapes, not the model instance, so seed 0's compile_s holds the
compilation and later seeds' compile_s only their warm-up. Every run counts the compiles
that happened inside its timed region (recompiles_in_timed_region); it should be 0.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench import finetune
from bench.bptt import bptt_train_step
from bench.datasets import FILE_DATASETS, ArrayDataset, imagefolder_files
from bench.distributed import SINGLE, Dist
from bench.ema import WeightEMA
from bench.env import bf16_is_fast
from bench.errors import BenchError
from bench.loaders import Augment, channel_stats, choose_loader, make_file_loader, make_loader
from bench.gpu_monitor import GpuMonitor
from bench.measure import Stopwatch, TimedRegion, compile_count, peak_host_rss_mb
from bench.memory import cpu_training_peak
from bench.models import build_model
from bench.progress import NullReporter, Reporter
from bench.optim import Lookahead, build_optimizer, minimize
from bench.schedules import lr_multiplier
from bench.sparsity import Sparsifier, active_count, layer_nonzeros, parameter_counts

# ---------------------------------------------------------------- device policy ----

def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda":
        if not torch.cuda.is_available():
            raise BenchError("--device cuda: no CUDA device is available here (torch "
                             f"{torch.__version__}, cuda build: {torch.version.cuda or 'none'}); "
                             "use --device cpu or auto")
        return torch.device("cuda")
    if choice == "cpu":
        return torch.device("cpu")
    raise BenchError(f"--device {choice!r}: choose auto, cpu or cuda")


@dataclass(frozen=True)
class Policy:
    """How a run computes: chosen once from the recipe and the device, recorded in the result."""

    precision: str        # fp32 | bf16 | fp16
    channels_last: bool
    compile: str          # off | default | reduce-overhead | max-autotune

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)


def resolve_policy(recipe: dict, device: torch.device, model: nn.Module) -> Policy:
    precision = recipe["precision"]
    if precision == "auto":
        precision = "bf16" if bf16_is_fast(device) else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise BenchError("recipe.precision fp16 needs CUDA; use bf16 or auto on CPU")
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    channels_last = {"on": True, "off": False}.get(recipe["channels_last"],
                                                    has_conv and (device.type == "cuda" or precision == "bf16"))
    compile_mode = recipe["compile"]
    if compile_mode == "auto":
        compile_mode = "max-autotune" if device.type == "cuda" else "off"
    return Policy(precision=precision, channels_last=channels_last, compile=compile_mode)


# ---------------------------------------------------------------- evaluation ----

def _mirror_logits(model: nn.Module, x: torch.Tensor, memory: torch.memory_format) -> torch.Tensor:
    return 0.5 * (model(x).float() + model(x.flip(-1).contiguous(memory_format=memory)).float())


def tta_logits(model: nn.Module, x: torch.Tensor, level: int,
               memory: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """0: plain; 1: mean with the mirror image; 2: also two views translated by one pixel.
    Every view is laid out in `memory` like `x`, so a compiled model sees one layout."""
    if level == 0:
        return model(x).float()
    logits = _mirror_logits(model, x, memory)
    if level == 1:
        return logits
    height, width = x.shape[-2:]
    # CPU autocast runs reflection padding in float32: cast back, so every view has the batch's dtype
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect").to(x.dtype)
    shifted = [view.contiguous(memory_format=memory) for view in (padded[..., :height, :width], padded[..., 2:, 2:])]
    translated = torch.stack([_mirror_logits(model, s, memory) for s in shifted]).mean(0)
    return 0.5 * logits + 0.5 * translated


def _correct(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, tta: int,
             memory: torch.memory_format, batch_size: int) -> torch.Tensor:
    """Correct predictions in one batch. A short last batch is padded to the loader's batch size
    with blank images labelled -1 (never counted correct), so evaluation has one input shape: a
    compiled model is never recompiled and a cuDNN plan is never chosen inside the timed region."""
    short = batch_size - len(labels)
    if short > 0:
        images = torch.cat([images, images.new_zeros((short, *images.shape[1:]))]).contiguous(memory_format=memory)
        labels = torch.cat([labels, labels.new_full((short,), -1)])
    return (tta_logits(model, images, tta, memory).argmax(1) == labels).sum()


class _Evaluating:
    """Eval mode, no grad and the run's autocast, for the length of a `with` block."""

    def __init__(self, model: nn.Module, device: torch.device, autocast: torch.dtype | None):
        self.model = model
        self.contexts = [torch.no_grad(), torch.autocast(device.type, dtype=autocast or torch.float32,
                                                         enabled=autocast is not None)]

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()
        for context in self.contexts:
            context.__enter__()

    def __exit__(self, *exc: object) -> None:
        for context in reversed(self.contexts):
            context.__exit__(*exc)
        self.model.train(self.was_training)


def evaluate(model: nn.Module, loader, tta: int, autocast: torch.dtype | None,
             memory: torch.memory_format = torch.contiguous_format, dist: Dist = SINGLE) -> float:
    """Exact top-1 accuracy over the whole split. With several ranks each holds a shard of the
    split, and the correct counts and shard sizes are summed over the ranks."""
    counts = torch.tensor([0, loader.count], dtype=torch.long, device=loader.device)
    with _Evaluating(model, loader.device, autocast):
        for images, labels in loader.epoch():
            counts[0] += _correct(model, images, labels, tta, memory, loader.batch_size)
    correct, count = dist.sum_(counts).tolist()
    return correct / count


# ---------------------------------------------------------------- one run ----

class Diverged(Exception):
    pass


@dataclass
class PreparedData:
    """A dataset ready for runs: arrays, shape, normalization, prepared once per invocation."""

    dataset: ArrayDataset
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def from_dataset(cls, dataset: ArrayDataset) -> "PreparedData":
        mean, std = channel_stats(dataset.train_images)
        return cls(dataset, mean, std)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        _, h, w, c = self.dataset.train_images.shape
        return (c, h, w)

    @property
    def num_classes(self) -> int:
        return len(self.dataset.classes)


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _train_step(model, optimizer, scaler, images, labels, smoothing, autocast, penalty=None):
    """One step; returns the data loss. `penalty` (the sparsity recipe's L1 term, in fp32 outside
    autocast) is added to what is minimized but not to the loss reported, so curves compare."""
    with torch.autocast(images.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        loss = F.cross_entropy(model(images), labels, label_smoothing=smoothing)
    minimize(loss, optimizer, scaler, penalty)
    return loss.detach()


def _train_step_for(recipe: dict, penalty: Callable[[], torch.Tensor] | None = None) -> Callable[..., torch.Tensor]:
    """The plain step, or the BPTT step of a sequence recipe (same signature, bench.bptt), with
    the sparsity recipe's penalty (or none) bound in."""
    if recipe["bptt"]["mode"] == "none":
        return _train_step if penalty is None else functools.partial(_train_step, penalty=penalty)
    return functools.partial(bptt_train_step, bptt=recipe["bptt"], penalty=penalty)


def _set_lr(optimizer: torch.optim.Optimizer, multiplier: float, whiten_active: bool) -> None:
    for group in optimizer.param_groups:
        frozen = group["name"] == "whiten_bias" and not whiten_active
        group["lr"] = 0.0 if frozen else group["base_lr"] * multiplier


def train_run(suite_resolved: dict, data: PreparedData, seed: int, device: torch.device,
              reporter: Reporter | None = None, label: str = "run", loader: str = "auto",
              save_weights: Callable[[nn.Module], Path] | None = None, dist: Dist = SINGLE) -> dict[str, Any]:
    """Trains one seed and returns its run record (status complete or diverged). With
    `save_weights`, the final (evaluated) weights are handed to it after the timed region.

    With several ranks (`dist`), every rank calls this alike: each serves its slice of the
    global batch, DDP averages the gradients, the evaluations are sharded and summed, and the
    returned record (the same accuracy and curve on every rank) has rank 0's clock."""
    reporter = reporter or NullReporter()
    recipe, mode, target = suite_resolved["recipe"], suite_resolved["mode"], suite_resolved["target"]

    # -- init: model and optimizer (outside the timed region)
    t0 = time.perf_counter()
    # Wall-clock anchors: with them every reading of the run's clocks maps to a unix time, so
    # views of the record (the MLPerf log) place their events from the record's own readings.
    init_start_unix_s = time.time()
    _seed_everything(seed)
    model = build_model(suite_resolved["model"]["name"], data.num_classes, data.in_shape,
                        suite_resolved["model"]["args"])
    finetune.prepare(model, suite_resolved["model"])  # model.init and model.freeze
    model = model.to(device)
    model = dist.prepare_model(model, recipe["sync_bn"], device)
    policy = resolve_policy(recipe, device, model)
    if policy.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # a pruning recipe's masks go on now, so compilation and the warm-up see them (bench.sparsity)
    sparse = Sparsifier(model, recipe["sparsity"])
    sparse.attach()
    penalty = sparse.penalty if sparse.l1 else None
    init_s = time.perf_counter() - t0

    # -- data: upload the splits to where the loader serves them from, in the compute dtype
    t0 = time.perf_counter()
    memory = torch.channels_last if policy.channels_last else torch.contiguous_format
    common = dict(device=device, mean=data.mean, std=data.std, channels_last=policy.channels_last,
                  dtype=policy.autocast_dtype or torch.float32)
    ds = data.dataset
    dataset = suite_resolved["dataset"]
    file_dataset = dataset["name"] in FILE_DATASETS
    kind = choose_loader(loader, ds.train_images.nbytes, device, file_dataset=file_dataset)
    if kind == "torch":
        common["workers"] = recipe["workers"]
    # the suite's batch_size is the global batch: each rank serves its slice of it
    train_options = dict(batch_size=dist.rank_batch(recipe["batch_size"]),
                         augment=Augment.from_recipe(recipe["augment"]), shuffle=True, drop_last=True, seed=seed,
                         **common)
    test_options = dict(batch_size=recipe["eval_batch_size"], **common)
    if kind == "dali" and file_dataset:
        # DALI reads and decodes the image files itself (extracted once into the cache for an archive)
        train_dir, test_dir, classes = imagefolder_files(dataset["path"] or dataset["name"])
        if classes != tuple(ds.classes):
            raise BenchError(f"the image folders' classes {classes} are not the data set's {tuple(ds.classes)}")
        shards = dict(shard_id=dist.rank, num_shards=dist.world_size)
        train_loader = make_file_loader(kind, train_dir, **train_options, **shards)
        test_loader = make_file_loader(kind, test_dir, **test_options, **shards)
    else:
        train_loader = make_loader(kind, ds.train_images, ds.train_labels, shard=dist.shard, **train_options)
        test_loader = make_loader(kind, *dist.test_shard(ds.test_images, ds.test_labels), **test_options)
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise BenchError(f"recipe.batch_size {recipe['batch_size']} is larger than the training set "
                         f"({train_loader.count} images); lower it")
    # The data-dependent init's images are made here, once (a file loader decodes them with a
    # pipeline of its own); the init itself is training and runs inside the timed region.
    init_images = train_loader.images(5000) if hasattr(model, "data_init") else None
    if device.type == "cuda":
        torch.cuda.synchronize()
    data_prep_s = time.perf_counter() - t0

    # -- compile, and warm up every first call; then the initial state is put back
    t0 = time.perf_counter()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # pick conv algorithms once, in the warm-up
    compiled = policy.compile != "off"
    # dynamic=False: the training and the (padded) evaluation shapes each get a static graph
    train_model = dist.wrap(model, device, compiled)  # DDP with several ranks, else the model itself
    step_model = torch.compile(train_model, mode=policy.compile, dynamic=False) if compiled else train_model
    # Sharded evaluation has no collective inside the model, so with DDP it runs the module itself.
    eval_model = step_model if train_model is model else \
        (torch.compile(model, mode=policy.compile, dynamic=False) if compiled else model)
    train_step = _train_step_for(recipe, penalty)
    _warm_up(step_model, model, recipe, train_loader, test_loader, init_images, data.num_classes, policy, device,
             train_step, eval_model)
    compile_s = time.perf_counter() - t0
    memory_figures = _cpu_memory(step_model, model, recipe, train_loader, policy, device, train_step)

    _seed_everything(seed + 1)  # the timed region's randomness does not depend on the warm-up
    optimizer = build_optimizer(model, recipe)
    scaler = torch.amp.GradScaler(device.type) if policy.precision == "fp16" else None
    lookahead = Lookahead(model, recipe["lookahead"]["every"], recipe["lookahead"]["decay"]) \
        if recipe["lookahead"]["every"] else None
    ema = WeightEMA(model, recipe["ema"]["every"], recipe["ema"]["decay"]) if recipe["ema"]["every"] else None
    evaluated = ema.swapped if ema is not None else nullcontext  # evaluations see the EMA weights
    max_epochs = math.ceil(recipe["epochs"])
    total_steps = math.ceil(recipe["epochs"] * steps_per_epoch)
    whiten_steps = recipe["whiten_bias_epochs"] * steps_per_epoch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Energy from NVML's counter at each end of every running stretch; a 10 Hz sampler for memory,
    # utilization and power (a longer interval keeps its cost on a busy CPU negligible).
    region = TimedRegion(Stopwatch(device), GpuMonitor(device.index or 0, interval_s=0.1, reporter=reporter))
    curve: list[dict[str, Any]] = []
    trace: list[torch.Tensor] = []  # nonzero parameters after each epoch, on the device
    train_time = deciding_eval_s = curve_eval_s = 0.0
    step = 0
    accuracy: float | None = None
    reached_at: float | None = None
    status = "complete"
    compiles_before = compile_count()

    with reporter.task(label, total=total_steps) as progress:
        dist.barrier()  # every rank starts the clock together; rank 0's clock is the run's
        region.start()
        clock_start_unix_s = time.time()
        try:
            # ---------------- timed region ----------------
            if init_images is not None:
                model.data_init(init_images)
            for epoch in range(max_epochs):
                epoch_start = region.read()
                loss_sum = torch.zeros((), device=device)
                epoch_steps = 0
                for images, labels in train_loader.epoch(epoch):
                    if step >= total_steps:
                        break
                    _set_lr(optimizer, lr_multiplier(recipe["schedule"], step, steps_per_epoch, total_steps)
                            * sparse.lr_factor(), whiten_active=step < whiten_steps)
                    loss_sum += train_step(step_model, optimizer, scaler, images, labels, recipe["label_smoothing"],
                                           policy.autocast_dtype)
                    step += 1
                    epoch_steps += 1
                    if ema is not None:
                        ema.maybe_update(step)
                    if lookahead is not None:
                        lookahead.maybe_update(model, step, total_steps)
                    progress.advance(1)
                if lookahead is not None and step >= total_steps:
                    lookahead.update(model, decay=1.0)  # end on the slow weights
                pruned = sparse.maybe_prune(epoch + 1)  # training work: in the timed region and train time
                if sparse.active:  # the sparsity trace, counted on the device; read after the clock
                    trace.append(active_count(model))
                # one sync per epoch; the mean over ranks, so every rank takes the same divergence decision
                epoch_loss = dist.mean_(loss_sum / max(epoch_steps, 1)).item()
                now = region.read()
                train_time += now - epoch_start
                point: dict[str, Any] = {"epoch": epoch + 1, "step": step, "time_s": now, "loss": epoch_loss,
                                         "accuracy": None, "start_s": epoch_start, "train_end_s": now,
                                         "eval_start_s": None}
                if not math.isfinite(epoch_loss):
                    status = "diverged"
                    curve.append(point)
                    break
                last = step >= total_steps
                if pruned:
                    point["pruned"] = True
                if mode == "reach" or last:
                    # an evaluation that decides the verdict: inside the timed region
                    t_eval = region.read()
                    with evaluated():
                        dist.sync_buffers(model)
                        accuracy = evaluate(eval_model, test_loader, recipe["tta"], policy.autocast_dtype, memory,
                                            dist)
                    deciding_eval_s += region.read() - t_eval
                    point["accuracy"] = accuracy
                    point["eval_start_s"] = t_eval
                    point["time_s"] = region.read()
                    # a pruning recipe's network is judged only once all of its prunings are done
                    if accuracy >= target and reached_at is None and sparse.done:
                        reached_at = point["time_s"]
                elif recipe["curve_eval"]:
                    # logging only: paused out of the timed region (time and energy), timed apart
                    region.pause()
                    t_eval = time.perf_counter()
                    with evaluated():
                        dist.sync_buffers(model)
                        point["accuracy"] = evaluate(eval_model, test_loader, recipe["tta"], policy.autocast_dtype,
                                                     memory, dist)
                    curve_eval_s += time.perf_counter() - t_eval
                    region.resume()
                curve.append(point)
                progress.update(epoch=epoch + 1, loss=epoch_loss, acc=point["accuracy"])
                if (mode == "reach" and reached_at is not None) or last:
                    break
            dist.barrier()  # the clock stops when every rank has finished
        finally:
            total_s = region.stop()  # the monitor's thread and NVML handle go, whatever happened
        # ---------------- end of timed region ----------------
    gpu = region.monitor.summary()
    ranks = _rank_figures(dist, gpu, device, train_time, total_s)
    # read before the training-set evaluation, no part of the run
    peak_figures = _memory_figures(device)
    if ema is not None:
        ema.commit()  # from here on the model holds the weights the test set saw
    sparse.finalize()  # masks made permanent before anything is counted or saved
    # the runner turns the layers' nonzeros into FLOPs (bench.runner.add_active_flops)
    sparsity = {"method": sparse.method, "pruned_after_epochs": sparse.pruned_at, **parameter_counts(model),
                "layer_nonzeros": layer_nonzeros(model)}
    for point, active in zip(curve, torch.stack(trace).tolist() if trace else []):
        point["active_fraction"] = active / sparsity["params"]
    weights_file = None
    if save_weights is not None and dist.is_main:  # one rank's copy: every rank holds the same weights
        weights_file = str(save_weights(model))
    train_eval: dict[str, Any] = {}
    if recipe["train_eval"] and status == "complete":
        train_eval = _train_accuracy(step_model, data, recipe, kind, common, policy, memory, dist)

    trained_images = step * recipe["batch_size"]
    record: dict[str, Any] = {
        "seed": seed,
        "status": status,
        "accuracy": accuracy,
        "reached_target": reached_at is not None,
        "time_to_target_s": (reached_at if mode == "reach" else total_s) if status == "complete" else None,
        "timed_s": total_s,
        "epochs": round(step / steps_per_epoch, 4),
        "steps": step,
        "train_images": trained_images,
        "train_time_s": train_time,
        "train_images_per_s": trained_images / train_time if train_time > 0 else None,
        "deciding_eval_s": deciding_eval_s,
        "curve_eval_s": curve_eval_s,
        "init_s": init_s,
        "data_prep_s": data_prep_s,
        "init_start_unix_s": init_start_unix_s,
        "clock_start_unix_s": clock_start_unix_s,
        "compile_s": compile_s,
        "precision": policy.precision,
        "channels_last": policy.channels_last,
        "compile": policy.compile,
        "eval_compiled": compiled,
        "recompiles_in_timed_region": compile_count() - compiles_before,
        "warmup_steps": recipe["warmup_steps"],
        "loader": train_loader.name,
        "batch_dtype": str(policy.autocast_dtype or torch.float32).replace("torch.", ""),
        "peak_host_rss_mb": peak_host_rss_mb(),
        "energy_j": gpu["energy_j"],
        "energy_method": gpu["energy_method"],
        "mean_power_w": gpu["mean_power_w"],
        "max_power_w": gpu["max_power_w"],
        "power_source": gpu["power_source"],
        "monitored_s": gpu["running_s"],
        "mean_gpu_utilization_pct": gpu["mean_utilization_pct"],
        "nvml_peak_memory_used_mb": gpu["peak_memory_used_mb"],
        "energy_reason": gpu["reason"],
        "weights_file": weights_file,
        "sparsity": sparsity,
        "curve": curve,
    }
    record.update(train_eval)
    record.update(peak_figures)
    record.update(memory_figures)
    if dist.active:
        record.update(_summed_over_ranks(ranks, total_s))
    if mode == "reach" and status == "complete" and reached_at is None:
        record["note"] = f"did not reach {target} within {recipe['epochs']} epochs"
    return record


def _cpu_memory(step_model: nn.Module, model: nn.Module, recipe: dict, train_loader, policy: Policy,
                device: torch.device, train_step: Callable[..., torch.Tensor]) -> dict[str, Any]:
    """The training's own peak memory on CPU (bench.memory), from two training steps on the
    warm-up's batch outside the clock; the weights are put back afterwards. On CUDA the
    allocator's peak over the timed region is the figure (torch.cuda.max_memory_allocated)."""
    if device.type != "cpu":
        return {"train_peak_memory_method": "torch.cuda.max_memory_allocated over the timed region"}
    initial = copy.deepcopy(model.state_dict())
    images, labels = train_loader.sample_batch()
    optimizer = build_optimizer(model, recipe)
    _set_lr(optimizer, 1.0, whiten_active=True)

    def step() -> None:
        train_step(step_model, optimizer, None, images, labels, recipe["label_smoothing"], policy.autocast_dtype)

    figures = cpu_training_peak(model, optimizer, step)
    model.load_state_dict(initial)
    for p in model.parameters():
        p.grad = None
    return figures


def _rank_figures(dist: Dist, gpu: dict[str, Any], device: torch.device, train_time: float,
                  total_s: float) -> list[dict[str, Any]] | None:
    """Every rank's own GPU figures, gathered on every rank (None in one process)."""
    if not dist.active:
        return None
    mine = {"rank": dist.rank, "timed_s": total_s, "train_time_s": train_time, "energy_j": gpu["energy_j"],
            "max_power_w": gpu["max_power_w"], "energy_reason": gpu["reason"], **_memory_figures(device)}
    return dist.gather(mine)


def _summed_over_ranks(ranks: list[dict[str, Any]], total_s: float) -> dict[str, Any]:
    """The run's energy is the sum over every rank's GPU (unknown if any one is); mean power is that
    over rank 0's timed seconds; peak memory and power are the largest one GPU reached."""
    energies = [r["energy_j"] for r in ranks]
    energy = sum(energies) if all(e is not None for e in energies) else None
    memory = [r["peak_memory_mb"] for r in ranks if r["peak_memory_mb"] is not None]
    powers = [r["max_power_w"] for r in ranks if r["max_power_w"] is not None]
    return {"energy_j": energy,
            "mean_power_w": energy / total_s if energy is not None and total_s > 0 else None,
            "max_power_w": max(powers) if powers else None,
            "energy_reason": None if energy is not None else
            next((r["energy_reason"] for r in ranks if r["energy_j"] is None), None),
            "peak_memory_mb": max(memory) if memory else None,
            "peak_memory_reserved_mb": max((r["peak_memory_reserved_mb"] for r in ranks
                                            if r["peak_memory_reserved_mb"] is not None), default=None),
            "ranks": ranks}


def _train_accuracy(model: nn.Module, data: PreparedData, recipe: dict, kind: str, common: dict[str, Any],
                    policy: Policy, memory: torch.memory_format, dist: Dist) -> dict[str, Any]:
    """Top-1 on a fixed subset of the training images (unaugmented, the test split's TTA), after
    the timed region: a fitting measure for data-size studies that costs the contract nothing.
    With several ranks it is sharded and summed like the test evaluation."""
    t0 = time.perf_counter()
    images, labels = data.dataset.train_images, data.dataset.train_labels
    if recipe["train_eval"] < len(labels):
        # the same images for every seed and run: the first N of a seed-0 permutation
        chosen = np.sort(np.random.default_rng(0).permutation(len(labels))[:recipe["train_eval"]])
        images, labels = images[chosen], labels[chosen]
    count = len(labels)
    # arrays through the same loader kind (a file-reading DALI run still holds the decoded arrays)
    loader = make_loader(kind, *dist.test_shard(images, labels), batch_size=recipe["eval_batch_size"], **common)
    accuracy = evaluate(model, loader, recipe["tta"], policy.autocast_dtype, memory, dist)
    return {"train_accuracy": accuracy, "train_eval_images": count, "train_eval_s": time.perf_counter() - t0}


def _memory_figures(device: torch.device) -> dict[str, Any]:
    if device.type != "cuda":
        return {"peak_memory_mb": None, "peak_memory_reserved_mb": None,
                "memory_reason": "no CUDA device: torch's peak GPU memory is measured on CUDA only "
                                 "(train_peak_memory_mb is the CPU figure)"}
    return {"train_peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_reserved_mb": torch.cuda.max_memory_reserved(device) / 2**20,
            "memory_reason": None}


def _warm_up(step_model: nn.Module, model: nn.Module, recipe: dict, train_loader, test_loader,
             init_images: torch.Tensor | None, num_classes: int, policy: Policy, device: torch.device,
             train_step: Callable[..., torch.Tensor] = _train_step, eval_model: nn.Module | None = None) -> None:
    """Makes, outside the clock, every first call the timed region will make, so that compiling,
    JIT-compiling kernels, loading libraries (cuSOLVER for eigh, cuDNN's plan search) and first
    allocations never land in seed 0's time; then puts back the initial weights and statistics,
    as airbench does. The loaders' random state is untouched (sample_batch puts it back), so a
    seed's run is bit-identical with and without the warm-up."""
    steps = recipe["warmup_steps"]
    if steps == 0:
        return
    initial = copy.deepcopy(model.state_dict())
    generator = torch.Generator(device=device).manual_seed(12345)
    memory = torch.channels_last if policy.channels_last else torch.contiguous_format
    if init_images is not None:
        model.data_init(init_images)
    # A real batch: the loader's plan, gathers and kernel variant, in the dtype and strides training uses.
    images, labels = train_loader.sample_batch()
    optimizer = build_optimizer(model, recipe)
    scaler = torch.amp.GradScaler(device.type) if policy.precision == "fp16" else None
    for _ in range(steps):
        random_labels = torch.randint(0, num_classes, labels.shape, generator=generator, device=device)
        _set_lr(optimizer, 1.0, whiten_active=True)
        train_step(step_model, optimizer, scaler, images, random_labels, recipe["label_smoothing"],
                   policy.autocast_dtype)
    if recipe["lookahead"]["every"]:
        Lookahead(model, recipe["lookahead"]["every"], recipe["lookahead"]["decay"]).update(model, decay=0.5)
    # The evaluation: a full batch and a short one (padded to the same shape), with the TTA views.
    test_images, test_labels = test_loader.sample_batch()
    eval_model = eval_model or step_model
    with _Evaluating(eval_model, device, policy.autocast_dtype):
        _correct(eval_model, test_images, test_labels, recipe["tta"], memory, test_loader.batch_size).item()
        _correct(eval_model, test_images[:-1], test_labels[:-1], recipe["tta"], memory,
                 test_loader.batch_size).item()
    model.load_state_dict(initial)
    if device.type == "cuda":
        torch.cuda.synchronize()
