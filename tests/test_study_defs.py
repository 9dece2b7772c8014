"""The shipped study definitions of issue 20 are fit to publish: five seeds, a validation split
for every choice, learning-rate ranges with each known best inside them, the fixed-steps and
linear-scaling arms exact, the sparsity comparison complete. Nothing here trains."""

import math

import pytest

from bench.studies.study import load_study
from bench.suites import load_suite

PUBLISHED = ["fmnist-optimizers", "fmnist-data-size", "fmnist-data-size-steps", "fmnist-lenet5-batch",
             "fmnist-mlp-lr", "fmnist-lstm-bptt", "fmnist-sparsity"]


@pytest.mark.parametrize("name", PUBLISHED)
def test_five_seeds_and_a_validation_split_at_every_point(name):
    study = load_study(name)
    assert len(study.seeds) >= 5
    assert all(p.suite.dataset["validation_size"] == 5000 for p in study.points)


def _lrs(study, optimizer):
    return sorted(p.axes["recipe.lr"] for p in study.points if p.axes["recipe.optimizer"] == optimizer)


@pytest.mark.parametrize("optimizer, known_best", [("sgd", 0.01), ("adam", 0.001), ("adadelta", 0.1)])
def test_each_optimizer_has_its_known_best_inside_its_range(optimizer, known_best):
    """The two-seed run's bests (SGD 0.01, Adam 0.001 at the old edge, Adadelta 0.1) sit inside
    each range, with a value on either side; train accuracy is measured; few points in all."""
    study = load_study("fmnist-optimizers")
    lrs = _lrs(study, optimizer)
    assert lrs[0] < known_best < lrs[-1] and known_best in lrs
    assert len(study.points) <= 15
    assert all(p.suite.recipe["train_eval"] > 0 for p in study.points)


def _steps(point):
    return point.suite.recipe["epochs"] * math.ceil(point.suite.dataset["train_size"] / point.suite.recipe["batch_size"])


def test_the_two_data_size_arms_fix_epochs_and_steps():
    epochs = load_study("fmnist-data-size")
    steps = load_study("fmnist-data-size-steps")
    assert {p.suite.recipe["epochs"] for p in epochs.points} == {10.0}
    assert {_steps(p) for p in steps.points} == {4000}
    assert epochs.axes["dataset.train_size"] == steps.axes["dataset.train_size"]
    # the fixed-steps arm's grid holds the fixed-epochs arm's and 0.1 beyond it (the fixed-epochs
    # sweep chose 0.03, its edge, at the small sizes)
    assert set(epochs.axes["recipe.lr"]) < set(steps.axes["recipe.lr"])
    assert max(steps.axes["recipe.lr"]) > max(epochs.axes["recipe.lr"])
    assert all(p.suite.recipe["train_eval"] for p in epochs.points + steps.points)


def test_the_batch_study_has_a_scaled_and_an_unscaled_arm_in_reach_mode():
    study = load_study("fmnist-lenet5-batch")
    pairs = {(p.suite.recipe["batch_size"], p.suite.recipe["lr"]) for p in study.points}
    batches = study.axes["recipe.batch_size"]
    assert {(b, 0.05 * b / 128) for b in batches} <= pairs      # the linear scaling rule
    assert {(b, 0.05) for b in batches} <= pairs                # no scaling
    assert len(pairs) == 2 * len(batches) - 1                   # batch 128 is in both
    assert all(p.suite.mode == "reach" for p in study.points) and study.rank == "time"


def test_the_sparsity_study_has_every_method_and_the_narrowed_dense_networks():
    study = load_study("fmnist-sparsity")
    kinds = {(p.suite.recipe["sparsity"]["method"], p.suite.recipe["sparsity"]["threshold"] is not None)
             for p in study.points}
    assert kinds == {("none", False), ("magnitude", False), ("l1", False), ("l1", True)}
    targets = {p.suite.recipe["sparsity"]["target"] for p in study.points if p.suite.recipe["sparsity"]["target"]}
    assert len([t for t in targets if 0.005 <= t <= 0.02]) >= 5  # refined where the methods part
    dense = [p for p in study.points if p.suite.recipe["sparsity"]["method"] == "none"]
    widths = sorted(p.suite.model["args"]["hidden"][0] for p in dense)
    assert widths[-1] == 256 and len(widths) >= 8
    sparse_widths = {p.suite.model["args"]["hidden"][0] for p in study.points if p not in dense}
    assert sparse_widths == {256}


def test_the_bptt_study_covers_the_four_modes():
    study = load_study("fmnist-lstm-bptt")
    assert study.axes["recipe.bptt.mode"] == ["full", "truncated", "sliding", "shuffled"]
    assert len(study.axes["recipe.lr"]) >= 3


def test_the_mlp_lr_study_records_per_epoch_curves():
    assert all(p.suite.recipe["curve_eval"] for p in load_study("fmnist-mlp-lr").points)


def test_the_cifar10_lenet5_recipe_is_the_one_sized_for_60_percent():
    """Augmentation, a one-cycle schedule and 30 epochs; its target is the lead's to calibrate."""
    suite = load_suite("cifar10-lenet5")
    recipe = suite.recipe
    assert recipe["epochs"] >= 30 and recipe["schedule"]["kind"] == "onecycle"
    assert recipe["augment"]["flip"] and recipe["augment"]["translate"] > 0
