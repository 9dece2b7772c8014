"""The compute policy decided by measurement (bench.train.policy): the trial's choice and
timings are recorded, a second invocation takes the cached decision and says so, explicit
settings are never overridden, and the trial leaves the run bit-identical to one given the
chosen policy explicitly."""

from __future__ import annotations

import json

import pytest
import torch

import bench.train.policy as policy_module
from bench.suites import load_suite
from bench.train import PreparedData, train_run
from bench.train import policy_cache
from tests.helpers import separable_dataset, suite_text

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def rgb_data():
    return PreparedData.from_dataset(separable_dataset(n_train=256, n_test=100, size=12, channels=3))


@pytest.fixture
def conv_suite(tmp_path):
    """A tiny airbench net (convolutions, so channels-last is a candidate) with every policy key auto."""
    path = tmp_path / "a.toml"
    path.write_text(suite_text(model="airbench", model_args="args = { widths = [8, 8, 8] }", epochs=1, tta=1))

    def make(*overrides):
        return load_suite(str(path), ['recipe.precision="auto"', 'recipe.channels_last="auto"',
                                      'recipe.eval_batch_size="auto"', 'recipe.compile="auto"', "recipe.warmup_steps=2",
                                      "recipe.batch_size=32", *overrides]).resolved
    return make


def test_the_trial_records_each_candidate_and_runs_the_fastest(conv_suite, rgb_data, one_torch_thread):
    run = train_run(conv_suite(), rgb_data, seed=0, device=CPU)
    trial = run["policy_trial"]
    assert trial["tried"] is True and trial["cached"] is False
    timed = {c["policy"]: c["step_s"] for c in trial["candidates"]}
    # both layouts were timed (a conv net); bf16 too unless its probe found it hopeless
    assert {"fp32 NCHW", "fp32 channels-last"} <= set(timed)
    assert ("bf16 NCHW" in timed) == (not trial["bf16_probe"]["hopeless"])
    assert trial["chosen"] == min(timed, key=timed.get)
    choice = trial["choice"]
    assert (run["precision"], run["channels_last"], run["compile"]) == \
        (choice["precision"], choice["channels_last"], choice["compile"])
    # compile=auto is settled by the payback estimate: a 8-step run never pays for compiling on CPU
    assert run["compile"] == "off" and "not tried" in trial["compile"]["why"]
    # the evaluation batch: the fastest of those tried, capped at the 100 test images
    rates = {int(k): v for k, v in trial["eval_batch"]["images_per_s"].items()}
    assert set(rates) == {100} and run["eval_batch_size"] == 100
    assert run["eval_images_per_s"] > 0


def test_a_later_invocation_uses_the_cache_and_says_so(conv_suite, rgb_data, one_torch_thread):
    first = train_run(conv_suite(), rgb_data, seed=0, device=CPU)
    second = train_run(conv_suite(), rgb_data, seed=1, device=CPU)
    assert first["policy_trial"]["tried"] and not second["policy_trial"]["tried"]
    assert second["policy_trial"]["cached"] is True
    assert second["policy_trial"]["choice"] == first["policy_trial"]["choice"]
    assert second["policy_trial"]["trial"]["candidates"] == first["policy_trial"]["candidates"]
    stored = json.loads(policy_cache.path().read_text())
    assert first["policy_trial"]["cache_key"] in stored
    # another batch size is another key: a fresh trial
    third = train_run(conv_suite("recipe.batch_size=64"), rgb_data, seed=0, device=CPU)
    assert third["policy_trial"]["tried"] is True


def test_an_isa_cap_is_another_machine_for_the_cache(monkeypatch):
    """A decision timed on the full AVX-512 ISA must not be reused under ATEN_CPU_CAPABILITY=avx2 or
    ONEDNN_MAX_CPU_ISA=AVX2 (the same CPU, another machine for the speed of each policy)."""
    from bench import env
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(env, "cpu_isa", lambda: "AVX512")
    full = policy_cache.key(policy_cache.machine(CPU))
    assert policy_cache.key(policy_cache.machine(CPU)) == full
    monkeypatch.setattr(env, "cpu_isa", lambda: "AVX2")
    torch_capped = policy_cache.key(policy_cache.machine(CPU))
    monkeypatch.setattr(env, "cpu_isa", lambda: "AVX512")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    onednn_capped = policy_cache.key(policy_cache.machine(CPU))
    assert len({full, torch_capped, onednn_capped}) == 3


def test_explicit_settings_are_never_overridden(conv_suite, rgb_data, monkeypatch, one_torch_thread):
    # a cached decision for the very same key says otherwise; explicit keys never read it
    def never(*args, **kwargs):
        raise AssertionError("the trial ran for explicit settings")
    monkeypatch.setattr(policy_module, "time_candidates", never)
    monkeypatch.setattr(policy_module, "bf16_probe", never)
    run = train_run(conv_suite('recipe.precision="fp32"', 'recipe.channels_last="on"', "recipe.eval_batch_size=64",
                               'recipe.compile="off"'),
                    rgb_data, seed=0, device=CPU)
    assert run["policy_trial"] == {"tried": False, "why": "every policy key is explicit",
                                   "choice": {"precision": "fp32", "channels_last": True, "compile": "off",
                                              "eval_batch_size": 64}}
    assert run["channels_last"] is True and run["eval_batch_size"] == 64


def test_an_explicit_key_limits_the_candidates(conv_suite, rgb_data, one_torch_thread):
    run = train_run(conv_suite('recipe.channels_last="off"'), rgb_data, seed=0, device=CPU)
    assert all("NCHW" in c["policy"] for c in run["policy_trial"]["candidates"])
    assert run["channels_last"] is False


def test_hopeless_bf16_is_never_timed(conv_suite, rgb_data, monkeypatch, one_torch_thread):
    monkeypatch.setattr(policy_module, "bf16_probe", lambda device: {"hopeless": True, "bf16_slower_x": 300.0})
    run = train_run(conv_suite(), rgb_data, seed=0, device=CPU)
    assert {c["policy"] for c in run["policy_trial"]["candidates"]} == {"fp32 NCHW", "fp32 channels-last"}
    assert run["precision"] == "fp32"


class _Clock:
    """perf_counter for the probe: each call's duration comes from `durations`, in order."""

    def __init__(self, durations):
        self.durations, self.now, self.started = list(durations), 0.0, False

    def __call__(self):
        if self.started:
            self.now += self.durations.pop(0)
        self.started = not self.started
        return self.now


@pytest.mark.parametrize("bf16_calls, hopeless", [
    ([1e-2, 1.2e-4, 1.2e-4, 1.2e-4, 1.2e-4], False),  # native bf16, one call preempted: still tried
    ([2e-2] * 5, True)])                                # emulated bf16 (200x fp32): never tried
def test_the_bf16_probe_takes_each_dtypes_fastest_call(monkeypatch, bf16_calls, hopeless):
    clock = _Clock([1e-4] * policy_module.PROBE_CALLS + bf16_calls)
    monkeypatch.setattr(policy_module.time, "perf_counter", clock)
    probe = policy_module.bf16_probe(CPU)
    assert probe["hopeless"] is hopeless
    assert probe["fp32_matmul_s"] == pytest.approx(1e-4) and probe["bf16_matmul_s"] == pytest.approx(min(bf16_calls))


def test_the_trial_leaves_the_run_bit_identical(conv_suite, rgb_data, one_torch_thread):
    tried = train_run(conv_suite(), rgb_data, seed=3, device=CPU)
    choice = tried["policy_trial"]["choice"]
    explicit = train_run(conv_suite(f'recipe.precision="{choice["precision"]}"',
                                    f'recipe.channels_last="{"on" if choice["channels_last"] else "off"}"',
                                    f"recipe.eval_batch_size={choice['eval_batch_size']}", 'recipe.compile="off"'),
                         rgb_data, seed=3, device=CPU)
    assert explicit["policy_trial"]["tried"] is False
    assert tried["accuracy"] == explicit["accuracy"]
    assert [p["loss"] for p in tried["curve"]] == [p["loss"] for p in explicit["curve"]]


def test_the_trial_puts_every_random_state_back(conv_suite, rgb_data):
    import random

    import numpy as np
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    before = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    with policy_module.RandomState():
        torch.rand(100), np.random.rand(100), random.random()
    after = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(before[0], after[0]) and (before[1] == after[1]).all() and before[2] == after[2]


def test_compile_is_tried_only_where_the_estimate_pays():
    recipe = {}
    pays, facts = policy_module.compile_pays(recipe, CPU, steps=100, eager_step_s=0.2)
    assert not pays and facts["estimated_saving_s"] == pytest.approx(100 * 0.2 * policy_module.COMPILE_GAIN["cpu"])
    pays, _ = policy_module.compile_pays(recipe, CPU, steps=100_000, eager_step_s=0.2)
    assert pays


def test_an_unreadable_cache_is_a_miss(conv_suite, rgb_data, one_torch_thread):
    policy_cache.folder().mkdir(parents=True, exist_ok=True)
    policy_cache.path().write_text("{not json")
    run = train_run(conv_suite(), rgb_data, seed=0, device=CPU)
    assert run["policy_trial"]["tried"] is True
    assert run["policy_trial"]["cache_key"] in json.loads(policy_cache.path().read_text())


def test_eval_batch_size_auto_is_a_suite_value_and_junk_is_an_error(conv_suite):
    assert conv_suite()["recipe"]["eval_batch_size"] == "auto"
    from bench.errors import BenchError
    with pytest.raises(BenchError, match="eval_batch_size"):
        conv_suite('recipe.eval_batch_size="big"')
