"""The compute policy decided by measurement (bench.train.policy): the trial's choice and
timings are recorded, a second invocation takes the cached decision and says so, explicit
settings are never overridden, and the trial leaves the run bit-identical to one given the
chosen policy explicitly."""

from __future__ import annotations

import json
import re

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


def fake_trial(monkeypatch, rounds_by_policy=None, share: float = 0.0):
    """The trial's timings and the load it meets, made up: each candidate's rounds from
    `rounds_by_policy` (name -> seconds; by default NCHW fp32 is clearly the fastest) and
    `share` of the CPU taken by other processes. The run itself trains for real."""
    from bench import load as load_module

    def rounds(policies, *args, **kwargs):
        made_up = rounds_by_policy or {}
        return {p: list(made_up.get(p.name(), [0.010, 0.011, 0.012] if p.name() == "fp32 NCHW"
                                    else [0.020, 0.021, 0.022])) for p in policies}

    monkeypatch.setattr(policy_module, "time_candidates", rounds)

    class Load:  # the probe over the trial, reading `share`
        def __init__(self, gpu_index=None):
            self.share, self.gpu_other_processes = share, None

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        figures = load_module.CompetingLoad.figures

    monkeypatch.setattr(policy_module, "CompetingLoad", Load)


def test_a_later_invocation_uses_the_cache_and_says_so(conv_suite, rgb_data, monkeypatch, one_torch_thread):
    fake_trial(monkeypatch)  # candidates far apart, a quiet machine: the decision earns the cache
    first = train_run(conv_suite(), rgb_data, seed=0, device=CPU)
    second = train_run(conv_suite(), rgb_data, seed=1, device=CPU)
    assert first["policy_trial"]["tried"] and not second["policy_trial"]["tried"]
    assert second["policy_trial"]["cached"] is True
    assert second["policy_trial"]["choice"] == first["policy_trial"]["choice"]
    assert second["policy_trial"]["trial"]["candidates"] == first["policy_trial"]["candidates"]
    assert first["policy_trial"]["not_cached"] is None and first["policy_trial"]["load"]["high"] is False
    assert second["policy_trial"]["measured_at"] == first["policy_trial"]["measured_at"]
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


def test_an_unreadable_cache_is_a_miss(conv_suite, rgb_data, monkeypatch, one_torch_thread):
    fake_trial(monkeypatch)  # a decision that earns the cache
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


def test_a_trial_within_its_own_noise_is_not_cached(conv_suite, rgb_data, monkeypatch, one_torch_thread):
    """issue 38: four candidates within 11% of each other under load went into the cache and
    every later run took the slower policy. Overlapping rounds decide the run, not the cache."""
    fake_trial(monkeypatch, {"fp32 NCHW": [0.010, 0.013, 0.016], "fp32 channels-last": [0.012, 0.014, 0.015],
                             "bf16 NCHW": [0.030] * 3, "bf16 channels-last": [0.030] * 3})
    first = train_run(conv_suite(), rgb_data, seed=0, device=CPU)
    trial = first["policy_trial"]
    assert trial["tried"] and "within their own noise" in trial["not_cached"]
    assert "fp32 NCHW and fp32 channels-last" in trial["not_cached"]
    assert first["precision"] == "fp32" and first["channels_last"] is False  # the run takes its own choice
    assert not policy_cache.entries()
    # the process's later runs (an invocation's other seeds) take the same choice, said so; a new process tries
    later = train_run(conv_suite(), rgb_data, seed=1, device=CPU)["policy_trial"]
    assert later["tried"] is False and later["reused"] is True and later["choice"] == trial["choice"]
    assert later["not_cached"] == trial["not_cached"] and not policy_cache.entries()
    monkeypatch.setattr(policy_module, "_UNCACHED", {})
    assert train_run(conv_suite(), rgb_data, seed=1, device=CPU)["policy_trial"]["tried"] is True


def test_a_trial_under_high_load_is_not_cached(conv_suite, rgb_data, monkeypatch, one_torch_thread):
    fake_trial(monkeypatch, share=0.45)  # candidates far apart, but 45% of the CPU taken elsewhere
    trial = train_run(conv_suite(), rgb_data, seed=0, device=CPU)["policy_trial"]
    assert trial["load"]["competing_cpu_share"] == pytest.approx(0.45) and trial["load"]["high"] is True
    assert trial["not_cached"].startswith("the trial met high load (45% of the CPU")
    assert not policy_cache.entries()


def test_retrial_measures_again_and_replaces_the_decision(conv_suite, rgb_data, monkeypatch, one_torch_thread):
    fake_trial(monkeypatch)
    first = train_run(conv_suite(), rgb_data, seed=0, device=CPU)["policy_trial"]
    fake_trial(monkeypatch, {"fp32 channels-last": [0.001] * 3})  # the machine changed its mind
    again = train_run(conv_suite(), rgb_data, seed=0, device=CPU, retrial=True)
    assert again["policy_trial"]["tried"] is True and again["policy_trial"]["retrial"] is True
    assert again["channels_last"] is True
    [entry] = policy_cache.entries().values()
    assert entry["choice"]["channels_last"] is True and first["choice"]["channels_last"] is False


def test_within_noise_compares_the_winner_with_the_runner_up_only():
    a, b, c = (policy_module.Policy(p, cl, "off") for p, cl in (("fp32", False), ("fp32", True), ("bf16", True)))
    assert policy_module.within_noise({a: [1.0, 1.1, 1.2], b: [1.3, 1.4, 1.5], c: [0.0 + 5, 5, 5]}) is None
    assert "within their own noise" in policy_module.within_noise({a: [1.0, 1.1, 1.3], b: [1.3, 1.4, 1.5]})
    assert policy_module.within_noise({a: [1.0, 1.1, 1.2]}) is None  # one candidate: nothing to tell apart


def test_the_summary_says_where_the_policy_came_from_and_cache_clear_empties_it(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    from tests.helpers import separable_dataset

    fake_trial(monkeypatch)
    data = separable_dataset(n_train=256, n_test=100, size=12, channels=3)
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: data)
    suite = tmp_path / "a.toml"
    suite.write_text(suite_text(model="airbench", model_args="args = { widths = [8, 8, 8] }", epochs=1, tta=1))
    argv = ["run", str(suite), "--runs", "1", "--device", "cpu", "--results", str(tmp_path / "r"),
            "--set", 'recipe.precision="auto"', "--set", 'recipe.channels_last="auto"']
    main(argv)
    assert "policy: fp32 NCHW (measured now)" in capsys.readouterr().out
    main(argv)
    out = capsys.readouterr().out
    assert re.search(r"policy: fp32 NCHW \(cached, measured \d{4}-\d\d-\d\d \d\d:\d\d UTC\)", out), out
    assert main(["cache", "show"]) == 0 and ": 1 decision\n" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0 and "1 decision removed" in " ".join(capsys.readouterr().out.split())
    assert not policy_cache.path().exists()
    main([*argv, "--retrial"])
    assert "policy: fp32 NCHW (measured now)" in capsys.readouterr().out
