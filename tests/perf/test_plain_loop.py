"""Time to 91% on fashion-mnist-91's model and data: the trainer (`bench run`'s train_run, the
policy its trial chooses) against a plain PyTorch loop in the style of the official examples
(pytorch/examples mnist): a per-sample Dataset and a DataLoader, model.train(),
zero_grad/backward/step, fp32 NCHW eager, an evaluation under torch.no_grad after every epoch.
The plain loop gets the same recipe values (optimizer, its parameter groups and learning rates,
schedule, label smoothing, flip augmentation, the whitening init, flip TTA), so what differs is
how the work is done, not what is learned. Minutes long: run with --benchmark-only.

    pytest tests/perf/test_plain_loop.py --benchmark-only
"""

import time

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from bench.datasets import load_dataset
from bench.models import build_model
from bench.suites import load_suite
from bench.train import PreparedData, train_run
from bench.train.optim import build_optimizer
from bench.train.schedules import lr_multiplier
from bench.train.step import set_lr

CPU = torch.device("cpu")


class FashionMNIST(Dataset):
    """One image at a time, normalized (and flipped) per sample, as an official example's transform."""

    def __init__(self, images, labels, mean, std, flip: bool):
        self.images, self.labels, self.flip = images, labels, flip
        self.mean, self.std = mean.view(-1, 1, 1), std.view(-1, 1, 1)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = (torch.from_numpy(self.images[i]).permute(2, 0, 1).float() - self.mean) / self.std
        if self.flip and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x, int(self.labels[i])


def plain_time_to_target(suite, data: PreparedData, seed: int) -> tuple[float | None, float]:
    """Seconds until the first evaluation at or above the target (None if never), and the accuracy."""
    recipe, ds = suite.recipe, data.dataset
    torch.manual_seed(seed)
    model = build_model("airbench", data.num_classes, data.in_shape, suite.resolved["model"]["args"])
    optimizer = build_optimizer(model, recipe)
    train = DataLoader(FashionMNIST(ds.train_images, ds.train_labels, data.mean, data.std, flip=True),
                       batch_size=recipe["batch_size"], shuffle=True, drop_last=True)
    test = DataLoader(FashionMNIST(ds.test_images, ds.test_labels, data.mean, data.std, flip=False), batch_size=1000)
    steps_per_epoch, epochs = len(train), int(recipe["epochs"])
    start, step, accuracy = time.perf_counter(), 0, 0.0
    model.data_init(torch.stack([train.dataset[i][0] for i in range(5000)]))
    for _ in range(epochs):
        model.train()
        for images, labels in train:
            set_lr(optimizer, lr_multiplier(recipe["schedule"], step, steps_per_epoch, epochs * steps_per_epoch),
                   whiten_active=step < recipe["whiten_bias_epochs"] * steps_per_epoch)
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels, label_smoothing=recipe["label_smoothing"])
            loss.backward()
            optimizer.step()
            step += 1
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in test:
                logits = model(images) + model(images.flip(-1))
                correct += int((logits.argmax(1) == labels).sum())
        accuracy = correct / len(test.dataset)
        if accuracy >= suite.resolved["target"]:
            return time.perf_counter() - start, accuracy
    return None, accuracy


def test_trainer_against_a_plain_loop_time_to_91(benchmark):
    suite = load_suite("fashion-mnist-91")
    data = PreparedData.from_dataset(load_dataset(suite.resolved["dataset"]["name"]))
    results = {}

    def both():  # the trainer and the plain loop back to back, the same seed
        run = train_run(suite.resolved, data, seed=0, device=CPU)
        results["trainer"] = (run["time_to_target_s"], run["accuracy"], run["policy_trial"].get("choice"))
        results["plain"] = plain_time_to_target(suite, data, seed=0)

    benchmark.pedantic(both, rounds=1, iterations=1)
    if not results:
        both()
    (trainer_s, trainer_acc, choice), (plain_s, plain_acc) = results["trainer"], results["plain"]
    assert trainer_s is not None, f"the trainer did not reach the target ({trainer_acc})"
    assert plain_s is not None, f"the plain loop did not reach the target ({plain_acc})"
    benchmark.extra_info.update(trainer_time_to_target_s=trainer_s, plain_time_to_target_s=plain_s,
                                speedup=plain_s / trainer_s, trainer_policy=choice,
                                trainer_accuracy=trainer_acc, plain_accuracy=plain_acc)
    assert plain_s / trainer_s >= 3.0, f"the trainer is only {plain_s / trainer_s:.2f}x the plain loop"
