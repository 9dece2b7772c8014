"""Sparse training (recipe.sparsity): exact targets, masks that hold through retraining, the L1
penalty, and counts that match a direct count of nonzeros. Synthetic data, seconds."""

from dataclasses import replace

import pandas as pd
import pytest
import torch
from torch import nn

from bench.errors import BenchError
from bench.reports.check import CHANGED, OK, GateRule, check_model
from bench.reports.leaderboard import _model
from bench.sparsity import (Sparsifier, active_flops_per_image, effective_weight, gradual_active_fractions,
                            layer_nonzeros, output_positions, parameter_counts, prunable_layers)
from bench.suites import load_suite
from bench.models import build_model
from bench.train import PreparedData, StepConfig, evaluation, train_run, train_step
from bench.train.optim import Lookahead, build_optimizer
from bench.train.setup import step_for
from tests.helpers import separable_dataset, suite_text

CPU = torch.device("cpu")
PLAIN = StepConfig(smoothing=0.0, autocast=None)  # fp32, no smoothing, no scaler, no penalty
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small nets; no OpenMP contention on a busy CPU


def spec(**kw):
    base = {"method": "magnitude", "l1": 0.0, "threshold": None, "target": None, "scope": "global",
            "prune_epochs": [1], "retrain_lr_factor": 1.0}
    return {**base, **kw}


def small_net(seed=0):
    torch.manual_seed(seed)
    # layers of different sizes and scales, so a global target is not a per-layer one
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 37), nn.ReLU(), nn.Linear(37, 3))


def recipe(**kw):
    return {"lr": 0.1, "weight_decay": 5e-3, "norm_lr_scale": 1.0, "optimizer": "sgd", "momentum": 0.9,
            "nesterov": True, "precision": "fp32", "muon": {}, **kw}


def batches(n=6, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 1, 8, 8, generator=gen), torch.randint(0, 3, (16,), generator=gen)) for _ in range(n)]


@pytest.mark.parametrize("target", [0.5, 0.2, 0.05, 0.01, 0.005])
def test_a_global_target_leaves_exactly_that_fraction_active(target):
    model = small_net()
    sparse = Sparsifier(model, spec(target=target))
    sparse.attach()
    sparse.prune(target)
    counts = parameter_counts(model)
    assert counts["prunable_active_params"] == round(target * counts["prunable_params"])
    sparse.finalize()
    direct = sum(int(torch.count_nonzero(m.weight)) for m in prunable_layers(model))
    assert direct == round(target * counts["prunable_params"])


@pytest.mark.parametrize("target", [0.3, 0.05, 0.01])
def test_a_per_layer_target_leaves_that_fraction_in_every_layer(target):
    model = small_net()
    sparse = Sparsifier(model, spec(target=target, scope="layer"))
    sparse.attach()
    sparse.prune(target)
    for m in prunable_layers(model):
        active = int(torch.count_nonzero(effective_weight(m)))
        assert abs(active - target * m.weight_orig.numel()) <= 1


def test_gradual_pruning_reaches_the_target_through_a_cubic_schedule():
    fractions = gradual_active_fractions(0.02, 3)
    assert fractions[-1] == pytest.approx(0.02) and fractions[0] > fractions[1] > fractions[2]
    model = small_net()
    sparse = Sparsifier(model, spec(target=0.02, prune_epochs=[1, 2, 3]))
    sparse.attach()
    total = parameter_counts(model)["prunable_params"]
    for epoch, fraction in zip((1, 2, 3), fractions):
        assert sparse.maybe_prune(epoch) and not sparse.maybe_prune(epoch)
        assert parameter_counts(model)["prunable_active_params"] == round(fraction * total)
    assert sparse.done


def test_a_threshold_prunes_every_weight_below_it_and_no_other():
    model = small_net()
    before = {m: m.weight.detach().clone() for m in prunable_layers(model)}
    sparse = Sparsifier(model, spec(threshold=0.05))
    sparse.attach()
    sparse.prune(None)
    for m, w in before.items():
        assert torch.equal(effective_weight(m) == 0, w.abs() < 0.05)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw", "muon"])
def test_pruned_weights_stay_zero_through_retraining_momentum_and_lookahead(optimizer):
    model = small_net()
    sparse = Sparsifier(model, spec(target=0.1))
    sparse.attach()
    rec = recipe(optimizer=optimizer, lr=0.05, muon={"lr": 0.05, "momentum": 0.9, "nesterov": True, "ns_steps": 3,
                                                    "weight_decay": 0.0})
    opt = build_optimizer(model, rec)
    lookahead = Lookahead(model, every=2, decay=0.5)
    data = batches()
    for images, labels in data:  # dense training: momentum builds up on every weight
        train_step(model, opt, images, labels, PLAIN)
    held = {m: m.weight_orig for m in prunable_layers(model)}
    sparse.prune(0.1)
    masks = {m: m.weight_mask.clone() for m in prunable_layers(model)}
    # the optimizer and lookahead still hold the tensors the network computes from
    assert all(m.weight_orig is held[m] for m in held)
    for step, (images, labels) in enumerate(data * 2, start=1):
        train_step(model, opt, images, labels, PLAIN)
        lookahead.maybe_update(model, step, 12)
        for m, mask in masks.items():
            assert torch.all(effective_weight(m)[mask == 0] == 0)
            assert torch.equal(m.weight_mask, mask)  # lookahead never averages a mask back
    # momentum and lookahead did move the stored values behind the mask: the mask is what holds
    assert any(torch.any(m.weight_orig[mask == 0] != 0) for m, mask in masks.items())
    sparse.finalize()
    for m, mask in masks.items():
        assert isinstance(m.weight, nn.Parameter) and not hasattr(m, "weight_mask")
        assert torch.all(m.weight[mask == 0] == 0) and torch.all(m.weight[mask == 1] != 0)


def test_the_l1_penalty_moves_weights_toward_zero():
    def trained(l1):
        model = small_net(seed=3)
        sparse = Sparsifier(model, {**spec(method="l1", l1=l1, prune_epochs=[])})
        opt = build_optimizer(model, recipe(weight_decay=0.0, lr=0.02))
        for images, labels in batches(20):
            train_step(model, opt, images, labels, replace(PLAIN, penalty=sparse.penalty))
        return sum(float(m.weight.detach().abs().sum()) for m in prunable_layers(model))

    dense, penalized = trained(0.0), trained(1e-2)
    assert penalized < 0.8 * dense



@pytest.mark.parametrize("mode", ["none", "truncated", "sliding"])
def test_the_l1_penalty_reaches_the_step_of_every_recipe(mode):
    """The trainer binds the penalty into whichever step the recipe trains with (plain or BPTT)."""
    def trained(l1):
        torch.manual_seed(0)
        model = build_model("lstm", 3, (1, 8, 8), {"hidden": 16}) if mode != "none" else small_net(seed=3)
        sparse = Sparsifier(model, spec(method="l1", l1=l1, prune_epochs=[]))
        step = step_for({"bptt": {"mode": mode, "length": 4, "step": 2}})
        opt = build_optimizer(model, recipe(weight_decay=0.0, lr=0.02))
        for images, labels in batches(20):
            step(model, opt, images, labels, replace(PLAIN, penalty=sparse.penalty if l1 else None))
        return sum(float(m.weight.detach().abs().sum()) for m in prunable_layers(model))

    assert trained(1e-2) < 0.8 * trained(0.0)

def test_compiled_forward_honours_a_pruning_made_after_compilation():
    """The masks go on before compiling; a later pruning changes the mask's values in place, and
    the compiled graph must compute with them (Dynamo does not guard on module hooks)."""
    torch._dynamo.reset()
    model = small_net().eval()
    sparse = Sparsifier(model, spec(target=0.05))
    sparse.attach()
    compiled = torch.compile(model, backend="eager", dynamic=False)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        dense_out = compiled(x)
        sparse.prune(0.05)
        assert torch.allclose(compiled(x), model(x))
        assert not torch.allclose(compiled(x), dense_out)


def test_active_flops_count_the_zero_weights_out():
    model = small_net()
    positions = output_positions(model, (1, 8, 8))
    assert positions == {"0": 36, "4": 1, "6": 1}  # a 3x3 conv on 8x8 has 6x6 outputs
    sparse = Sparsifier(model, spec(target=0.25, scope="layer"))
    sparse.attach()
    sparse.prune(0.25)
    sparse.finalize()
    conv, fc1, fc2 = prunable_layers(model)
    zeros = lambda m: m.weight.numel() - int(torch.count_nonzero(m.weight))  # noqa: E731
    expected = 10**6 - 2 * (zeros(conv) * 36 + zeros(fc1) + zeros(fc2))
    assert active_flops_per_image(10**6, positions, layer_nonzeros(model)) == expected


# ---------------------------------------------------------------- through the trainer ----

SPARSE = """
[recipe.sparsity]
method = "magnitude"
target = 0.1
prune_epochs = [2]
retrain_lr_factor = 0.5
"""


@pytest.fixture
def data():
    return PreparedData.from_dataset(separable_dataset())


def sparse_suite(tmp_path, extra=SPARSE, **kw):
    path = tmp_path / "tiny.toml"
    path.write_text(suite_text(**kw) + extra)
    return load_suite(str(path))


def test_a_run_reports_counts_equal_to_a_direct_count_of_the_trained_network(tmp_path, data, monkeypatch):
    seen = {}
    real = Sparsifier.finalize

    def finalize(self):
        real(self)
        seen["model"] = self.model

    monkeypatch.setattr(Sparsifier, "finalize", finalize)
    suite = sparse_suite(tmp_path, epochs=3, model_args="args = { hidden = [64] }")
    run = train_run(suite.resolved, data, seed=0, device=CPU)
    model = seen["model"]
    params = list(model.parameters())
    counts = run["sparsity"]
    assert counts["params"] == sum(p.numel() for p in params)
    assert counts["active_params"] == sum(int(torch.count_nonzero(p)) for p in params)
    assert counts["prunable_active_params"] == round(0.1 * counts["prunable_params"])
    assert counts["layer_nonzeros"] == {name: [m.weight.numel(), int(torch.count_nonzero(m.weight))]
                                        for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    # the trace: dense before the pruning, the pruned fraction after, marked where it happened
    trace = [p["active_fraction"] for p in run["curve"]]
    assert trace[0] > 0.99 and trace[1] == trace[2] == pytest.approx(counts["active_fraction"])
    assert [p.get("pruned", False) for p in run["curve"]] == [False, True, False]
    assert run["accuracy"] >= 0.9



def test_a_dense_run_is_counted_but_makes_no_per_epoch_trace(tmp_path, data):
    """A dense recipe cannot change which weights are nonzero: its run is counted once, after the
    clock, and its timed region does no counting."""
    run = train_run(sparse_suite(tmp_path, extra="", epochs=2).resolved, data, seed=0, device=CPU)
    assert run["sparsity"]["method"] == "none" and run["sparsity"]["active_params"] > 0
    assert all("active_fraction" not in point for point in run["curve"])

def test_a_pruning_run_is_the_same_with_and_without_the_warm_up(tmp_path, data):
    """The warm-up trains on the masked weights and restores them; the masks must come back too."""
    runs = [train_run(sparse_suite(tmp_path, epochs=3).resolved | {}, data, seed=1, device=CPU)]
    cold = sparse_suite(tmp_path, epochs=3).resolved
    cold["recipe"]["warmup_steps"] = 0
    runs.append(train_run(cold, data, seed=1, device=CPU))
    assert runs[0]["accuracy"] == runs[1]["accuracy"]
    assert runs[0]["sparsity"] == runs[1]["sparsity"]
    assert [p["loss"] for p in runs[0]["curve"]] == [p["loss"] for p in runs[1]["curve"]]



def test_weight_ema_evaluates_and_keeps_the_pruned_network(tmp_path, data, monkeypatch):
    """With a weight EMA the evaluations use the shadow weights through the live masks (an
    averaged mask would bring pruned weights back), and the shadow is what is counted and kept."""
    seen, real = [], evaluation.evaluate

    def evaluate(model, *args, **kwargs):
        seen.append(parameter_counts(model))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", evaluate)
    suite = sparse_suite(tmp_path, epochs=3, model_args="args = { hidden = [64] }")
    suite.resolved["recipe"]["ema"] = {"every": 1, "decay": 0.9}
    run = train_run(suite.resolved, data, seed=0, device=CPU)
    kept = round(0.1 * run["sparsity"]["prunable_params"])
    assert [c["prunable_active_params"] == kept for c in seen] == [False, True, True]  # pruned after epoch 2
    assert run["sparsity"]["prunable_active_params"] == kept

def test_reach_mode_judges_only_the_fully_pruned_network(tmp_path, data):
    # the dense net reaches the target after epoch 1; the pruning is after epoch 2
    run = train_run(sparse_suite(tmp_path, mode="reach", target=0.6, epochs=4).resolved, data, seed=0, device=CPU)
    assert run["reached_target"] and len(run["curve"]) >= 2 and run["curve"][1].get("pruned")


@pytest.mark.parametrize("extra, message", [
    ('[recipe.sparsity]\nmethod = "magnitude"\nprune_epochs = [1]', "needs 'recipe.sparsity.threshold'"),
    ('[recipe.sparsity]\nmethod = "magnitude"\ntarget = 0.1', "'recipe.sparsity.prune_epochs' is empty"),
    ('[recipe.sparsity]\nmethod = "magnitude"\ntarget = 0.1\nthreshold = 0.01\nprune_epochs = [1]', "both set"),
    ('[recipe.sparsity]\nmethod = "magnitude"\ntarget = 0.1\nprune_epochs = [5]', "from 1 to 2"),
    ('[recipe.sparsity]\nmethod = "magnitude"\ntarget = 0.1\nprune_epochs = [2, 1]', "increasing"),
    ('[recipe.sparsity]\nl1 = 0.001', "method' is \"none\""),
    ('[recipe.sparsity]\nmethod = "magnitude"\ntarget = 1.0\nprune_epochs = [1]', "in (0, 1)"),
    ('[recipe.sparsity]\nmethod = "prune"', "choose one of none, l1, magnitude"),
])
def test_bad_sparsity_tables_are_one_line_errors(tmp_path, extra, message):
    with pytest.raises(BenchError, match="tiny.toml") as info:
        sparse_suite(tmp_path, extra=extra)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_check_reports_active_params_and_the_leaderboard_shows_them():
    row = dict(model="mlp", params=1000, trainable_params=1000, active_params=1000, active_fraction=1.0,
               flops_per_image=2000)
    pruned = {**row, "active_params": 50, "active_fraction": 0.05}
    findings = {f.check: f.result for f in check_model(pd.Series(row), pd.Series(pruned), GateRule())}
    assert findings["active (nonzero) params"] == CHANGED and findings["params"] == OK
    assert _model(pd.Series(row)) == "mlp (1 k params)"
    assert _model(pd.Series(pruned)) == "mlp (1 k params, 50 active (5.00%))"


# ---------------------------------------------------------------- the shipped suites ----

def test_the_cifar_sparse_suite_runs_on_cpu_with_short_overrides(tmp_path, monkeypatch):
    """The GPU suite's recipe end to end (augmentation, bf16, channels-last, gradual pruning) on
    a small synthetic stand-in for the JPEG set, shortened with --set."""
    from bench.runner import run_invocation

    monkeypatch.setattr("bench.runner.load_dataset",
                        lambda *a, **k: separable_dataset(n_train=64, n_test=32, size=16, channels=3))
    suite = load_suite("cifar10-jpeg-resnet9-sparse", [
        "recipe.epochs=2", "recipe.batch_size=32", "recipe.eval_batch_size=64",
        "model.args={widths=[8,16,16,16]}", "recipe.sparsity.prune_epochs=[1,2]"])
    record, path = run_invocation(suite, runs=1, device_choice="cpu", results_dir=tmp_path)
    assert record["status"] == "complete" and path.is_file()
    counts = record["runs"][0]["sparsity"]
    assert counts["prunable_active_params"] == round(0.10 * counts["prunable_params"])
    assert record["model"]["active_params"] == counts["active_params"] < record["model"]["params"]
    assert counts["flops_per_image"] == record["model"]["flops_per_image"] > counts["active_flops_per_image"] > 0
    assert [p.get("pruned", False) for p in record["runs"][0]["curve"]] == [True, True]


@pytest.mark.parametrize("name", ["fashion-mnist-mlp-l1", "fashion-mnist-mlp-pruned", "cifar10-jpeg-resnet9-sparse"])
def test_the_sparse_suites_load(name):
    assert load_suite(name).recipe["sparsity"]["method"] != "none"


# ---------------------------------------------------------------- the study report's front ----

def test_the_pareto_front_and_the_smallest_fraction_reaching_the_target():
    from bench.studies.figures import pareto_front, smallest_reaching
    from bench.studies.plots import FrontPoint, pareto_png

    points = pd.DataFrame([
        ("magnitude", 0.50, 0.86), ("magnitude", 0.10, 0.85), ("magnitude", 0.02, 0.81), ("magnitude", 0.01, 0.70),
        ("l1", 0.50, 0.84), ("l1", 0.10, 0.855), ("l1", 0.02, 0.79), ("dense", 1.0, 0.85)],
        columns=["sparsity_series", "active_fraction", "mean_accuracy"])
    points["active_params"] = 1000 * points["active_fraction"]  # one network size: params follow the fraction
    # dominated: l1 at 50% (magnitude 50% and 10% are better), dense (magnitude 50% is better and
    # sparser), l1 at 2% (magnitude 2% is better at the same fraction)
    assert pareto_front(points) == {0, 2, 3, 5}
    reach = smallest_reaching(points[points["sparsity_series"] != "dense"], 0.80)
    assert reach["magnitude"]["active_fraction"] == 0.02 and reach["l1"]["active_fraction"] == 0.10
    assert smallest_reaching(points, 0.99) == {}
    png = pareto_png({"magnitude": [FrontPoint(0.1, 0.85, 0.84, 0.86, True)]}, {"magnitude": "#123456"},
                     (0.85, None, None), 0.8)
    assert png.startswith(b"\x89PNG")
