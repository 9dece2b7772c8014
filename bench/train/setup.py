"""A run's set-up, outside the timed region: the device and the compute policy, the model and
its sparsity masks (init), the loaders and the data-dependent init's images (data upload)."""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from bench import finetune
from bench.datasets import FILE_DATASETS, ArrayDataset, imagefolder_files
from bench.distributed import Dist
from bench.errors import BenchError
from bench.loaders import Augment, channel_stats, choose_loader, make_file_loader, make_loader
from bench.models import build_model
from bench.sparsity import Sparsifier
from bench.train import step as steps
from bench.train.bptt import bptt_train_step
from bench.train.policy import Decision, Policy, choose
from bench.train.step import StepConfig, TrainStep

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


# ---------------------------------------------------------------- the data ----


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


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def step_for(recipe: dict) -> TrainStep:
    """The plain step, or the BPTT step of a sequence recipe (same signature, bench.train.bptt).
    The plain step is looked up when the run is set up, so a test may stand in for it."""
    if recipe["bptt"]["mode"] == "none":
        return steps.train_step
    return functools.partial(bptt_train_step, bptt=recipe["bptt"])


# ---------------------------------------------------------------- one run's set-up ----


@dataclass
class RunSetup:
    """What set-up hands to the warm-up, the timed loop and the record."""

    device: torch.device
    model: nn.Module              # the module itself (under any DDP or compile wrapper made later)
    policy: Policy
    sparse: Sparsifier
    step: TrainStep
    step_config: StepConfig       # without a scaler: each phase brings its own (Policy.scaler)
    loader_kind: str
    loader_options: dict[str, Any]  # what every loader of the run is made with (device, normalization, dtype)
    train_loader: Any
    test_loader: Any
    steps_per_epoch: int
    init_images: torch.Tensor | None  # the data-dependent init's images, or None for a model without one
    eval_batch_size: int          # the recipe's, or the one the policy trial chose for throughput
    policy_trial: dict[str, Any]  # how the policy was decided (bench.train.policy), for the record
    init_s: float
    data_prep_s: float
    # Wall-clock anchor: with it every reading of the run's clocks maps to a unix time, so views of
    # the record (the MLPerf log) place their events from the record's own readings.
    init_start_unix_s: float


def set_up(suite_resolved: dict, data: PreparedData, seed: int, device: torch.device, loader_choice: str,
           dist: Dist, retrial: bool = False) -> RunSetup:
    """init (model, policy, masks), then the data upload; each phase timed. `retrial`: the policy
    trial runs again whatever the cache holds."""
    recipe = suite_resolved["recipe"]
    t0 = time.perf_counter()
    init_start_unix_s = time.time()
    model, decision, sparse = _model(suite_resolved, data, seed, device, dist, retrial)
    policy = decision.policy
    init_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    kind, options, train_loader, test_loader = _loaders(suite_resolved, data, seed, device, loader_choice, decision,
                                                        dist)
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
    step_config = StepConfig(smoothing=recipe["label_smoothing"], autocast=policy.autocast_dtype,
                             penalty=sparse.penalty if sparse.l1 else None)
    return RunSetup(device=device, model=model, policy=policy, sparse=sparse, step=step_for(recipe),
                    step_config=step_config, loader_kind=kind, loader_options=options, train_loader=train_loader,
                    test_loader=test_loader, steps_per_epoch=steps_per_epoch, init_images=init_images,
                    eval_batch_size=eval_batch(decision, data.dataset), policy_trial=decision.trial,
                    init_s=init_s, data_prep_s=data_prep_s, init_start_unix_s=init_start_unix_s)


def _model(suite_resolved: dict, data: PreparedData, seed: int, device: torch.device,
           dist: Dist, retrial: bool = False) -> tuple[nn.Module, Decision, Sparsifier]:
    """The seeded model on the device, in the policy's layout, with its sparsity masks on."""
    recipe = suite_resolved["recipe"]
    seed_everything(seed)
    model = build_model(suite_resolved["model"]["name"], data.num_classes, data.in_shape,
                        suite_resolved["model"]["args"])
    finetune.prepare(model, suite_resolved["model"])  # model.init and model.freeze
    model = model.to(device)
    model = dist.prepare_model(model, recipe["sync_bn"], device)
    decision = _decide(suite_resolved, data, model, device, dist, retrial)
    if decision.policy.channels_last:
        model = model.to(memory_format=torch.channels_last)
    # a pruning recipe's masks go on now, so compilation and the warm-up see them (bench.sparsity)
    sparse = Sparsifier(model, recipe["sparsity"])
    sparse.attach()
    return model, decision, sparse


def _decide(suite_resolved: dict, data: PreparedData, model: nn.Module, device: torch.device, dist: Dist,
            retrial: bool = False) -> Decision:
    """The compute policy (bench.train.policy): its trial trains copies of the model on the first
    training batch and evaluates the first test images, both unaugmented and in fp32 NCHW (each
    candidate converts them); with several ranks every rank takes rank 0's decision."""
    recipe, arrays = suite_resolved["recipe"], data.dataset
    batch_size = dist.rank_batch(recipe["batch_size"])
    common = dict(device=device, mean=data.mean, std=data.std)
    batch = next(iter(make_loader("resident", arrays.train_images[:batch_size], arrays.train_labels[:batch_size],
                                  batch_size=batch_size, **common).epoch()))
    count = min(len(arrays.test_labels), 1024)
    eval_images = next(iter(make_loader("resident", arrays.test_images[:count], arrays.test_labels[:count],
                                        batch_size=count, **common).epoch()))[0]
    steps = math.ceil(recipe["epochs"] * (len(arrays.train_labels) // recipe["batch_size"]))
    cache_parts = {"model": suite_resolved["model"]["name"], "args": suite_resolved["model"]["args"],
                   "in_shape": data.in_shape, "batch_size": batch_size, "world_size": dist.world_size,
                   "optimizer": recipe["optimizer"], "bptt": recipe["bptt"]["mode"]}
    decision = choose(recipe, device, model, batch, eval_images, steps, step_for(recipe), cache_parts, retrial)
    return dist.gather(decision)[0]


def eval_batch(decision: Decision, arrays) -> int:
    """The evaluation batch, at most the test set: a larger one evaluates nothing more, and the
    padded last batch asked the allocator for it all (eval_batch_size = 10^9: 313 GB)."""
    return max(1, min(decision.eval_batch_size, len(arrays.test_labels)))


def _loaders(suite_resolved: dict, data: PreparedData, seed: int, device: torch.device, loader_choice: str,
             decision: Decision, dist: Dist) -> tuple[str, dict[str, Any], Any, Any]:
    """The loader kind, the options all its loaders share, and the training and test loaders: the
    splits uploaded to where the loader serves them from, in the compute dtype."""
    recipe, dataset_spec = suite_resolved["recipe"], suite_resolved["dataset"]
    arrays, policy = data.dataset, decision.policy
    options: dict[str, Any] = dict(device=device, mean=data.mean, std=data.std, channels_last=policy.channels_last,
                                   dtype=policy.autocast_dtype or torch.float32)
    file_dataset = dataset_spec["name"] in FILE_DATASETS
    kind = choose_loader(loader_choice, arrays.train_images.nbytes, device, file_dataset=file_dataset)
    if kind == "torch":
        options["workers"] = recipe["workers"]
    # the suite's batch_size is the global batch: each rank serves its slice of it
    train_options = dict(batch_size=dist.rank_batch(recipe["batch_size"]),
                         augment=Augment.from_recipe(recipe["augment"]), shuffle=True, drop_last=True, seed=seed,
                         **options)
    test_options = dict(batch_size=eval_batch(decision, arrays), **options)
    if kind == "dali" and file_dataset:
        if arrays.validation_labels is not None:  # the reader would train on the held-out images too
            raise BenchError("dataset.validation_size: DALI's file reader reads every training image in the folder, "
                             "the validation split's too; use --loader resident or torch, or drop the split")
        # DALI reads and decodes the image files itself (extracted once into the cache for an archive)
        train_dir, test_dir, classes = imagefolder_files(dataset_spec["path"] or dataset_spec["name"])
        if classes != tuple(arrays.classes):
            raise BenchError(f"the image folders' classes {classes} are not the data set's {tuple(arrays.classes)}")
        shards = dict(shard_id=dist.rank, num_shards=dist.world_size)
        train_loader = make_file_loader(kind, train_dir, **train_options, **shards)
        test_loader = make_file_loader(kind, test_dir, **test_options, **shards)
    else:
        train_loader = make_loader(kind, arrays.train_images, arrays.train_labels, shard=dist.shard,
                                   **train_options)
        test_loader = make_loader(kind, *dist.test_shard(arrays.test_images, arrays.test_labels), **test_options)
    return kind, options, train_loader, test_loader
