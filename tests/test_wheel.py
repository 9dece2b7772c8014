"""A package that works installed (issue 39): a wheel built from the repository, installed into a
fresh virtual environment without the clone, lists every shipped suite and passes the smoke
suite from a folder outside the repository."""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from bench.suites import available_suites

ROOT = Path(__file__).resolve().parent.parent
FMNIST = Path("/usr/share/datasets/fashion-mnist")


def sh(*args, cwd=None, env=None):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env, timeout=1200)
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_an_installed_wheel_lists_every_suite_and_runs_the_smoke_suite(tmp_path):
    if not FMNIST.is_dir():
        pytest.skip("Fashion-MNIST is not installed (make data)")
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", ROOT, "-w", tmp_path / "wheel")
    (wheel,) = (tmp_path / "wheel").glob("bench-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    import torch  # the pinned CPU build this environment has: never a CUDA download

    torch_version = torch.__version__.split("+")[0]
    # without the clone on the path (its bench.egg-info would pass for an installed bench)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BENCH_SUITES", "BENCH_RESULTS")}
    env["COLUMNS"] = "200"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    sh(python, "-m", "pip", "install", "-q", "--no-compile", f"torch=={torch_version}", wheel, cwd=outside, env=env)
    bench = tmp_path / "venv" / "bin" / "bench"
    listed = sh(bench, "list", cwd=outside, env=env)
    for name in available_suites():
        assert f"\n{name} " in listed, name
    assert "no source: it cites" not in listed  # the calibrations ship with the suites that cite them
    sh(bench, "run", "fashion-mnist-smoke", "--runs", "1", "--device", "cpu", cwd=outside, env=env)
    (result,) = (outside / "results" / "runs").glob("*.json")
    assert '"verdict": "PASS"' in result.read_text()
    assert str(ROOT) not in sh(python, "-c", "import bench; print(bench.__file__)", cwd=outside, env=env)
