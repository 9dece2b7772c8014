"""The Python API (issue 39): import bench stays light, and docs/python-api.md's example runs."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bench
from bench.cli import main
from tests.helpers import separable_dataset

ROOT = Path(__file__).resolve().parent.parent


def test_import_bench_loads_neither_torch_nor_pandas():
    probe = ("import sys, bench; assert {'run', 'load_suite', 'read_results'} <= set(dir(bench)); "
             "bench.load_suite('fashion-mnist-smoke'); print(sorted({'torch', 'pandas'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_load_suite_takes_nested_and_dotted_overrides():
    suite = bench.load_suite("fashion-mnist-smoke", recipe={"lr": 0.2}, **{"recipe.epochs": 1})
    assert suite.recipe["lr"] == 0.2 and suite.recipe["epochs"] == 1
    assert suite.hash != bench.load_suite("fashion-mnist-smoke").hash
    with pytest.raises(bench.BenchError, match="'recipe.lr' is -1"):
        bench.load_suite("fashion-mnist-smoke", recipe={"lr": -1})


def test_the_documented_example_runs(tmp_path, monkeypatch, capsys):
    """The page's code block, executed as written (on the synthetic set: the data is not the point)."""
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())
    page = (ROOT / "docs" / "python-api.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", page, re.S)
    exec(compile(code, "docs/python-api.md", "exec"), {"RESULTS": tmp_path / "results"})
    out = capsys.readouterr().out
    assert "fashion-mnist-smoke 0.824 1.0" in out and re.search(r"^(PASS|FAIL) [01]\.\d{4} \S+\.json$", out, re.M)
    assert len(list((tmp_path / "results").glob("*.json"))) == 1


def test_run_json_and_quiet_and_dry_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())
    common = ["fashion-mnist-smoke", "--runs", "1", "--device", "cpu", "--set", "recipe.epochs=1"]
    code = main(["run", *common, "--dry-run", "--results", str(tmp_path / "dry")])
    out, _ = capsys.readouterr()
    assert code == 0 and "dry run: fashion-mnist-smoke: ready" in " ".join(out.split())
    assert not list((tmp_path / "dry").glob("*.json"))  # nothing trained, nothing written
    code = main(["run", *common, "--json", "--quiet", "--results", str(tmp_path / "r")])
    out, err = capsys.readouterr()
    summary = json.loads(out)  # stdout is the JSON alone
    assert code in (0, 1) and summary["verdict"] in ("PASS", "FAIL") and len(summary["runs"]) == 1
    assert Path(summary["result_file"]).is_file() and "curve" not in summary["runs"][0]
    first, *rest = err.strip().splitlines()
    assert first == f"fashion-mnist-smoke: {summary['verdict']} -> {summary['result_file']}"
    assert all(line.startswith("warning: ") for line in rest)  # --quiet still says a run met high load


def test_dry_run_refuses_missing_data_in_one_line_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("bench.runner.train_run", lambda *a, **k: pytest.fail("trained"))
    suite = tmp_path / "mine.toml"
    suite.write_text((ROOT / "suites" / "fashion-mnist-smoke.toml").read_text()
                     .replace('name = "fashion-mnist-smoke"', 'name = "mine"')
                     .replace('name = "fashion-mnist"', f'name = "imagefolder"\npath = "{tmp_path / "nowhere"}"'))
    code = main(["run", str(suite), "--dry-run", "--device", "cpu", "--results", str(tmp_path / "r")])
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip() and "unsourced" not in line]
    assert code == 2 and lines[-1].startswith("error:") and "nowhere does not exist" in " ".join(err.split())
