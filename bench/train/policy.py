"""The compute policy: how a run computes (precision, layout, compilation, evaluation batch),
decided by measurement where the recipe says `auto`.

Before the loaders are made, outside the clock, each candidate policy trains a few steps on a
real batch (an untimed first step each, then timed rounds interleaved A B A B, so load from
other processes hits every candidate alike); the fastest median wins. The trial works on copies
of the model and puts the random state back, so the run itself is bit-identical to a run given
the chosen policy explicitly. The decision is cached per machine, model, input shape and batch
(bench.train.policy_cache), so later invocations skip the trial and say so, but only a decision
that earned it: a trial under high load (bench.load) or whose winner is within the candidates'
own noise is not cached (`not_cached` says why): it decides this process's runs only (an
invocation's later seeds reuse it, `reused`). Explicit settings
are never overridden: only `auto` keys have candidates.
"""

from __future__ import annotations

import copy
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from bench.errors import BenchError
from bench.load import HIGH_LOAD_SHARE, CompetingLoad
from bench.train import policy_cache
from bench.train.optim import build_optimizer
from bench.train.step import StepConfig, set_lr

ROUNDS = 3              # timed rounds per candidate, after one untimed step (oneDNN/cuDNN plans)
HOPELESS_BF16 = 4.0     # bf16 is not tried where the probe matmul is this many times slower than fp32
PROBE_CALLS = 5         # the probe's timed calls per dtype (the fastest counts)
# torch.compile's cost and the best it can win, for the payback estimate; compilation is not tried
# to find out, since on CPU that alone costs 17-28 s (docs/perf-notes.md#early-speed-facts-2-cpu-cores-no-gpu)
# and more: on the 2-core
# AVX2 EPYC, fashion-mnist-91's step compiled in 91-102 s and then ran 3-6x slower than eager
# (1.86 vs 0.67 s NCHW, 3.48 vs 0.56 s channels-last, a shared machine; issue 21). The CPU gain is
# an optimistic bound, so compiling is tried only for runs long enough that it could pay.
COMPILE_COST_S = {"cpu": 30.0, "cuda": 60.0}
COMPILE_GAIN = {"cpu": 0.10, "cuda": 0.30}
EVAL_BATCHES = (256, 512, 1024)  # the evaluation batch sizes tried where eval_batch_size is auto
# Decisions this process made that were not cached, by (cache file, key): a trial not trusted for
# later invocations still decides every later run of this one (its other seeds, a sweep's other
# cells), so an invocation's seeds never run in two arithmetics (bf16 for one, fp32 for the next).
_UNCACHED: dict[tuple[str, str], dict[str, Any]] = {}


@dataclass(frozen=True)
class Policy:
    """How a run computes: chosen once from the recipe and the device, recorded in the result."""

    precision: str        # fp32 | bf16 | fp16
    channels_last: bool
    compile: str          # off | default | reduce-overhead | max-autotune

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """A fresh gradient scaler for fp16 training, else None."""
        return torch.amp.GradScaler(device.type) if self.precision == "fp16" else None

    def name(self) -> str:
        compiled = "" if self.compile == "off" else f" compiled({self.compile})"
        return f"{self.precision} {'channels-last' if self.channels_last else 'NCHW'}{compiled}"


@dataclass
class Decision:
    """The policy, the evaluation batch size, and the trial's record (`policy_trial`)."""

    policy: Policy
    eval_batch_size: int
    trial: dict[str, Any]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_probe(device: torch.device) -> dict[str, Any]:
    """A 128x128 matmul in fp32 and bf16 (tens of microseconds where bf16 is native, about 20 ms
    where it is emulated): bf16 is hopeless where it is HOPELESS_BF16 times slower. Each figure is
    the fastest of PROBE_CALLS calls: a call of 50 us is easily doubled by one preemption. (With a
    mean of three calls, a run on an AVX-512-bf16 EPYC chose fp32 channels-last, where 8 of 8 trials
    of the same step timed bf16 channels-last 1.6x faster: most likely the probe had read bf16 as
    hopeless; that run's trial record was not kept.)"""
    if device.type == "cuda":
        return {"hopeless": False, "why": "CUDA: bf16 is native"}
    a = torch.randn(128, 128, generator=torch.Generator().manual_seed(0))
    seconds = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        x = a.to(dtype)
        x @ x
        calls = []
        for _ in range(PROBE_CALLS):
            start = time.perf_counter()
            x @ x
            calls.append(time.perf_counter() - start)
        seconds[name] = min(calls)
    slower = seconds["bf16"] / max(seconds["fp32"], 1e-9)
    return {"hopeless": slower >= HOPELESS_BF16, "fp32_matmul_s": seconds["fp32"], "bf16_matmul_s": seconds["bf16"],
            "bf16_slower_x": slower}


def candidates(recipe: dict, device: torch.device, model: nn.Module, probe: Callable[[], dict[str, Any]]
               ) -> tuple[list[Policy], dict[str, Any]]:
    """Every policy the recipe allows (an explicit key has one value), and the notes of what was
    left out and why. The compile option is settled here by its payback estimate (see choose)."""
    notes: dict[str, Any] = {}
    precision = recipe["precision"]
    if precision == "fp16" and device.type != "cuda":
        raise BenchError("recipe.precision fp16 needs CUDA; use bf16 or auto on CPU")
    precisions = [precision]
    if precision == "auto":
        notes["bf16_probe"] = probe()
        precisions = ["fp32"] if notes["bf16_probe"]["hopeless"] else ["fp32", "bf16"]
    has_conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    layouts = {"on": [True], "off": [False]}.get(recipe["channels_last"], [False, True] if has_conv else [False])
    if recipe["channels_last"] == "auto" and not has_conv:
        notes["channels_last"] = "no convolution: NCHW only"
    compile_mode = "off" if recipe["compile"] == "auto" else recipe["compile"]
    return [Policy(p, cl, compile_mode) for p in precisions for cl in layouts], notes


def compile_pays(recipe: dict, device: torch.device, steps: int, eager_step_s: float) -> tuple[bool, dict[str, Any]]:
    """Whether compiling is paid back within the run: the estimated saving (steps x the fastest
    eager step x the gain compilation can bring on this device) against its estimated cost."""
    saving = steps * eager_step_s * COMPILE_GAIN[device.type]
    cost = COMPILE_COST_S[device.type]
    return saving > cost, {"estimated_saving_s": saving, "estimated_compile_s": cost, "steps": steps,
                           "assumed_gain": COMPILE_GAIN[device.type]}


class _Candidate:
    """One candidate's copy of the model, its optimizer (lr 0: every kernel runs, no weight
    moves, nothing diverges) and its batch, in its layout and dtype."""

    def __init__(self, policy: Policy, model: nn.Module, recipe: dict, batch: tuple[torch.Tensor, torch.Tensor],
                 step: Callable, smoothing: float):
        self.policy = policy
        self.model = copy.deepcopy(model).to(memory_format=policy.memory_format)
        self.step_model = torch.compile(self.model, mode=policy.compile, dynamic=False) \
            if policy.compile != "off" else self.model
        self.optimizer = build_optimizer(self.model, recipe)
        set_lr(self.optimizer, 0.0, whiten_active=True)
        self.images = batch[0].to(policy.autocast_dtype or torch.float32).contiguous(memory_format=policy.memory_format)
        self.labels = batch[1]
        self.config = StepConfig(smoothing=smoothing, autocast=policy.autocast_dtype, scaler=policy.scaler(
            batch[0].device))
        self.step = step
        self.seconds: list[float] = []

    def time_step(self, device: torch.device) -> float:
        _sync(device)
        start = time.perf_counter()
        self.step(self.step_model, self.optimizer, self.images, self.labels, self.config)
        _sync(device)
        return time.perf_counter() - start


def time_candidates(policies: list[Policy], model: nn.Module, recipe: dict, batch: tuple[torch.Tensor, torch.Tensor],
                    step: Callable, smoothing: float, device: torch.device) -> dict[Policy, list[float]]:
    """Each candidate's step seconds, one per interleaved round."""
    trials = [_Candidate(p, model, recipe, batch, step, smoothing) for p in policies]
    for trial in trials:
        trial.time_step(device)  # the first call: plans, primitives, compilation
    for _ in range(ROUNDS):
        for trial in trials:
            trial.seconds.append(trial.time_step(device))
    return {trial.policy: trial.seconds for trial in trials}


def within_noise(rounds: dict[Policy, list[float]]) -> str | None:
    """Why the fastest candidate is not told apart from the runner-up, or None where it is: the
    range of the winner's rounds reaches into the runner-up's. With ROUNDS interleaved rounds
    each, that range is the spread the machine gave the two in the same stretch of time; a
    fixed percentage would be wrong both ways (a 3% difference measured cleanly is real, an
    11% one under load is not: issue 38's cached fp32 choice cost 60% on every later run)."""
    if len(rounds) < 2:
        return None
    best, second = sorted(rounds, key=lambda p: statistics.median(rounds[p]))[:2]
    if max(rounds[best]) < min(rounds[second]):
        return None
    return (f"{best.name()} and {second.name()} are within their own noise (rounds "
            f"{min(rounds[best]):.4g}–{max(rounds[best]):.4g} s and {min(rounds[second]):.4g}–"
            f"{max(rounds[second]):.4g} s overlap)")


def not_cached_why(rounds: dict[Policy, list[float]], load: dict[str, Any]) -> str | None:
    """Why a trial must not be cached (it decides its own run only), or None: it ran under high
    load, or its winner is within the candidates' own noise (both said where both hold)."""
    reasons = [f"the trial met high load ({load['competing_cpu_share']:.0%} of the CPU taken by other "
               f"processes, above {HIGH_LOAD_SHARE:.0%})" if load.get("high") else None, within_noise(rounds)]
    return "; ".join(r for r in reasons if r) or None


def eval_images_per_s(model: nn.Module, policy: Policy, images: torch.Tensor, batch_sizes: tuple[int, ...],
                      device: torch.device) -> dict[int, float]:
    """Evaluation throughput (images/s under inference_mode, in the policy's layout and dtype) of
    each batch size, on a copy of the model: an untimed call, then one timed."""
    model = copy.deepcopy(model).to(memory_format=policy.memory_format).eval()
    rates = {}
    with torch.inference_mode(), torch.autocast(device.type, dtype=policy.autocast_dtype or torch.float32,
                                                enabled=policy.autocast_dtype is not None):
        for size in batch_sizes:
            x = images[:size].to(policy.autocast_dtype or torch.float32).contiguous(memory_format=policy.memory_format)
            model(x)
            _sync(device)
            start = time.perf_counter()
            model(x)
            _sync(device)
            rates[size] = size / (time.perf_counter() - start)
    return rates


class RandomState:
    """Every random generator a run draws from, saved and put back (the trial must leave none moved)."""

    def __enter__(self) -> "RandomState":
        self.torch = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        self.numpy = np.random.get_state()
        self.python = random.getstate()
        return self

    def __exit__(self, *exc: object) -> None:
        torch.set_rng_state(self.torch)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        np.random.set_state(self.numpy)
        random.setstate(self.python)


def _choice(policy: Policy, eval_batch_size: int) -> dict[str, Any]:
    return {"precision": policy.precision, "channels_last": policy.channels_last, "compile": policy.compile,
            "eval_batch_size": eval_batch_size}


def _from_choice(choice: dict[str, Any]) -> tuple[Policy, int]:
    return Policy(choice["precision"], choice["channels_last"], choice["compile"]), choice["eval_batch_size"]


def _is_auto(recipe: dict) -> bool:
    return "auto" in (recipe["precision"], recipe["channels_last"], recipe["compile"], recipe["eval_batch_size"])


def choose(recipe: dict, device: torch.device, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
           eval_images: torch.Tensor, steps: int, step: Callable, cache_parts: dict[str, Any],
           retrial: bool = False) -> Decision:
    """The run's policy: the explicit one, the cached decision, or the trial's fastest.
    `batch` is a real training batch (fp32 NCHW), `eval_images` test images for the evaluation
    batch size, `steps` the run's step budget (for the compile estimate). `retrial`: the cache
    is not read (bench run --retrial); a trial that earns it replaces the entry."""
    policies, notes = candidates(recipe, device, model, lambda: bf16_probe(device))
    if len(policies) == 1 and recipe["compile"] != "auto" and recipe["eval_batch_size"] != "auto":
        why = "every policy key is explicit" if not _is_auto(recipe) else "one candidate"
        return Decision(policies[0], recipe["eval_batch_size"],
                        {"tried": False, "why": why, **notes,
                         "choice": _choice(policies[0], recipe["eval_batch_size"])})
    entry_key = policy_cache.key({**cache_parts, "machine": policy_cache.machine(device),
                                  "recipe": {k: recipe[k] for k in ("precision", "channels_last", "compile",
                                                                    "eval_batch_size", "label_smoothing")}})
    cached = None if retrial else policy_cache.load(entry_key)
    earlier = None if retrial else _UNCACHED.get((str(policy_cache.path()), entry_key))
    if cached is None and earlier is not None:  # this process's own trial: the same arithmetic for every seed
        policy, eval_batch_size = _from_choice(earlier["choice"])
        return Decision(policy, eval_batch_size, {"tried": False, "cached": False, "reused": True,
                                                  "cache_key": entry_key, "choice": earlier["choice"],
                                                  "not_cached": earlier["not_cached"],
                                                  "measured_at": earlier["measured_at"], "trial": earlier})
    if cached is not None:
        policy, eval_batch_size = _from_choice(cached["choice"])
        return Decision(policy, eval_batch_size, {"tried": False, "cached": True,
                                                  "cache_file": str(policy_cache.path()),
                                                  "cache_key": entry_key, "choice": cached["choice"],
                                                  "measured_at": cached.get("measured_at"),
                                                  "trial": cached.get("trial")})
    with RandomState(), CompetingLoad(device.index or 0 if device.type == "cuda" else None) as load:
        trial = _trial(recipe, device, model, policies, notes, batch, eval_images, steps, step)
    rounds = trial.pop("rounds")
    trial.update(cache_key=entry_key, load=load.figures(), retrial=retrial,
                 measured_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    trial["not_cached"] = not_cached_why(rounds, trial["load"])
    if trial["not_cached"] is None:
        policy_cache.store(entry_key, {"choice": trial["choice"], "trial": trial, "measured_at": trial["measured_at"]})
        _UNCACHED.pop((str(policy_cache.path()), entry_key), None)
    else:
        _UNCACHED[(str(policy_cache.path()), entry_key)] = trial
    policy, eval_batch_size = _from_choice(trial["choice"])
    return Decision(policy, eval_batch_size,
                    {"tried": True, "cached": False, "cache_file": str(policy_cache.path()), **trial})


def _trial(recipe: dict, device: torch.device, model: nn.Module, policies: list[Policy], notes: dict[str, Any],
           batch: tuple[torch.Tensor, torch.Tensor], eval_images: torch.Tensor, steps: int, step: Callable
           ) -> dict[str, Any]:
    """Times the candidates and returns the record of the trial with its choice."""
    start = time.perf_counter()
    smoothing = recipe["label_smoothing"]
    rounds: dict[Policy, list[float]] = {}
    if len(policies) > 1 or recipe["compile"] == "auto":
        rounds = time_candidates(policies, model, recipe, batch, step, smoothing, device)
        why = "fastest median step time over interleaved rounds" if len(policies) > 1 else "only candidate"
    else:
        why = "only candidate"
    timed = {p: statistics.median(r) for p, r in rounds.items()}
    best = min(timed, key=timed.get) if timed else policies[0]
    if recipe["compile"] == "auto":
        pays, notes["compile"] = compile_pays(recipe, device, steps, timed[best])
        if pays:
            mode = "max-autotune" if device.type == "cuda" else "default"
            compiled = Policy(best.precision, best.channels_last, mode)
            rounds.update(time_candidates([compiled], model, recipe, batch, step, smoothing, device))
            timed = {p: statistics.median(r) for p, r in rounds.items()}
            best = min((best, compiled), key=timed.get)
        else:
            notes["compile"]["why"] = "not tried: the estimated saving does not pay for compiling"
    eval_batch_size = recipe["eval_batch_size"]
    if eval_batch_size == "auto":
        sizes = tuple(sorted({min(size, len(eval_images)) for size in EVAL_BATCHES}))
        rates = eval_images_per_s(model, best, eval_images, sizes, device)
        eval_batch_size = max(rates, key=rates.get)
        notes["eval_batch"] = {"images_per_s": {str(k): v for k, v in rates.items()},
                               "why": "the highest evaluation images/s under inference_mode in the chosen policy"}
    return {"candidates": [{"policy": p.name(), "step_s": s, "rounds_s": rounds[p]} for p, s in timed.items()],
            "choice": _choice(best, eval_batch_size), "chosen": best.name(), "why": why, **notes,
            "trial_s": time.perf_counter() - start, "rounds": rounds}


__all__ = ["Decision", "Policy", "RandomState", "bf16_probe", "candidates", "compile_pays", "eval_images_per_s",
           "not_cached_why", "policy_cache", "time_candidates", "within_noise"]
