import math

import pytest

from bench.train.schedules import lr_multiplier
from bench.suites import SCHEMA


def sched(**kw):
    base = {k: v.default for k, v in SCHEMA["recipe"]["schedule"].items()}
    base.update(kw)
    return base


def test_piecewise_triangle():
    s = sched(kind="piecewise", knots=[[0, 0.2], [0.2, 1.0], [1.0, 0.0]])
    assert lr_multiplier(s, 0, 10, 100) == pytest.approx(0.2)
    assert lr_multiplier(s, 20, 10, 100) == pytest.approx(1.0)
    assert lr_multiplier(s, 60, 10, 100) == pytest.approx(0.5)
    assert lr_multiplier(s, 100, 10, 100) == pytest.approx(0.0)


def test_onecycle_matches_torch():
    import torch

    total = 50
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=total, pct_start=0.3,
                                              div_factor=25, final_div_factor=1e4, anneal_strategy="cos",
                                              cycle_momentum=False)
    s = sched(kind="onecycle", pct_start=0.3, div_factor=25.0, final_div_factor=1e4)
    for step in range(total):
        assert lr_multiplier(s, step, 10, total) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-6, abs=1e-9)
        opt.step()
        if step < total - 1:
            ref.step()


def test_step_decay():
    s = sched(kind="step", milestones=[2, 4], gamma=0.1)
    assert lr_multiplier(s, 19, 10, 100) == 1.0
    assert lr_multiplier(s, 20, 10, 100) == pytest.approx(0.1)
    assert lr_multiplier(s, 45, 10, 100) == pytest.approx(0.01)


def test_cosine_warm_restarts():
    s = sched(kind="cosine_restarts", t0=1.0, t_mult=2.0, min_factor=0.0)
    assert lr_multiplier(s, 0, 10, 100) == pytest.approx(1.0)
    assert lr_multiplier(s, 5, 10, 100) == pytest.approx(0.5)
    assert lr_multiplier(s, 10, 10, 100) == pytest.approx(1.0)   # restart after 1 epoch
    assert lr_multiplier(s, 20, 10, 100) == pytest.approx(0.5)   # middle of the 2-epoch period
    assert lr_multiplier(s, 30, 10, 100) == pytest.approx(1.0)
    assert 0 <= lr_multiplier(s, 29, 10, 100) < 0.01 + (1 + math.cos(math.pi * 19 / 20)) / 2


def test_a_one_step_onecycle_warm_up_starts_at_the_peak():
    # pct_start x total_steps = 1: torch's first phase has no length (it divides by zero)
    s = sched(kind="onecycle", pct_start=0.1, div_factor=25.0, final_div_factor=1e4)
    assert lr_multiplier(s, 0, 10, 10) == pytest.approx(1.0)
    assert 0 < lr_multiplier(s, 5, 10, 10) < 1
    assert lr_multiplier(sched(kind="onecycle", pct_start=0.05), 0, 10, 20) == pytest.approx(1.0)


def test_warm_restarts_with_a_tiny_period_answer_at_once():
    """Periods are found in closed form: counting them one by one never ended for a tiny t0
    (a hang before; this test then never returns)."""
    tiny = sched(kind="cosine_restarts", t0=1e-6, t_mult=1.0, min_factor=0.0)
    # 1,000,000 epochs is 10^12 periods; a quarter into one of them
    assert lr_multiplier(tiny, 10**6 * 4 + 1, 4, 10**6 * 4 + 1) == pytest.approx(
        (1 + math.cos(math.pi * math.fmod(10**6 + 0.25, 1e-6) / 1e-6)) / 2, abs=1e-6)
    growing = sched(kind="cosine_restarts", t0=1e-6, t_mult=1.0 + 1e-9, min_factor=0.0)
    assert 0 <= lr_multiplier(growing, 10**6, 10, 10**6) <= 1
    # the closed form agrees with counting where counting ends: periods 1, 2, 4 epochs
    s = sched(kind="cosine_restarts", t0=1.0, t_mult=2.0, min_factor=0.0)
    for step, expected in ((69, (1 + math.cos(math.pi * 3.9 / 4)) / 2), (70, 1.0), (50, 0.5)):
        assert lr_multiplier(s, step, 10, 100) == pytest.approx(expected, abs=1e-9)
