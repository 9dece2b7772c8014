"""Only steady-state work in the timed region: the warm-up makes every first call, undoes
itself exactly, and evaluation has one shape. Also: the GPU monitor pauses with the clock
and always stops."""

from __future__ import annotations

import json

import pytest
import torch

import bench.train.loop as loop
import bench.train.setup as setup
import bench.train.step as steps
import bench.train.warmup as warmup
from bench.measure import TimedRegion
from bench.runner import run_invocation
from bench.suites import load_suite
from bench.train import PreparedData, evaluate, train_run
from tests.helpers import separable_dataset, suite_text

CPU = torch.device("cpu")


@pytest.fixture
def rgb_data():
    return PreparedData.from_dataset(separable_dataset(n_train=256, n_test=100, size=12, channels=3))


@pytest.fixture
def airbench_suite(tmp_path):
    """The airbench recipe's moving parts on a tiny net: whitening init, lookahead, alternating
    flip, translate, TTA with translated views, bf16 batches in channels-last."""
    path = tmp_path / "a.toml"
    path.write_text(suite_text(model="airbench", model_args="args = { widths = [8, 8, 8] }", epochs=2, tta=2))

    def make(*overrides):
        return load_suite(str(path), ["recipe.whiten_bias_epochs=1", "recipe.lookahead.every=2",
                                      "recipe.augment.alternating_flip=true", 'recipe.precision="bf16"',
                                      "recipe.eval_batch_size=32", *overrides])
    return make


class CallLog:
    """Records a signature per first-call-prone operation, by phase (warm-up or timed region)."""

    def __init__(self, monkeypatch):
        self.phase = "before"
        self.seen: dict[str, dict[str, set]] = {}
        real_start = TimedRegion.start

        def start(region):
            self.phase = "timed"
            return real_start(region)

        def warm_up(*args, **kwargs):
            self.phase = "warm-up"
            try:
                return real_warm_up(*args, **kwargs)
            finally:
                self.phase = "between"

        real_warm_up = warmup.warm_up
        monkeypatch.setattr(TimedRegion, "start", start)
        monkeypatch.setattr(warmup, "warm_up", warm_up)

        import bench.loaders.resident as resident
        real_kernel = resident.crop_flip_normalize

        def kernel(padded, indices, dy, dx, flip, mean, std, size, dtype=torch.float32, channels_last=False):
            self.note("augment kernel", (dtype, channels_last, tuple(size)))
            return real_kernel(padded, indices, dy, dx, flip, mean, std, size, dtype, channels_last)
        monkeypatch.setattr(resident, "crop_flip_normalize", kernel)

        real_eigh = torch.linalg.eigh

        def eigh(*args, **kwargs):
            self.note("eigh", "call")
            return real_eigh(*args, **kwargs)
        monkeypatch.setattr(torch.linalg, "eigh", eigh)

        import bench.train.optim as optim
        real_update = optim.Lookahead.update

        def update(lookahead, model, decay):
            self.note("lookahead", "call")
            return real_update(lookahead, model, decay)
        monkeypatch.setattr(optim.Lookahead, "update", update)

    def note(self, kind: str, signature) -> None:
        self.seen.setdefault(self.phase, {}).setdefault(kind, set()).add(signature)

    def watch_model(self, model: torch.nn.Module) -> None:
        def hook(module, args):
            x = args[0]
            self.note("forward", (module.training, torch.is_grad_enabled(), tuple(x.shape), x.dtype,
                                  x.is_contiguous(memory_format=torch.channels_last)))
        model.register_forward_pre_hook(hook)


def test_every_call_of_the_timed_region_was_made_in_the_warm_up(airbench_suite, rgb_data, monkeypatch):
    log = CallLog(monkeypatch)
    real_build = setup.build_model

    def build(*args, **kwargs):
        model = real_build(*args, **kwargs)
        log.watch_model(model)
        return model
    monkeypatch.setattr(setup, "build_model", build)
    # 100 test images in batches of 32: the last batch is short, and is padded to the same shape
    run = train_run(airbench_suite().resolved, rgb_data, seed=0, device=CPU)
    assert run["status"] == "complete"
    warm, timed = log.seen["warm-up"], log.seen["timed"]
    assert set(timed) == {"augment kernel", "eigh", "lookahead", "forward"}
    for kind, signatures in timed.items():
        assert signatures <= warm.get(kind, set()), f"{kind}: first made in the timed region: {signatures - warm[kind]}"
    # training batches are bf16 channels-last from the loader, evaluation batches the one padded shape
    assert {s[3] for s in timed["forward"]} == {torch.bfloat16}, timed["forward"]
    assert {s[2][0] for s in timed["forward"] if not s[0]} == {32}
    assert run["batch_dtype"] == "bfloat16"


def test_a_seed_is_bit_identical_with_and_without_the_warm_up(airbench_suite, rgb_data):
    cold = train_run(airbench_suite("recipe.warmup_steps=0").resolved, rgb_data, seed=5, device=CPU)
    warm = train_run(airbench_suite("recipe.warmup_steps=3").resolved, rgb_data, seed=5, device=CPU)
    assert warm["accuracy"] == cold["accuracy"]
    assert [p["loss"] for p in warm["curve"]] == [p["loss"] for p in cold["curve"]]
    assert [p["accuracy"] for p in warm["curve"]] == [p["accuracy"] for p in cold["curve"]]


def test_evaluation_pads_the_last_batch_and_stays_exact(rgb_data):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 12 * 12, 2))
    from bench.loaders import make_loader

    ds = rgb_data.dataset
    loader = make_loader("resident", ds.test_images, ds.test_labels, device=CPU, batch_size=32, mean=rgb_data.mean,
                         std=rgb_data.std)
    shapes = []
    model.register_forward_pre_hook(lambda m, args: shapes.append(tuple(args[0].shape)))
    accuracy = evaluate(model, loader, tta=1, autocast=None)
    assert set(shapes) == {(32, 3, 12, 12)}  # 100 images: 3 full batches and one padded from 4 to 32
    images = torch.cat([b for b, _ in loader.epoch()])
    with torch.no_grad():
        logits = 0.5 * (model(images) + model(images.flip(-1)))
    correct = int((logits.argmax(1) == torch.from_numpy(ds.test_labels)).sum())
    assert accuracy == correct / 100  # the padding's blank images never count


def test_init_images_are_made_once_before_the_clock(airbench_suite, rgb_data, monkeypatch):
    log = CallLog(monkeypatch)
    from bench.loaders.resident import ResidentLoader

    real_images = ResidentLoader.images

    def images(loader, count):
        log.note("init images", count)
        return real_images(loader, count)
    monkeypatch.setattr(ResidentLoader, "images", images)
    train_run(airbench_suite().resolved, rgb_data, seed=0, device=CPU)
    assert log.seen["before"]["init images"] == {5000}
    assert all("init images" not in kinds for phase, kinds in log.seen.items() if phase != "before")


class RecordingMonitor:
    """Stands in for GpuMonitor: records the calls the trainer makes."""

    events: list[str] = []

    def __init__(self, *args, **kwargs):
        RecordingMonitor.events = []

    def start(self):
        self.events.append("start")

    def pause(self):
        self.events.append("pause")

    def resume(self):
        self.events.append("resume")

    def stop(self):
        self.events.append("stop")

    def summary(self):
        return {key: None for key in ("energy_j", "energy_method", "mean_power_w", "max_power_w", "power_source",
                                      "running_s", "mean_utilization_pct", "peak_memory_used_mb", "reason")}


def test_the_monitor_is_paused_out_with_the_curve_evaluations(tmp_path, rgb_data, monkeypatch):
    monkeypatch.setattr(loop, "GpuMonitor", RecordingMonitor)
    path = tmp_path / "m.toml"
    path.write_text(suite_text(epochs=3))
    train_run(load_suite(str(path)).resolved, rgb_data, seed=0, device=CPU)
    # two curve-only evaluations (epochs 1 and 2) are paused out; the last one decides, inside
    assert RecordingMonitor.events == ["start", "pause", "resume", "pause", "resume", "stop"]


def test_the_monitor_stops_when_training_raises(tmp_path, rgb_data, monkeypatch):
    monkeypatch.setattr(loop, "GpuMonitor", RecordingMonitor)
    calls = []

    def broken_step(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:  # the warm-up's step passes; the timed region's first one breaks
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return torch.zeros(())
    monkeypatch.setattr(steps, "train_step", broken_step)
    path = tmp_path / "m.toml"
    path.write_text(suite_text(epochs=1))
    with pytest.raises(RuntimeError, match="illegal memory access"):
        train_run(load_suite(str(path)).resolved, rgb_data, seed=0, device=CPU)
    assert RecordingMonitor.events[-1] == "stop"


def test_the_torch_loader_moves_uint8_without_blocking_and_normalizes_after(rgb_data, monkeypatch):
    from bench.loaders import make_loader

    moves = []
    real_to = torch.Tensor.to

    def spy(tensor, *args, **kwargs):
        if args and isinstance(args[0], torch.device):
            moves.append((tensor.dtype, kwargs.get("non_blocking", False)))
        return real_to(tensor, *args, **kwargs)
    ds = rgb_data.dataset
    loader = make_loader("torch", ds.train_images, ds.train_labels, device=CPU, batch_size=64, mean=rgb_data.mean,
                         std=rgb_data.std, dtype=torch.bfloat16, channels_last=True, workers=0)
    monkeypatch.setattr(torch.Tensor, "to", spy)
    images, labels = next(iter(loader.epoch(0)))
    assert (torch.uint8, True) in moves and (torch.int64, True) in moves
    assert all(dtype in (torch.uint8, torch.int64) for dtype, _ in moves)  # no float batch crosses
    assert images.dtype == torch.bfloat16 and images.is_contiguous(memory_format=torch.channels_last)


def test_workers_reach_the_torch_loader(tmp_path, rgb_data, monkeypatch):
    import bench.loaders.torch_loader as torch_loader

    seen = []
    real = torch_loader.DataLoader

    def spy(*args, **kwargs):
        seen.append(kwargs["num_workers"])
        return real(*args, **kwargs)
    monkeypatch.setattr(torch_loader, "DataLoader", spy)
    path = tmp_path / "m.toml"
    path.write_text(suite_text(epochs=1))
    run = train_run(load_suite(str(path), ["recipe.workers=1"]).resolved, rgb_data, seed=0, device=CPU,
                    loader="torch")
    assert run["loader"] == "torch" and set(seen) == {1}


@pytest.mark.slow
def test_compiled_runs_evaluate_compiled_and_never_recompile_in_the_timed_region(tmp_path, monkeypatch):
    """torch.compile on CPU (inductor, C++): 3 runs of one invocation, compilation reused across seeds."""
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset(n_train=256, n_test=100))
    path = tmp_path / "c.toml"
    path.write_text(suite_text(epochs=2, tta=1))
    suite = load_suite(str(path), ['recipe.compile="default"', "recipe.warmup_steps=2", "recipe.eval_batch_size=40"])
    record, saved = run_invocation(suite, runs=3, device_choice="cpu", results_dir=tmp_path / "runs")
    runs = json.loads(saved.read_text())["runs"]
    assert record["status"] == "complete" and len(runs) == 3
    assert [r["recompiles_in_timed_region"] for r in runs] == [0, 0, 0]
    assert all(r["eval_compiled"] is True and r["compile"] == "default" for r in runs)
    assert all(r["compile_s"] > 0 for r in runs)
