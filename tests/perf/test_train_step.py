"""Training-step throughput of the airbench-style net on CPU, side by side in one run:
this trainer's policy (channels-last + bf16 autocast where the CPU has fast bf16) against
a plain fp32 NCHW eager step on the same batches. Compare the two rows' means: the
ratio is what matters, not the absolute figure on a shared machine.

    make perf     (or: pytest tests/perf --benchmark-only)
"""

import numpy as np
import pytest
import torch

from bench.loaders import Augment, ResidentLoader, channel_stats
from bench.models import build_model
from bench.suites import load_suite
from bench.train import Policy, StepConfig, resolve_policy, train_step
from bench.train.optim import build_optimizer

BATCH = 256
CPU = torch.device("cpu")


def _batches(channels_last: bool):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH * 2, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, BATCH * 2)
    mean, std = channel_stats(images)
    loader = ResidentLoader(images, labels, device=CPU, batch_size=BATCH, mean=mean, std=std,
                            augment=Augment(flip=True, translate=2), shuffle=True, drop_last=True,
                            channels_last=channels_last)
    return list(loader.epoch(0))


@pytest.mark.parametrize("policy_name", ["bench-trainer", "plain-fp32-nchw"])
def test_airbench_train_step_cpu(benchmark, policy_name):
    recipe = load_suite("cifar10-94").recipe
    torch.manual_seed(0)
    model = build_model("airbench", 10, (3, 32, 32))
    if policy_name == "bench-trainer":
        policy = resolve_policy(recipe, CPU, model)
    else:
        policy = Policy(precision="fp32", channels_last=False, compile="off")
    if policy.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, recipe)
    batches = _batches(policy.channels_last)
    state = {"i": 0}

    def step():
        images, labels = batches[state["i"] % len(batches)]
        state["i"] += 1
        train_step(model, optimizer, images, labels, StepConfig(smoothing=0.2, autocast=policy.autocast_dtype))

    step()  # first call builds oneDNN primitives
    benchmark.group = "airbench train step, CPU, batch 256"
    benchmark.extra_info.update(precision=policy.precision, channels_last=policy.channels_last, batch=BATCH)
    benchmark.pedantic(step, rounds=6, iterations=1)
    benchmark.extra_info["images_per_s"] = BATCH / benchmark.stats.stats.mean


def test_trainer_policy_speedup_ratio(benchmark):
    """The gate CI keeps: this trainer's CPU policy against plain fp32 NCHW, timed
    interleaved (A B A B ...) in one process so machine noise hits both alike, gated on
    the ratio of medians, which holds across machines where absolute times do not.
    DESIGN.md measured 2.5x on this CPU (avx512_bf16); the gate is 1.5x."""
    import statistics
    import time

    from bench.env import cpu_has_fast_bf16

    if not cpu_has_fast_bf16():
        pytest.skip("this CPU has no fast bf16 (avx512_bf16/amx): the policy falls back to fp32")
    recipe = load_suite("cifar10-94").recipe
    steps = {}
    for name in ("bench-trainer", "plain-fp32-nchw"):
        torch.manual_seed(0)
        model = build_model("airbench", 10, (3, 32, 32))
        policy = resolve_policy(recipe, CPU, model) if name == "bench-trainer" else Policy("fp32", False, "off")
        if policy.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(model, recipe)
        images, labels = _batches(policy.channels_last)[0]
        steps[name] = (lambda m=model, o=optimizer, x=images, y=labels, p=policy:
                       train_step(m, o, x, y, StepConfig(smoothing=0.2, autocast=p.autocast_dtype)))
        steps[name]()  # warm-up
    times = {name: [] for name in steps}

    def interleaved():
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)

    benchmark.group = "airbench train step, CPU, batch 256: ratio"
    benchmark.pedantic(interleaved, rounds=9, iterations=1)  # a median of 9: robust to a few stalls
    trainer, plain = (statistics.median(times[n]) for n in ("bench-trainer", "plain-fp32-nchw"))
    ratio = plain / trainer
    benchmark.extra_info.update(trainer_images_per_s=BATCH / trainer, plain_images_per_s=BATCH / plain,
                                speedup=ratio)
    assert ratio >= 1.5, f"trainer policy only {ratio:.2f}x the plain fp32 NCHW step"
