"""The study report against the result files it is drawn from: every figure recomputed here
from the files, the ranking rule, the best values line, the plots each axis calls for."""

import json
import statistics

import pandas as pd
import pytest

from bench.studies.figures import ranked, study_frames
from bench.studies.ledger import read_ledger
from bench.studies.study import load_study


@pytest.fixture(scope="module")
def finished(synthetic_study):
    study_path, folder = synthetic_study
    return load_study(str(study_path)), folder


def by_point(folder):
    """The accuracies in the result files, per (train_size, batch_size)."""
    out = {}
    for path in (folder / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        axes = record["study"]["axes"]
        out.setdefault((axes["dataset.train_size"], axes["recipe.batch_size"]), []).append(record["runs"][0])
    return out


def table_rows(markdown, title):
    section = markdown.split(f"## {title}")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in row.strip("|").split("|")))) for row in rows[1:]]


def test_the_points_table_pools_each_points_seeds_from_the_files(finished):
    study, folder = finished
    rows = table_rows((folder / "REPORT.md").read_text(), "Points")
    runs = by_point(folder)
    assert len(rows) == 4 and all(len(v) == 2 for v in runs.values())
    for row in rows:
        mine = runs[(int(row["dataset.train_size"]), int(row["recipe.batch_size"]))]
        accuracies = [r["accuracy"] for r in mine]
        mean, std = statistics.fmean(accuracies), statistics.stdev(accuracies)
        assert row["test top-1 ± std"] == f"{100 * mean:.2f}% ± {100 * std:.2f}"
        assert row["test 95% CI"] == "—"  # two seeds: t = 12.7 makes no interval worth printing
        assert row["seeds"] == "2/2"
        assert row["runs ≥ target"] == f"{100 * sum(a >= 0.9 for a in accuracies) / 2:.0f}%"
        assert row["train accuracy"] == f"{100 * statistics.fmean(r['train_accuracy'] for r in mine):.2f}%"
    means = [float(r["test top-1 ± std"].split("%")[0]) for r in rows]
    assert means == sorted(means, reverse=True) and [r["rank"] for r in rows] == ["1", "2", "3", "4"]


def test_the_best_values_line_names_the_first_ranked_point(finished):
    _, folder = finished
    markdown = (folder / "REPORT.md").read_text()
    best = table_rows(markdown, "Points")[0]
    line = next(line for line in markdown.splitlines() if line.startswith("**Best value of each axis"))
    assert (f"dataset.train_size = {best['dataset.train_size']} · recipe.batch_size = {best['recipe.batch_size']}"
            in line)
    assert "Ties not judged: the best point has no interval (fewer than 3 seeds)" in line
    assert "none with fewer than 3 seeds" in markdown  # the points table says why its CI column is empty


def test_each_axis_gets_its_plots(finished):
    _, folder = finished
    markdown = (folder / "REPORT.md").read_text()
    for name in ("curves-dataset-train_size.png", "curves-recipe-batch_size.png", "train-size.png"):
        assert f"]({name})" in markdown and (folder / name).stat().st_size > 10_000
    html = (folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") == markdown.count("![")
    assert '<table class="sortable">' in html and "<script>" in html


def test_batch_size_plot_appears_when_points_reach_the_target(finished):
    study, folder = finished
    data = study_frames(study, read_ledger(study, folder / "runs"))
    reached = data.points["all_reached"].any()
    assert ("](batch-size.png)" in (folder / "REPORT.md").read_text()) == reached


def test_time_ranking_puts_points_that_always_reach_first_fastest_first():
    points = pd.DataFrame([
        {"order": 0, "mean_accuracy": 0.95, "all_reached": False, "median_reach_time_s": None},
        {"order": 1, "mean_accuracy": 0.91, "all_reached": True, "median_reach_time_s": 9.0},
        {"order": 2, "mean_accuracy": 0.92, "all_reached": True, "median_reach_time_s": 4.0},
        {"order": 3, "mean_accuracy": None, "all_reached": False, "median_reach_time_s": None},
        {"order": 4, "mean_accuracy": 0.97, "all_reached": False, "median_reach_time_s": None},
    ])
    assert list(ranked(points, "time")["order"]) == [2, 1, 4, 0, 3]
    assert list(ranked(points, "accuracy")["order"]) == [4, 0, 2, 1, 3]
