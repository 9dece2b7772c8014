"""Sequence models and the BPTT modes of the train step; the CPU training peak memory."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.train import bptt
from bench.train.bptt import bptt_train_step, windows
from bench.errors import BenchError
from bench.train.memory import cpu_training_peak, state_bytes, step_peak_bytes
from bench.models import build_model
from bench.suites import load_suite
from bench.train import PreparedData, StepConfig, train_run
from tests.helpers import separable_dataset, suite_text

CPU = torch.device("cpu")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def lstm(patch: int = 0, side: int = 8, hidden: int = 16) -> nn.Module:
    torch.manual_seed(0)
    return build_model("lstm", 2, (1, side, side), {"hidden": hidden, "patch": patch})


def test_sequence_views_and_parameter_count():
    model = lstm()
    x = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 1, 8, 8)
    rows = model.sequence(x)
    assert rows.shape == (2, 8, 8) and torch.equal(rows[1, 3], x[1, 0, 3])
    patches = lstm(patch=2).sequence(x)
    assert patches.shape == (2, 16, 4)
    assert torch.equal(patches[0, 5], x[0, 0, 2:4, 2:4].reshape(4))  # raster order: patch (1, 1) is step 5
    # LSTM: 4 gates x (input + hidden weights + two biases); then hidden -> classes
    hand = 4 * (16 * 8 + 16 * 16 + 16 + 16) + (16 * 2 + 2)
    assert sum(p.numel() for p in model.parameters()) == hand == 1698
    # the shipped suites' LSTM(128) on 28 rows of 28 pixels, 10 classes
    assert sum(p.numel() for p in build_model("lstm", 10, (1, 28, 28), {"hidden": 128}).parameters()) == \
        4 * (128 * 28 + 128 * 128 + 2 * 128) + (128 * 10 + 10) == 82_186
    assert model(x).shape == (2, 2)
    assert torch.equal(model(x), model.sequence_logits(x)[:, -1])


def test_windows():
    assert windows(28, 14, 7) == [(0, 14), (7, 21), (14, 28)]
    assert windows(10, 4, 4) == [(0, 4), (4, 8), (6, 10)]  # the last window ends at the sequence's end
    assert windows(5, 8, 2) == [(0, 5)]


class Recorder:
    """Counts optimizer steps and records what each loss covered."""

    def __init__(self, monkeypatch):
        self.covered: list[int] = []
        original = bptt._loss

        def loss(logits, labels, smoothing):
            self.covered.append(logits.size(1))
            return original(logits, labels, smoothing)
        monkeypatch.setattr(bptt, "_loss", loss)


def step(model, mode, length=0, stride=0, batch=4, seed=0):
    torch.manual_seed(seed)
    images, labels = torch.randn(batch, 1, 8, 8), torch.randint(0, 2, (batch,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return bptt_train_step(model, optimizer, images, labels, StepConfig(smoothing=0.0, autocast=None),
                           bptt={"mode": mode, "length": length, "step": stride})


@pytest.mark.parametrize("mode, length, stride, covered", [
    ("full", 0, 0, [8]),
    ("truncated", 3, 0, [3, 3, 2]),
    ("sliding", 4, 2, [4, 2, 2]),       # windows [0,4) [2,6) [4,8): each step's loss once
    ("shuffled", 4, 2, [4, 4, 4]),      # windows [0,4) [2,6) [4,8) of 4 sequences = 12, in 3 batches of 4
])
def test_each_mode_covers_the_sequence(monkeypatch, mode, length, stride, covered):
    recorder = Recorder(monkeypatch)
    loss = step(lstm(), mode, length, stride)
    assert recorder.covered == covered and torch.isfinite(loss)


def test_truncated_with_the_whole_length_is_full_and_sliding_with_step_length_is_truncated():
    a, b = lstm(), lstm()
    step(a, "full")
    step(b, "truncated", 8)
    assert all(torch.allclose(p, q) for p, q in zip(a.parameters(), b.parameters()))
    c, d = lstm(), lstm()
    step(c, "truncated", 3)
    step(d, "sliding", 3, 3)
    assert all(torch.allclose(p, q) for p, q in zip(c.parameters(), d.parameters()))
    e = lstm()
    step(e, "truncated", 3)
    assert not all(torch.allclose(p, q) for p, q in zip(a.parameters(), e.parameters()))


def test_state_is_carried_but_gradients_stop_at_window_starts(monkeypatch):
    model = lstm()
    states = []
    original = model.run

    def run(steps, state=None):
        states.append(state)
        return original(steps, state)
    monkeypatch.setattr(model, "run", run)
    step(model, "truncated", 3)
    assert states[0] is None and all(s is not None for s in states[1:])
    assert all(not t.requires_grad for s in states[1:] for t in s)
    states.clear()
    step(model, "shuffled", 4, 2)
    assert states == [None, None, None]  # independent windows start from zero


def test_bptt_needs_a_sequence_model():
    with pytest.raises(BenchError, match="needs a sequence model"):
        step(build_model("mlp", 2, (1, 8, 8)), "full")


def test_unrolling_costs_memory_measured_per_step():
    """The training's own allocations: the whole 64-step graph holds more than 8-step windows."""
    def peak(mode, length):
        model = lstm(patch=1, hidden=32)  # 64 steps of one pixel
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        images, labels = torch.randn(16, 1, 8, 8), torch.randint(0, 2, (16,))
        return cpu_training_peak(model, optimizer, lambda: bptt_train_step(
            model, optimizer, images, labels, StepConfig(smoothing=0.0, autocast=None),
            bptt={"mode": mode, "length": length, "step": 0}))

    full, truncated = peak("full", 0), peak("truncated", 8)
    assert full["train_state_memory_mb"] == truncated["train_state_memory_mb"]
    assert full["train_step_peak_mb"] > 3 * truncated["train_step_peak_mb"]


def test_state_bytes_counts_weights_grads_and_optimizer_state_once():
    model = nn.Linear(10, 5)  # 55 parameters
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    assert state_bytes(model, optimizer) == 55 * 4
    model(torch.randn(3, 10)).sum().backward()
    optimizer.step()  # gradients and momentum buffers now exist
    assert state_bytes(model, optimizer) == 3 * 55 * 4


def test_step_peak_sees_a_transient_allocation():
    def work():
        a = torch.empty(1_000_000)  # 4 MB, freed before the next
        del a
        b = torch.empty(250_000)
        del b
    assert 4_000_000 <= step_peak_bytes(work) < 5_000_000


@pytest.mark.parametrize("mode", ["full", "truncated", "sliding", "shuffled"])
def test_sequence_suites_train_and_record_peak_memory(tmp_path, mode):
    data = PreparedData.from_dataset(separable_dataset())
    path = tmp_path / "s.toml"
    path.write_text(suite_text(model="lstm", model_args="args = { hidden = 16 }", epochs=2, lr=0.01)
                    .replace("flip = true", "flip = false").replace("translate = 1", "translate = 0")
                    + f'[recipe.bptt]\nmode = "{mode}"\nlength = 4\nstep = 2\n')
    resolved = load_suite(str(path), ['recipe.optimizer="adamw"']).resolved
    run = train_run(resolved, data, 0, CPU)
    assert run["status"] == "complete" and run["accuracy"] >= 0.9
    assert run["train_peak_memory_mb"] > run["train_state_memory_mb"] > 0 and "profiler" in \
        run["train_peak_memory_method"]
    again = train_run(resolved, data, 0, CPU)
    assert again["accuracy"] == run["accuracy"]  # the memory steps leave no trace in the run
    # a property of the step, not of the process's history (a few KiB of allocator detail aside)
    assert again["train_peak_memory_mb"] == pytest.approx(run["train_peak_memory_mb"], rel=0.05)


def test_shipped_lstm_suites_differ_only_in_bptt_mode():
    suites = {m: load_suite(f"fashion-mnist-lstm-{m}").resolved for m in ("full", "truncated", "sliding", "shuffled")}
    for mode, resolved in suites.items():
        assert resolved["recipe"]["bptt"]["mode"] == mode
        resolved = {**resolved, "name": "", "description": "", "target": 0, "target_source": "",
                    "recipe": {**resolved["recipe"], "bptt": {**resolved["recipe"]["bptt"], "mode": ""}}}
        suites[mode] = resolved
    assert all(r == suites["full"] for r in suites.values())


def test_the_bptt_study_file_resolves_every_cell():
    """The study's keys are suite keys: each cell (base suite + [set] + one value per axis) loads."""
    import itertools
    import json
    import tomllib
    from pathlib import Path

    study = tomllib.loads((Path(__file__).resolve().parent.parent / "suites/studies/fmnist-lstm-bptt.toml")
                          .read_text())
    fixed = [f"{k}={json.dumps(v)}" for k, v in study["set"].items()]
    axes = study["axes"]
    assert set(axes["recipe.bptt.mode"]) == {"full", "truncated", "sliding", "shuffled"}
    hashes = set()
    for values in itertools.product(*axes.values()):
        cell = [f"{k}={json.dumps(v)}" for k, v in zip(axes, values)]
        suite = load_suite(study["suite"], fixed + cell)
        assert suite.recipe["bptt"]["mode"] == values[0] and suite.recipe["lr"] == values[1]
        hashes.add(suite.hash)
    assert len(hashes) == 4 * len(axes["recipe.lr"]) and study["seeds"] == [0, 1, 2, 3, 4]  # 5 seeds a cell


@pytest.mark.parametrize("mode, length, step", [("full", 0, 0), ("truncated", 7, 0), ("truncated", 10, 0),
                                                ("sliding", 14, 7), ("sliding", 10, 4), ("shuffled", 14, 7),
                                                ("shuffled", 7, 0)])
def test_the_updates_per_batch_are_the_optimizer_steps_the_mode_makes(monkeypatch, mode, length, step):
    # a recorded step is a loader batch: the report multiplies it by this count (312 batches of
    # truncated BPTT over 28 rows in windows of 14 are 624 optimizer updates)
    from bench.train import bptt as module
    from bench.train.step import StepConfig

    calls = []
    monkeypatch.setattr(module, "minimize", lambda *args: calls.append(1))
    model = build_model("lstm", 10, (1, 28, 28), {"hidden": 8})
    config = StepConfig(autocast=None, scaler=None, penalty=None, smoothing=0.0)
    images, labels = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    spec = {"mode": mode, "length": length or 28, "step": step}
    module.bptt_train_step(model, None, images, labels, config, bptt=spec)
    assert len(calls) == module.updates_per_batch(spec, module.sequence_length([1, 28, 28]))
