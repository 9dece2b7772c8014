"""Small synthetic data sets and suites for unit tests (never used for accuracy claims)."""

from __future__ import annotations

import numpy as np

from bench.datasets import ArrayDataset

SUITE_TEXT = """
name = "tiny"
mode = "{mode}"
target = {target}
runs = 2
devices = ["cpu"]
[dataset]
name = "fashion-mnist"
[model]
name = "{model}"
{model_args}
[recipe]
epochs = {epochs}
batch_size = 32
eval_batch_size = 64
lr = {lr}
warmup_steps = 1
tta = {tta}
[recipe.augment]
flip = true
translate = 1
"""


def separable_dataset(n_train: int = 256, n_test: int = 128, size: int = 8, channels: int = 1,
                      seed: int = 0) -> ArrayDataset:
    """Two classes told apart by brightness: any working trainer learns it in a few steps."""
    rng = np.random.default_rng(seed)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n)
        base = np.where(labels[:, None, None, None] == 1, 170, 70)
        images = np.clip(base + rng.normal(0, 25, (n, size, size, channels)), 0, 255).astype(np.uint8)
        return images, labels.astype(np.int64)

    train_x, train_y = split(n_train)
    test_x, test_y = split(n_test)
    return ArrayDataset(name="separable", train_images=train_x, train_labels=train_y, test_images=test_x,
                        test_labels=test_y, classes=("dark", "bright"), source="synthetic", sha256=None)


def suite_text(mode: str = "budget", target: float = 0.9, model: str = "mlp", model_args: str = "args = { hidden = [32] }",
               epochs: float = 2, lr: float = 0.05, tta: int = 0) -> str:
    return SUITE_TEXT.format(mode=mode, target=target, model=model, model_args=model_args, epochs=epochs, lr=lr,
                             tta=tta)


STUDY_BASE = """
name = "syn-base"
mode = "budget"
target = 0.9
devices = ["cpu"]
[dataset]
name = "fashion-mnist"
[model]
name = "mlp"
args = { hidden = [16] }
[recipe]
epochs = 2
batch_size = 32
eval_batch_size = 64
lr = 0.0005
warmup_steps = 1
train_eval = 64
"""

STUDY = """
name = "syn-report"
description = "training-set size x batch size on the separable set"
suite = "base.toml"
seeds = [0, 1]
[axes]
"dataset.train_size" = [64, 256]
"recipe.batch_size" = [16, 32]
"""


def serve_separable_data(patch) -> None:
    """Every data set a suite names is the separable set (for the runner and a study's pre-flight)."""
    patch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())
    patch.setattr("bench.datasets.load_dataset", lambda *a, **k: separable_dataset())


def run_synthetic_study(folder):
    """A finished study on the separable set (8 cells: train_size x batch_size x 2 seeds):
    returns (study file, results folder)."""
    import pytest
    import torch

    from bench.cli import main

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.toml").write_text(STUDY_BASE)
    study = folder / "syn-report.toml"
    study.write_text(STUDY)
    results = folder / "results"
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        serve_separable_data(patch)
        patch.setattr("bench.studies.sweep.REPORT_EVERY_S", 1e9)
        torch.set_num_threads(1)
        try:
            assert main(["sweep", str(study), "--results", str(results), "--device", "cpu"]) == 0
        finally:
            torch.set_num_threads(threads)
    return study, results / "studies" / "syn-report"


def per_optimizer_lr_study(name: str, suite: str, seeds: list[int], validation_size: int,
                           sgd_lrs: list[float], adam_lrs: list[float]) -> str:
    """A study TOML whose learning-rate grid is each optimizer's own range: the full optimizer x lr
    grid is excluded and one [[include]] row per optimizer adds its rates (as fmnist-optimizers does)."""
    every_lr = sorted(set(sgd_lrs) | set(adam_lrs), reverse=True)
    return (f'name = "{name}"\nsuite = "{suite}"\nseeds = {seeds}\n[set]\n'
            f'"dataset.validation_size" = {validation_size}\n[axes]\n"recipe.optimizer" = ["sgd", "adam"]\n'
            f'"recipe.lr" = {every_lr}\n[[exclude]]\n"recipe.optimizer" = ["sgd", "adam"]\n'
            f'[[include]]\n"recipe.optimizer" = "sgd"\n"recipe.lr" = {sgd_lrs}\n'
            f'[[include]]\n"recipe.optimizer" = "adam"\n"recipe.lr" = {adam_lrs}\n')
