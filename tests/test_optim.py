"""Optimizers: Muon's orthogonalization, the combined optimizer's groups, a Muon suite trains."""

import pytest
import torch

from bench.train.optim import Combined, Muon, build_optimizer, newton_schulz_orthogonalize
from bench.models import build_model
from bench.suites import load_suite
from bench.train import PreparedData, train_run
from tests.helpers import separable_dataset, suite_text


@pytest.mark.parametrize("shape", [(16, 48), (48, 16)])
def test_newton_schulz_gives_near_orthogonal_rows_or_columns(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    x = newton_schulz_orthogonalize(g, steps=5)
    small = min(shape)
    gram = x @ x.T if shape[0] <= shape[1] else x.T @ x
    # the quintic iteration pushes singular values into roughly [0.7, 1.2], not exactly 1
    eigenvalues = torch.linalg.eigvalsh(gram)
    assert gram.shape == (small, small)
    assert eigenvalues.min() > 0.4 and eigenvalues.max() < 1.6


def test_muon_takes_conv_filters_and_sgd_the_rest():
    recipe = load_suite("cifar10-94", ["recipe.optimizer=\"muon\""]).recipe
    model = build_model("airbench", 10, (3, 32, 32))
    opt = build_optimizer(model, recipe)
    assert isinstance(opt, Combined) and isinstance(opt.parts[0], Muon)
    names = {g["name"] for g in opt.param_groups}
    assert names == {"filters", "norm", "whiten_bias", "other"}
    filters = next(g for g in opt.param_groups if g["name"] == "filters")
    assert all(p.ndim == 4 for p in filters["params"]) and filters["base_lr"] == recipe["muon"]["lr"]


def test_muon_step_lowers_a_quadratic():
    w = torch.nn.Parameter(torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(1)))
    opt = Muon([w], lr=0.1, momentum=0.6)
    losses = []
    for _ in range(60):
        loss = (w ** 2).sum()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    # each step moves a fixed spectral distance, so 60 steps cross most of the way to 0
    assert losses[-1] < 0.25 * losses[0]


def test_a_muon_suite_trains(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text(suite_text(model="airbench", model_args="args = { widths = [8, 8, 8] }", epochs=2))
    suite = load_suite(str(path), ['recipe.optimizer="muon"', "recipe.muon.lr=0.05"])
    data = PreparedData.from_dataset(separable_dataset(size=12, channels=3))
    run = train_run(suite.resolved, data, seed=0, device=torch.device("cpu"))
    assert run["status"] == "complete" and run["accuracy"] > 0.8


def test_newton_schulz_on_a_stack_equals_each_matrix_alone():
    stack = torch.randn(3, 16, 48, generator=torch.Generator().manual_seed(2))
    batched = newton_schulz_orthogonalize(stack)
    for i in range(3):
        torch.testing.assert_close(batched[i], newton_schulz_orthogonalize(stack[i]), rtol=1e-4, atol=1e-5)


def test_muon_step_batched_by_shape_equals_the_per_layer_step():
    g = torch.Generator().manual_seed(3)
    shapes = [(8, 4, 3, 3), (8, 4, 3, 3), (16, 8, 3, 3), (8, 4, 3, 3)]
    params = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]
    expected = [p.detach().clone() for p in params]
    grads = [torch.randn(*s, generator=g) for s in shapes]
    lr, momentum, decay = 0.05, 0.6, 0.1
    opt = Muon(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=decay)
    for p, grad in zip(params, grads):
        p.grad = grad.clone()
    opt.step()
    for w, grad, p in zip(expected, grads, params):
        buf = grad.clone()  # first step: the momentum buffer is the gradient
        matrix = grad.add(buf, alpha=momentum).reshape(w.size(0), -1)
        update = newton_schulz_orthogonalize(matrix).view_as(w)
        scale = max(1.0, matrix.size(0) / matrix.size(1)) ** 0.5
        torch.testing.assert_close(p.detach(), w * (1 - lr * decay) - lr * scale * update, rtol=1e-5, atol=1e-6)


def test_lookahead_updates_cached_tensors_without_walking_the_state_dict():
    from bench.train.optim import Lookahead

    model = build_model("airbench", 10, (3, 12, 12), {"widths": [8, 8, 8]})
    lookahead = Lookahead(model, every=2, decay=0.9)
    slow_before = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.add_(2.0)
    fast = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def walk():
        raise AssertionError("the update walked the state dict")

    model.state_dict = walk
    lookahead.update(model, decay=0.75)
    for key, slow in slow_before.items():
        expected = slow + 0.25 * (fast[key] - slow)  # lerp toward the weights, then weights := slow
        actual = dict(zip(fast, lookahead.fast))[key]
        torch.testing.assert_close(actual, expected)
    torch.testing.assert_close(lookahead.fast[0], lookahead.slow[0])


@pytest.mark.parametrize("kind, cls", [("adam", torch.optim.Adam), ("adadelta", torch.optim.Adadelta)])
def test_adam_and_adadelta_are_torchs_with_the_recipes_groups(kind, cls):
    recipe = load_suite("fashion-mnist-mlp", [f'recipe.optimizer="{kind}"', "recipe.lr=0.002"]).recipe
    opt = build_optimizer(build_model("mlp", 10, (1, 28, 28)), recipe)
    assert type(opt) is cls
    assert opt.defaults["foreach"] is True  # the multi-tensor path on CPU (fused only on CUDA)
    assert all(g["lr"] == 0.002 and g["weight_decay"] == recipe["weight_decay"] for g in opt.param_groups)


@pytest.mark.parametrize("kind, lr", [("adam", 0.01), ("adadelta", 1.0)])
def test_adam_and_adadelta_suites_train(tmp_path, kind, lr):
    path = tmp_path / "a.toml"
    path.write_text(suite_text(epochs=2))
    suite = load_suite(str(path), [f'recipe.optimizer="{kind}"', f"recipe.lr={lr}"])
    run = train_run(suite.resolved, PreparedData.from_dataset(separable_dataset()), seed=0, device=torch.device("cpu"))
    assert run["status"] == "complete" and run["accuracy"] > 0.8
