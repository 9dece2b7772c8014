"""Training-step throughput on CPU, side by side in one process: the trainer's policy, as its
trial chooses it on this machine (bench.train.policy), against a plain fp32 NCHW eager step on
the same batches. The ratio is what matters, not the absolute figure on a shared machine.

    make perf     (or: pytest tests/perf --benchmark-only)
"""

import statistics
import time

import numpy as np
import pytest
import torch

from bench.env import cpu_has_fast_bf16
from bench.loaders import Augment, ResidentLoader, channel_stats
from bench.models import build_model
from bench.suites import load_suite
from bench.train import Policy, StepConfig, train_step
from bench.train.optim import build_optimizer
from bench.train.policy import choose

BATCH = 256
CPU = torch.device("cpu")
ROUNDS = 9  # a median of 9 interleaved rounds: robust to a few stalls from other processes
# The suites whose step the gate times, with their input shapes: the main job's small net and
# the cifar10-94 airbench net.
SUITES = {"fashion-mnist-91": (1, 28, 28), "cifar10-94": (3, 32, 32)}


def _batches(in_shape, channels_last: bool = False, dtype: torch.dtype = torch.float32):
    channels, height, width = in_shape
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (BATCH * 2, height, width, channels), dtype=np.uint8)
    labels = rng.integers(0, 10, BATCH * 2)
    mean, std = channel_stats(images)
    loader = ResidentLoader(images, labels, device=CPU, batch_size=BATCH, mean=mean, std=std,
                            augment=Augment(flip=True, translate=2), shuffle=True, drop_last=True,
                            channels_last=channels_last, dtype=dtype)
    return list(loader.epoch(0))


def _model(suite):
    torch.manual_seed(0)
    return build_model("airbench", 10, SUITES[suite.name], suite.resolved["model"]["args"])


def chosen_policy(suite) -> tuple[Policy, dict]:
    """What the trainer's trial chooses here for the suite's step (precision, layout and compile
    all auto, as a suite leaving them at auto gets them)."""
    recipe = {**suite.recipe, "precision": "auto", "channels_last": "auto", "compile": "off"}
    model = _model(suite)
    batch = _batches(SUITES[suite.name])[0]
    decision = choose(recipe, CPU, model, batch, batch[0], steps=1000, step=train_step,
                      cache_parts={"perf": suite.name})
    return decision.policy, decision.trial


def _stepper(suite, policy: Policy):
    model = _model(suite).to(memory_format=policy.memory_format)
    optimizer = build_optimizer(model, suite.recipe)
    images, labels = _batches(SUITES[suite.name], policy.channels_last, policy.autocast_dtype or torch.float32)[0]
    config = StepConfig(smoothing=0.2, autocast=policy.autocast_dtype)

    def step():
        train_step(model, optimizer, images, labels, config)
    step()  # the first call builds the oneDNN primitives
    return step


def gate_for(suite_name: str, fast_bf16: bool) -> float:
    """The speedup the chosen policy must reach over plain fp32 NCHW eager.
    Where bf16 is fast (avx512_bf16/amx), the cifar10-94 net (widths 64/256/256, 3x32x32) gates at
    2.2x. Issue 21 asks 2.5x there, and on a 2-core AVX-512-bf16 EPYC the ratio of medians measured
    2.43, 2.47, 2.51, 2.60, 2.62, 2.68 and 2.72 (7 measurements of 9 interleaved rounds, mean 2.58,
    std 0.11, one of them `make test`'s, which failed): the 2.5x goal is met on average, not with a
    margin, and a gate at 2.5x failed 2 of those 7 on one build. 2.2x is 3.5 std below that mean, so it catches a lost
    policy (bf16 not chosen: about 1.4x) or a 15% slowdown of the bf16 step without failing at
    random; the benchmark records the measured ratio beside the 2.5x goal (`goal`, `goal_met`).
    fashion-mnist-91's net is far smaller (8 and 32 channel convolutions at 27x27, where oneDNN's
    bf16 kernels gain least and pooling, batch norm and GELU weigh more): on the same EPYC it
    measured 2.04-2.36x in 12 interleaved measurements, so it keeps the floor every CPU kind keeps,
    1.2x. Without fast bf16 both nets gate at 1.2x (channels-last fp32 measured 1.38x on a 2-core
    AVX2 EPYC)."""
    return 2.2 if fast_bf16 and suite_name == "cifar10-94" else 1.2


def goal_for(suite_name: str, fast_bf16: bool) -> float:
    """Issue 21's goal: 2.5x where bf16 is fast, 1.2x elsewhere (recorded, gated by gate_for)."""
    return 2.5 if fast_bf16 and suite_name == "cifar10-94" else 1.2


# The main job's step gates every `make test`. The cifar10-94 step (10x the work a step) carries
# the 2.2x bf16 gate: 40 s where bf16 is fast, so make test runs it there; elsewhere (minutes in
# fp32) `make perf` does.
@pytest.mark.parametrize("suite_name", [
    "fashion-mnist-91",
    pytest.param("cifar10-94", marks=() if cpu_has_fast_bf16() else pytest.mark.long)])
def test_chosen_policy_speedup_ratio(benchmark, suite_name):
    """The gate CI keeps, on every CPU kind: the chosen policy against plain fp32 NCHW eager, timed
    interleaved (A B A B ...) so machine noise hits both alike, gated on the ratio of medians
    (gate_for says how much it must win, and why)."""
    suite = load_suite(suite_name)
    policy, trial = chosen_policy(suite)
    steps = {"chosen": _stepper(suite, policy), "plain-fp32-nchw": _stepper(suite, Policy("fp32", False, "off"))}
    times = {name: [] for name in steps}

    def interleaved():
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)

    benchmark.group = f"{suite_name} train step, CPU, batch {BATCH}: chosen policy / plain"
    benchmark.pedantic(interleaved, rounds=ROUNDS, iterations=1)
    while len(times["chosen"]) < ROUNDS:  # --benchmark-disable runs the function once: the gate still needs its rounds
        interleaved()
    chosen, plain = (statistics.median(times[n]) for n in ("chosen", "plain-fp32-nchw"))
    ratio = plain / chosen
    fast_bf16 = cpu_has_fast_bf16()
    gate = gate_for(suite_name, fast_bf16)
    benchmark.extra_info.update(chosen=policy.name(), trial=trial.get("candidates"), fast_bf16=fast_bf16,
                                chosen_images_per_s=BATCH / chosen, plain_images_per_s=BATCH / plain,
                                speedup=ratio, gate=gate, goal=goal_for(suite_name, fast_bf16),
                                goal_met=ratio >= goal_for(suite_name, fast_bf16))
    assert ratio >= gate, f"{suite_name}: the chosen policy ({policy.name()}) is only {ratio:.2f}x the plain " \
                          f"fp32 NCHW step (gate {gate}x, fast bf16: {fast_bf16})"


@pytest.mark.long  # images/s for the record, no gate (the ratio test above is the gate): `make perf`
@pytest.mark.parametrize("policy_name", ["chosen", "plain-fp32-nchw"])
def test_airbench_train_step_cpu(benchmark, policy_name):
    """Each policy's step alone, for its images/s (the ratio test above is the gate)."""
    suite = load_suite("fashion-mnist-91")
    policy = chosen_policy(suite)[0] if policy_name == "chosen" else Policy("fp32", False, "off")
    step = _stepper(suite, policy)
    benchmark.group = f"fashion-mnist-91 train step, CPU, batch {BATCH}"
    benchmark.extra_info.update(policy=policy.name(), batch=BATCH)
    benchmark.pedantic(step, rounds=6, iterations=1)
    if benchmark.stats is not None:  # None under --benchmark-disable: nothing was timed
        benchmark.extra_info["images_per_s"] = BATCH / benchmark.stats.stats.mean
