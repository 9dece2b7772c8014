"""The Python API: what `bench run`, `bench show` and `bench export` do, from a notebook or a script.

    import bench
    result = bench.run("fashion-mnist-smoke", runs=1, device="cpu")   # trains; writes a result file
    result.verdict, result.aggregate["median_time_s"], result.path
    suite = bench.load_suite("fashion-mnist-91", recipe={"epochs": 2})
    tables = bench.read_results("results")                            # the tables of `bench export`
    tables.runs.groupby("suite").time_to_target_s.median()

Keyword overrides are suite keys, as `--set` takes them: `recipe={"lr": 0.2}` or
`**{"recipe.lr": 0.2}`. Nothing here prints progress unless a reporter is given; bad input is a
BenchError with the CLI's one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.progress import Reporter
from bench.suites import Suite, suite_with
from bench.suites import load_suite as _load_suite


@dataclass(frozen=True)
class RunResult:
    """One invocation of a suite: its runs (one dict per seed, as the result file holds them), the
    aggregate (verdict, medians, CI), the verdict, the result file, and the whole record."""

    suite: str
    status: str
    verdict: str | None
    runs: list[dict[str, Any]]
    aggregate: dict[str, Any]
    path: Path | None
    record: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """What `bench run --json` prints for it: no curves, no environment."""
        keep = ("seed", "status", "accuracy", "reached_target", "time_to_target_s", "train_images_per_s", "epochs")
        return {"suite": self.suite, "status": self.status, "verdict": self.verdict,
                "result_file": str(self.path) if self.path else None, "aggregate": self.aggregate,
                "runs": [{k: run.get(k) for k in keep} for run in self.runs]}


def _dotted(overrides: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """recipe={"lr": 0.2} and "recipe.lr"=0.2 alike, as dotted keys; model.args stays one value."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted != "model.args":
            out.update(_dotted(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def load_suite(suite: str | Path | Suite, **overrides: Any) -> Suite:
    """A suite by name (`bench list`) or .toml path, every default filled in, with overrides."""
    base = suite if isinstance(suite, Suite) else _load_suite(str(suite))
    if not overrides:
        return base
    values = {**base.overrides, **_dotted(overrides)}
    where = f"{base.path} (with {', '.join(f'{k}={v!r}' for k, v in values.items())})"
    return suite_with(base.path, values, where)


def run(suite: str | Path | Suite, runs: int | None = None, *, seed: int = 0, device: str = "auto",
        results: str | Path | None = None, loader: str = "auto", offline: bool = False,
        reporter: Reporter | None = None, **overrides: Any) -> RunResult:
    """Trains `runs` seeds of a suite (default: the suite's runs) as `bench run` does, writes the
    result file (to `results`, default results/runs or $BENCH_RESULTS/runs), and returns it."""
    from bench.record.files import default_results_dir
    from bench.runner import run_invocation

    chosen = load_suite(suite, **overrides)
    if runs is not None and (not isinstance(runs, int) or isinstance(runs, bool) or runs < 1):
        raise BenchError(f"runs={runs!r}: give a whole number of runs, at least 1")
    record, path = run_invocation(chosen, runs=runs, seed=seed, device_choice=device, loader=loader,
                                  results_dir=Path(results) if results is not None else default_results_dir(),
                                  reporter=reporter, offline=offline, command=None)
    return RunResult(suite=chosen.name, status=record["status"], verdict=record["aggregate"].get("verdict"),
                     runs=record["runs"], aggregate=record["aggregate"], path=path, record=record)


@dataclass(frozen=True)
class ResultTables:
    """The tables of `bench export`, as pandas DataFrames with their declared dtypes."""

    runs: Any         # one row per run, its invocation's context beside it
    invocations: Any  # one row per result file
    curves: Any       # one row per evaluation of every run


def read_results(folder: str | Path = "results", reporter: Reporter | None = None) -> ResultTables:
    """Every result file under `folder` (a results folder, its runs/, or one file), as the
    runs, invocations and curves tables `bench export --table ...` writes."""
    from bench.reports.export import curves_table, invocations_table, runs_table
    from bench.reports.frame import require_results

    found = require_results(Path(folder), reporter)
    return ResultTables(runs=runs_table(found), invocations=invocations_table(found), curves=curves_table(found))
