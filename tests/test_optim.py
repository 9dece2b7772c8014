"""Optimizers: Muon's orthogonalization, the combined optimizer's groups, a Muon suite trains."""

import pytest
import torch

from bench.optim import Combined, Muon, build_optimizer, newton_schulz_orthogonalize
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
