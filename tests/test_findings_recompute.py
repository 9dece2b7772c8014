"""Findings recomputed from the result files alone: plain json and statistics, none of bench's
code, against the sentences of the committed reports (docs/findings.md states the rules)."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import defaultdict
from pathlib import Path

STUDIES = Path(__file__).resolve().parent.parent / "results" / "studies"
T95 = {2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}  # Student t, df


def _cells(study: str) -> dict[str, list[dict]]:
    """Axis values (as a JSON key) -> the runs of that point's complete cells."""
    out = defaultdict(list)
    for path in (STUDIES / study / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        if record["status"] == "complete":
            out[json.dumps(record["study"]["axes"], sort_keys=True)].append(record["runs"][0])
    return out


def _interval(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    half = T95[len(values) - 1] * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def _findings(study: str) -> str:
    return (STUDIES / study / "REPORT.md").read_text().split("\n## Findings\n", 1)[1]


def test_the_budget_studys_epochs_finding_recomputes_with_its_tie():
    points = {json.loads(k)["recipe.epochs"]: runs for k, runs in _cells("fmnist-91-budget").items()}
    validation = {e: [r["validation_accuracy"] for r in runs] for e, runs in points.items()}
    best = max(validation, key=lambda e: statistics.fmean(validation[e]))
    runner = max((e for e in validation if e != best), key=lambda e: statistics.fmean(validation[e]))
    low, high = _interval(validation[best])
    tied = low <= statistics.fmean(validation[runner]) <= high
    text = _findings("fmnist-91-budget")
    line = next(x for x in text.splitlines() if x.startswith("- recipe.epochs: "))
    assert line.startswith(f"- recipe.epochs: {best:g} against the runner-up {runner:g}")
    assert f"mean validation top-1 {100 * statistics.fmean(validation[best]):.2f}% against " \
           f"{100 * statistics.fmean(validation[runner]):.2f}%" in line
    assert f"95% CI ({100 * low:.2f}%–{100 * high:.2f}%)" in line
    assert ("tied within noise" in line) == tied and tied  # 3 epochs ties with 4, as the header says
    header = (STUDIES / "fmnist-91-budget" / "REPORT.md").read_text()
    assert f"Tied with it (mean validation top-1 within its 95% CI" in header and "recipe.epochs = 3 (" in header


def test_the_sparsity_readoff_recomputes_on_test():
    series_of = {"magnitude": "magnitude", "l1": None}
    fewest: dict[str, tuple[float, float]] = {}
    for key, runs in _cells("fmnist-sparsity").items():
        spec = json.loads(key)["recipe.sparsity"]
        if spec["method"] == "none":
            continue
        name = series_of.get(spec["method"]) or ("l1, threshold" if spec.get("threshold") is not None
                                                  else "l1 then prune")
        test = statistics.fmean(r["accuracy"] for r in runs)
        active = statistics.fmean(r["sparsity"]["active_params"] for r in runs)
        if test >= 0.824 and (name not in fewest or active < fewest[name][0]):
            fewest[name] = (active, test)
    line = next(x for x in _findings("fmnist-sparsity").splitlines() if x.startswith("- Fewest active parameters"))
    for name, (active, test) in fewest.items():
        assert f"{name}: {round(active):,} active parameters" in line, name
        assert re.search(re.escape(f"{name}: {round(active):,} active parameters (") + r"[0-9.]+% of its network\), "
                         + re.escape(f"{100 * test:.2f}% test top-1"), line), name
    assert "validation" not in line  # the target was set on test: the read-off compares test
