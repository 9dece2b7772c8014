"""The rules every Finding keeps (docs/findings.md): one split per decision, comparisons that hold
the other axes at the best point's values, one tie rule shared by header, table and Findings,
and times compared only where the cells ran alike (budget mode: the first crossing)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bench.studies.compare import Finding, judge
from bench.studies.figures import study_frames
from bench.studies.findings import findings
from bench.studies.ledger import read_ledger
from bench.studies.report_sections import best_line, points_table
from bench.studies.study import load_study
from bench.studies.sweep import shuffled
from bench.studies.timing import comparable_times, overlaps, time_sentence
from tests.test_findings import OPTIMIZERS, _axis_line, _frames, _grid, _study

RESULTS = Path(__file__).resolve().parent.parent / "results"
COMMITTED = sorted(p.name for p in (RESULTS / "studies").iterdir() if (p / "runs").is_dir())


@pytest.mark.parametrize("name", COMMITTED)
def test_no_committed_finding_compares_two_splits(name):
    study = load_study(name)
    data = study_frames(study, read_ledger(study, RESULTS / "studies" / name / "runs"))
    found = findings(study, data)
    assert found and all(isinstance(line, Finding) for line in found)
    mixed = [line for line in found if len(line.compares) > 1]
    assert not mixed, f"{name}: Findings comparing two splits: {mixed}"


def test_a_finding_that_names_two_splits_is_caught():
    # the sparsity read-off as it was: a validation mean against a target set on test
    assert len(Finding("fewest active parameters reaching the target", ["validation", "test"]).compares) == 2
    assert Finding("x", ["test", "test"]).compares == {"test"}


def test_the_runner_up_holds_the_other_axes_at_the_best_points_values(tmp_path):
    # sgd peaks at lr 0.1 (89%), adam at 0.01 (90%): across optimizers lr 0.1's best is sgd's 89%,
    # but with adam held fixed the runner-up rate is 0.001 (86%), a clear loss
    study = _study(tmp_path)
    lines = findings(study, _frames(study, _grid(sgd=(0.89, 0.82, 0.81), adam=(0.70, 0.90, 0.86))))
    line = _axis_line(lines, "recipe.lr")
    assert line.startswith("recipe.lr: 0.01 against the runner-up 0.001, with recipe.optimizer = adam held at the "
                           "best point's values")
    assert "0.01 is better" in line and "0.1" not in line.split("No value ties")[0].replace("0.01", "")


def test_an_axis_with_no_value_beside_the_best_is_compared_at_each_values_own_tuned_rate(tmp_path):
    # each optimizer tried on its own range: sgd at 0.1 and 0.01, adam at 0.01 and 0.001
    text = OPTIMIZERS + '[[exclude]]\n"recipe.optimizer" = "adam"\n"recipe.lr" = 0.1\n' \
        '[[exclude]]\n"recipe.optimizer" = "sgd"\n"recipe.lr" = 0.001\n'
    study = _study(tmp_path, text=text)
    grid = {("sgd", "0.1"): 0.85, ("sgd", "0.01"): 0.80, ("adam", "0.01"): 0.82, ("adam", "0.001"): 0.90}
    line = _axis_line(findings(study, _frames(study, grid)), "recipe.optimizer")
    assert ("adam against the runner-up sgd, each value at its own best recipe.lr (no other value was run at the "
            "best point's recipe.lr) (adam: recipe.lr = 0.001; sgd: recipe.lr = 0.1)") in line


def test_header_table_and_findings_share_one_tie_rule(tmp_path):
    # 4 seeds each, far apart in Welch's sense (the difference's interval excludes 0), yet the
    # runner-up's mean lies within the best one's own 95% interval: by the one rule, tied
    study = _study(tmp_path, text=OPTIMIZERS.replace('"recipe.lr" = [0.1, 0.01, 0.001]', '"recipe.lr" = [0.1]'))
    best, other = [0.900, 0.880, 0.920, 0.895, 0.905], [0.885, 0.890, 0.888, 0.887, 0.886]
    assert judge(best, other)[0] == "tied"
    data = _frames(study, {("adam", "0.1"): best, ("sgd", "0.1"): other})
    assert "Tied with adam: sgd." in _axis_line(findings(study, data), "recipe.optimizer")
    assert "Tied with it (mean validation top-1 within its 95% CI" in best_line(study, data)
    ranks = [row[len(study.axes)] for row in points_table(study, data).rows]
    assert ranks == ["1", "2 (ties 1)"]


def _timed(study, starts: list[float], lengths: list[float], concurrency: int = 1, load=None, order_seed=0):
    data = _frames(study, _grid(sgd=(0.80, 0.82, 0.81), adam=(0.84, 0.90, 0.86)), concurrency=concurrency)
    base = pd.Timestamp("2026-12-01T00:00:00Z")
    cells = data.cells
    cells["started_at"] = [(base + pd.Timedelta(seconds=s)).isoformat() for s in starts]
    cells["finished_at"] = [(base + pd.Timedelta(seconds=s + n)).isoformat() for s, n in zip(starts, lengths)]
    cells["competing_cpu_share"] = load
    cells["order_seed"] = order_seed
    return data


def test_cells_recorded_one_at_a_time_that_overlap_make_times_incomparable(tmp_path):
    study = _study(tmp_path)
    apart = _timed(study, [10.0 * i for i in range(30)], [9.0] * 30)
    assert overlaps(apart) == (0, 1) and comparable_times(apart) is None
    beside = _timed(study, [10.0 * i for i in range(30)], [9.0] * 29 + [5.0])
    beside.cells.loc[3, "started_at"] = beside.cells.loc[2, "started_at"]  # a second sweep's cell
    why = comparable_times(beside)
    assert why.startswith("the cells were recorded as run 1 at a time, yet as many as 2 ran at once")
    # two workers: chains of overlapping cells never put three at once
    two = _timed(study, [5.0 * i for i in range(30)], [9.0] * 30, concurrency=2)
    assert overlaps(two)[1] == 2 and comparable_times(two) is None


def test_high_load_and_an_unshuffled_grid_order_make_times_incomparable(tmp_path):
    study = _study(tmp_path)
    starts = [10.0 * i for i in range(30)]
    loaded = _timed(study, starts, [9.0] * 30, load=[0.05] * 29 + [0.45])
    assert comparable_times(loaded).startswith("1 of 30 cells whose load was measured met high load")
    # the frames list cells point by point: start times in that order are the grid's order
    in_order = _timed(study, starts, [9.0] * 30, order_seed=None)
    assert "ran in the grid's order, unshuffled" in comparable_times(in_order)
    assert time_sentence(in_order).startswith("Times are not comparable: the cells ran in the grid's order")
    assert comparable_times(_timed(study, starts, [9.0] * 30, order_seed=7)) is None


def test_a_sweep_shuffles_its_cells_by_a_seed():
    cells = list(range(40))
    assert shuffled(cells, 3) == shuffled(cells, 3) != cells and sorted(shuffled(cells, 3)) == cells
    assert shuffled(cells, 3) != shuffled(cells, 4)


def test_budget_mode_ranks_the_first_crossing_and_names_the_timed_region(tmp_path):
    study = _study(tmp_path)
    data = _timed(study, [10.0 * i for i in range(30)], [9.0] * 30)
    data.points["median_first_crossing_s"] = [5.0 + i for i in range(len(data.points))]
    text = time_sentence(data, "budget")
    first = data.points.iloc[0]
    assert f"the fastest is {first['label']}, 5.00 s first crossing of the target (median over the seeds)" in text
    assert "The timed region (the whole budget) of" in text


def _ledger(*codes: dict):
    from types import SimpleNamespace

    return SimpleNamespace(cells={f"c{i}": SimpleNamespace(result=SimpleNamespace(record={"code": code}))
                                  for i, code in enumerate(codes)})


def test_a_sweep_refuses_to_add_cells_from_other_code_to_a_study():
    from types import SimpleNamespace

    from bench.errors import BenchError
    from bench.studies.sweep import check_one_code

    study = SimpleNamespace(name="s")
    clean = {"git_commit": "a" * 40, "git_dirty": False}
    check_one_code(study, _ledger(clean, clean), clean)  # the same commit, clean: one code
    check_one_code(study, _ledger(), {**clean, "git_dirty": True})  # a fresh study: nothing to mix with
    with pytest.raises(BenchError, match=r"its cells ran on other code \(2 on aaaaaaa\) than this tree "
                                         r"\(bbbbbbb\).*--allow-mixed"):
        check_one_code(study, _ledger(clean, clean), {"git_commit": "b" * 40, "git_dirty": False})
    with pytest.raises(BenchError, match=r"\(1 on aaaaaaa\+dirty\) than this tree \(aaaaaaa\)"):
        check_one_code(study, _ledger({**clean, "git_dirty": True}), clean)  # modified against clean


def test_a_cited_calibration_file_that_is_missing_is_said(tmp_path):
    from bench.studies.report_sections import missing_citations

    study = load_study("fmnist-mlp-lr")
    there = "calibration:results/calibration/fashion-mnist-mlp-20261203T141826-vm-1097.json"  # restored
    gone = "calibration:results/calibration/fashion-mnist-mlp-gone.json"
    cells = pd.DataFrame({"target_source": [there, gone, gone, None, "reference: a paper"]})
    assert missing_citations(study, cells) == [
        "2 cells cite the calibration file results/calibration/fashion-mnist-mlp-gone.json, which is missing: the "
        "source of the target they were judged under cannot be checked; restore it from the repository's history "
        "or recalibrate."]
