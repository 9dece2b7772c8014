import json
import os
from pathlib import Path

import pytest
import torch

from bench.measure import count_params, forward_flops_per_image
from bench.record.files import ResultWriter
from bench.record.schema import migrate
from bench.record.stats import aggregate, mean_ci95, t_critical_95, time_summary


def run(acc, t, status="complete"):
    return {"status": status, "accuracy": acc, "time_to_target_s": t, "train_images_per_s": 100.0,
            "energy_j": None}


def test_ci_uses_student_t():
    mean, ci = mean_ci95([0.93, 0.94, 0.95])
    assert mean == pytest.approx(0.94)
    # sd 0.01, n 3: half width t(2) * 0.01 / sqrt(3)
    assert ci[1] - mean == pytest.approx(4.303 * 0.01 / 3 ** 0.5, rel=1e-3)
    assert mean_ci95([0.9])[1] is None
    assert 2.021 < t_critical_95(35) < 2.042


def test_time_summary_headline_is_median_and_olympic_drops_extremes():
    s = time_summary([10.0, 1.0, 2.0, 3.0, 100.0])
    assert s["median_time_s"] == 3.0
    assert s["olympic_mean_time_s"] == pytest.approx(5.0)
    assert s["min_time_s"] == 1.0 and s["max_time_s"] == 100.0
    assert time_summary([1.0, 2.0])["olympic_mean_time_s"] is None


def test_verdict_on_mean_accuracy_and_pass_fraction():
    agg = aggregate([run(0.95, 1.0), run(0.935, 2.0), run(0.94, 3.0)], 0.94)
    assert agg["verdict"] == "PASS" and agg["pass_fraction"] == pytest.approx(2 / 3)
    assert aggregate([run(0.95, 1.0), run(0.92, 2.0)], 0.94)["verdict"] == "FAIL"
    # a diverged run never makes a PASS
    assert aggregate([run(0.95, 1.0), run(None, None, "diverged")], 0.94)["verdict"] == "FAIL"


def test_params_and_flops_of_a_linear_layer():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5))
    with torch.no_grad():
        model[1].weight[0].zero_()
    figures = count_params(model)
    assert figures["params"] == 65 and figures["active_params"] == 65 - 12
    assert forward_flops_per_image(model, (3, 2, 2)) == 2 * 12 * 5


def a_record(status: str) -> dict:
    """A record the result schema accepts: a committed result, brought to the current schema."""
    committed = sorted((Path(__file__).resolve().parent.parent / "results" / "runs").glob("*.json"))[0]
    return {**migrate(json.loads(committed.read_text())), "status": status}


def test_result_writer_is_atomic_and_never_overwrites(tmp_path):
    first = ResultWriter(tmp_path)
    record = a_record("interrupted")
    record["runs"][0]["curve"][0]["loss"] = float("nan")
    p1 = first.write(record)
    second = ResultWriter(tmp_path)
    second.run_id = first.run_id  # force a name collision
    p2 = second.write(a_record("complete"))
    assert p1 != p2
    assert json.loads(p1.read_text())["status"] == "interrupted"
    assert json.loads(p1.read_text())["runs"][0]["curve"][0]["loss"] is None  # NaN is not JSON: written as null
    assert json.loads(p2.read_text())["id"] == p2.stem
    first.write(a_record("complete"))
    assert json.loads(p1.read_text())["status"] == "complete"
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
