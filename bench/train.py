"""One run: a seed of a suite trained on a prepared dataset, measured per the contract.

Order of a run (DESIGN.md section 3):
  init (model, optimizer)  ->  data upload (loader)  ->  compile + warm-up on random
  labels, then the initial weights restored  ->  TIMED REGION: data-dependent init,
  every training step with its augmentation, and every evaluation that decides the
  verdict; evaluations made only for the curve are paused out and timed apart.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.datasets import FILE_DATASETS, ArrayDataset, imagefolder_files
from bench.env import bf16_is_fast
from bench.errors import BenchError
from bench.loaders import Augment, channel_stats, choose_loader, make_file_loader, make_loader
from bench.gpu_monitor import GpuMonitor
from bench.measure import Stopwatch, peak_host_rss_mb
from bench.models import build_model
from bench.progress import NullReporter, Reporter
from bench.optim import Lookahead, build_optimizer
from bench.schedules import lr_multiplier

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

def _mirror_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (model(x).float() + model(x.flip(-1)).float())


def tta_logits(model: nn.Module, x: torch.Tensor, level: int) -> torch.Tensor:
    """0: plain; 1: mean with the mirror image; 2: also two views translated by one pixel."""
    if level == 0:
        return model(x).float()
    logits = _mirror_logits(model, x)
    if level == 1:
        return logits
    height, width = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[..., :height, :width], padded[..., 2:, 2:]]
    translated = torch.stack([_mirror_logits(model, s) for s in shifted]).mean(0)
    return 0.5 * logits + 0.5 * translated


@torch.no_grad()
def evaluate(model: nn.Module, loader, tta: int, autocast: torch.dtype | None) -> float:
    """Exact top-1 accuracy over the whole split."""
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=loader.device)
    with torch.autocast(loader.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        for images, labels in loader.epoch():
            correct += (tta_logits(model, images, tta).argmax(1) == labels).sum()
    model.train(was_training)
    return correct.item() / loader.count


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


def _train_step(model, optimizer, scaler, images, labels, smoothing, autocast):
    with torch.autocast(images.device.type, dtype=autocast or torch.float32, enabled=autocast is not None):
        loss = F.cross_entropy(model(images), labels, label_smoothing=smoothing)
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    return loss.detach()


def _set_lr(optimizer: torch.optim.Optimizer, multiplier: float, whiten_active: bool) -> None:
    for group in optimizer.param_groups:
        frozen = group["name"] == "whiten_bias" and not whiten_active
        group["lr"] = 0.0 if frozen else group["base_lr"] * multiplier


def train_run(suite_resolved: dict, data: PreparedData, seed: int, device: torch.device,
              reporter: Reporter | None = None, label: str = "run", loader: str = "auto") -> dict[str, Any]:
    """Trains one seed and returns its run record (status complete or diverged)."""
    reporter = reporter or NullReporter()
    recipe, mode, target = suite_resolved["recipe"], suite_resolved["mode"], suite_resolved["target"]

    # -- init: model and optimizer (outside the timed region)
    t0 = time.perf_counter()
    _seed_everything(seed)
    model = build_model(suite_resolved["model"]["name"], data.num_classes, data.in_shape,
                        suite_resolved["model"]["args"]).to(device)
    policy = resolve_policy(recipe, device, model)
    if policy.channels_last:
        model = model.to(memory_format=torch.channels_last)
    init_s = time.perf_counter() - t0

    # -- data: upload the splits to where the loader serves them from
    t0 = time.perf_counter()
    common = dict(device=device, mean=data.mean, std=data.std, channels_last=policy.channels_last)
    ds = data.dataset
    dataset = suite_resolved["dataset"]
    file_dataset = dataset["name"] in FILE_DATASETS
    kind = choose_loader(loader, ds.train_images.nbytes, device, file_dataset=file_dataset)
    train_options = dict(batch_size=recipe["batch_size"], augment=Augment.from_recipe(recipe["augment"]),
                         shuffle=True, drop_last=True, seed=seed, **common)
    test_options = dict(batch_size=recipe["eval_batch_size"], **common)
    if kind == "dali" and file_dataset:
        # DALI reads and decodes the image files itself (extracted once into the cache for an archive)
        train_dir, test_dir, classes = imagefolder_files(dataset["path"] or dataset["name"])
        if classes != tuple(ds.classes):
            raise BenchError(f"the image folders' classes {classes} are not the data set's {tuple(ds.classes)}")
        train_loader = make_file_loader(kind, train_dir, **train_options)
        test_loader = make_file_loader(kind, test_dir, **test_options)
    else:
        train_loader = make_loader(kind, ds.train_images, ds.train_labels, **train_options)
        test_loader = make_loader(kind, ds.test_images, ds.test_labels, **test_options)
    if device.type == "cuda":
        torch.cuda.synchronize()
    data_prep_s = time.perf_counter() - t0
    steps_per_epoch = len(train_loader)
    if steps_per_epoch == 0:
        raise BenchError(f"recipe.batch_size {recipe['batch_size']} is larger than the training set "
                         f"({train_loader.count} images); lower it")

    # -- compile and warm up on random labels, then restore the initial state
    t0 = time.perf_counter()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # pick conv algorithms once, in the warm-up
    step_model = model if policy.compile == "off" else torch.compile(model, mode=policy.compile)
    _warm_up(step_model, model, recipe, data, test_loader.batch_size, policy, device)
    compile_s = time.perf_counter() - t0

    _seed_everything(seed + 1)  # the timed region's randomness does not depend on the warm-up
    optimizer = build_optimizer(model, recipe)
    scaler = torch.amp.GradScaler(device.type) if policy.precision == "fp16" else None
    lookahead = Lookahead(model, recipe["lookahead"]["every"], recipe["lookahead"]["decay"]) \
        if recipe["lookahead"]["every"] else None
    max_epochs = math.ceil(recipe["epochs"])
    total_steps = math.ceil(recipe["epochs"] * steps_per_epoch)
    whiten_steps = recipe["whiten_bias_epochs"] * steps_per_epoch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Energy from NVML's counter at the region's ends; a 10 Hz sampler for memory, utilization
    # and power (a longer interval keeps its cost on a busy CPU negligible).
    monitor = GpuMonitor(device.index or 0, interval_s=0.1, reporter=reporter)
    curve: list[dict[str, Any]] = []
    clock = Stopwatch(device)
    train_time = deciding_eval_s = curve_eval_s = 0.0
    step = 0
    accuracy: float | None = None
    reached_at: float | None = None
    status = "complete"

    with reporter.task(label, total=total_steps) as progress:
        monitor.start()
        clock.start()
        # ---------------- timed region ----------------
        if hasattr(model, "data_init"):
            model.data_init(train_loader.images(5000))
        for epoch in range(max_epochs):
            epoch_start = clock.read()
            loss_sum = torch.zeros((), device=device)
            epoch_steps = 0
            for images, labels in train_loader.epoch(epoch):
                if step >= total_steps:
                    break
                _set_lr(optimizer, lr_multiplier(recipe["schedule"], step, steps_per_epoch, total_steps),
                        whiten_active=step < whiten_steps)
                loss_sum += _train_step(step_model, optimizer, scaler, images, labels, recipe["label_smoothing"],
                                        policy.autocast_dtype)
                step += 1
                epoch_steps += 1
                if lookahead is not None:
                    lookahead.maybe_update(model, step, total_steps)
                progress.advance(1)
            if lookahead is not None and step >= total_steps:
                lookahead.update(model, decay=1.0)  # end on the slow weights
            epoch_loss = (loss_sum / max(epoch_steps, 1)).item()  # one sync per epoch
            now = clock.read()
            train_time += now - epoch_start
            point: dict[str, Any] = {"epoch": epoch + 1, "step": step, "time_s": now, "loss": epoch_loss,
                                     "accuracy": None}
            if not math.isfinite(epoch_loss):
                status = "diverged"
                curve.append(point)
                break
            last = step >= total_steps
            if mode == "reach" or last:
                # an evaluation that decides the verdict: inside the timed region
                t_eval = clock.read()
                accuracy = evaluate(model, test_loader, recipe["tta"], policy.autocast_dtype)
                deciding_eval_s += clock.read() - t_eval
                point["accuracy"] = accuracy
                point["time_s"] = clock.read()
                if accuracy >= target and reached_at is None:
                    reached_at = point["time_s"]
            elif recipe["curve_eval"]:
                # logging only: paused out of the timed region, timed apart
                clock.pause()
                t_eval = time.perf_counter()
                point["accuracy"] = evaluate(model, test_loader, recipe["tta"], policy.autocast_dtype)
                curve_eval_s += time.perf_counter() - t_eval
                clock.resume()
            curve.append(point)
            progress.update(epoch=epoch + 1, loss=epoch_loss, acc=point["accuracy"])
            if (mode == "reach" and reached_at is not None) or last:
                break
        total_s = clock.pause()
        # ---------------- end of timed region ----------------
        monitor.stop()
    gpu = monitor.summary()

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
        "compile_s": compile_s,
        "precision": policy.precision,
        "channels_last": policy.channels_last,
        "compile": policy.compile,
        "loader": train_loader.name,
        "peak_host_rss_mb": peak_host_rss_mb(),
        "energy_j": gpu["energy_j"],
        "energy_method": gpu["energy_method"],
        "mean_power_w": gpu["mean_power_w"],
        "max_power_w": gpu["max_power_w"],
        "mean_gpu_utilization_pct": gpu["mean_utilization_pct"],
        "nvml_peak_memory_used_mb": gpu["peak_memory_used_mb"],
        "energy_reason": gpu["reason"],
        "curve": curve,
    }
    record.update(_memory_figures(device))
    if mode == "reach" and status == "complete" and reached_at is None:
        record["note"] = f"did not reach {target} within {recipe['epochs']} epochs"
    return record


def _memory_figures(device: torch.device) -> dict[str, Any]:
    if device.type != "cuda":
        return {"peak_memory_mb": None, "peak_memory_reserved_mb": None,
                "memory_reason": "no CUDA device: torch's peak GPU memory is measured on CUDA only"}
    return {"peak_memory_mb": torch.cuda.max_memory_allocated(device) / 2**20,
            "peak_memory_reserved_mb": torch.cuda.max_memory_reserved(device) / 2**20,
            "memory_reason": None}


def _warm_up(step_model: nn.Module, model: nn.Module, recipe: dict, data: PreparedData, eval_batch: int,
             policy: Policy, device: torch.device) -> None:
    """Runs the training step and the evaluation on random data (compiling, picking kernels,
    allocating), then puts back the initial weights and statistics, as airbench does."""
    if recipe["warmup_steps"] == 0:
        return
    initial = copy.deepcopy(model.state_dict())
    rng_state = torch.get_rng_state()
    optimizer = build_optimizer(model, recipe)
    scaler = torch.amp.GradScaler(device.type) if policy.precision == "fp16" else None
    generator = torch.Generator(device=device).manual_seed(12345)
    c, h, w = data.in_shape
    memory = torch.channels_last if policy.channels_last else torch.contiguous_format
    num_classes = data.num_classes
    for _ in range(recipe["warmup_steps"]):
        images = torch.randn(recipe["batch_size"], c, h, w, generator=generator, device=device)
        labels = torch.randint(0, num_classes, (recipe["batch_size"],), generator=generator, device=device)
        _train_step(step_model, optimizer, scaler, images.contiguous(memory_format=memory), labels,
                    recipe["label_smoothing"], policy.autocast_dtype)
    with torch.no_grad(), torch.autocast(device.type, dtype=policy.autocast_dtype or torch.float32,
                                         enabled=policy.autocast_dtype is not None):
        model.eval()
        images = torch.randn(min(eval_batch, len(data.dataset.test_labels)), c, h, w, generator=generator,
                             device=device)
        tta_logits(model, images.contiguous(memory_format=memory), recipe["tta"])
        model.train()
    model.load_state_dict(initial)
    torch.set_rng_state(rng_state)
    if device.type == "cuda":
        torch.cuda.synchronize()
