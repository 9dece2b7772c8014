"""Careless and hostile input against the newest features (issue 41): each case ends in one
line naming the culprit and exit 2 before any work, or as the outcome it is (a divergence);
never a traceback, a hang or a silent wrong result."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from tests.helpers import separable_dataset, suite_text

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def suite(tmp_path, monkeypatch):
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())
    path = tmp_path / "tiny.toml"
    path.write_text(suite_text(epochs=1))
    return path


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_an_enormous_rate_diverges(suite, tmp_path, capsys, optimizer):
    """lr = 1e308 is past what torch's optimizers take (an overflow traceback, recorded as
    failed): the rate in force stops at the ceiling, and the weights' overflow is a divergence."""
    results = tmp_path / "results"
    code = main(["run", str(suite), "--runs", "1", "--device", "cpu", "--results", str(results),
                 "--set", "recipe.lr=1e308", "--set", "recipe.weight_decay=1e308",
                 "--set", f'recipe.optimizer="{optimizer}"'])
    out, err = capsys.readouterr()
    assert code == 3 and "Traceback" not in err, out + err
    [path] = results.iterdir()
    record = json.loads(path.read_text())
    assert record["status"] == "diverged" and [run["status"] for run in record["runs"]] == ["diverged"]
    assert record["suite"]["resolved"]["recipe"]["lr"] == 1e308  # the record keeps what was asked
