"""End to end on real data: the README's main job, one seed, through a real process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed (make data)")
def test_fashion_mnist_91_passes_on_cpu(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "run", "fashion-mnist-91", "--runs", "1", "--device", "cpu",
                           "--results", str(tmp_path)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "BENCH_DATA": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-2000:]
    [path] = list(tmp_path.glob("*.json"))
    record = json.loads(path.read_text())
    assert record["status"] == "complete" and record["aggregate"]["verdict"] == "PASS"
    run = record["runs"][0]
    assert run["accuracy"] >= 0.91 and run["reached_target"]
    assert record["dataset"]["train_size"] == 60000 and record["dataset"]["test_size"] == 10000
    assert "PASS" in done.stdout
