"""Choices on validation, reports on test: a study whose points hold out a validation split ranks
them, picks each training-set size's best and reads off the sparsest point on validation accuracy,
and shows test accuracy for what it chose; a study without one says its choices were made on test."""

import json

import pandas as pd

from bench.studies.figures import smallest_reaching, study_frames
from bench.studies.ledger import read_ledger
from bench.studies.report import write_study_report
from bench.studies.findings_questions import sparsity_readoff
from bench.studies.study import load_study

CHOICES = """
name = "syn-choices"
suite = "base.toml"
seeds = [0, 1]
[set]
"dataset.validation_size" = 32
[axes]
"dataset.train_size" = [64, 256]
"recipe.batch_size" = [16, 32]
"""


def table_rows(markdown, title):
    section = markdown.split(f"## {title}")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in row.strip("|").split("|")))) for row in rows[1:]]


def validated_copy(synthetic_study, tmp_path):
    """The synthetic study's result files as cells of a study with a validation split, each run's
    validation accuracy set to 1 - its test accuracy: validation ranks the points in the reverse of
    the test order, so every choice made on the wrong split shows."""
    study_path, folder = synthetic_study
    (study_path.parent / "syn-choices.toml").write_text(CHOICES)
    study = load_study(str(study_path.parent / "syn-choices.toml"))
    runs = tmp_path / "syn-choices" / "runs"
    runs.mkdir(parents=True)
    for path in (folder / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        record["suite"]["resolved"]["dataset"]["validation_size"] = 32
        record["runs"][0]["validation_accuracy"] = 1 - record["runs"][0]["accuracy"]
        (runs / path.name).write_text(json.dumps(record))
    return study, runs


def test_a_study_with_a_split_chooses_on_validation_and_reports_test(synthetic_study, tmp_path):
    study, runs = validated_copy(synthetic_study, tmp_path)
    data = study_frames(study, read_ledger(study, runs))
    test_means = list(data.points["mean_accuracy"])
    assert len(set(test_means)) == 4  # distinct: the two orders cannot coincide by ties
    assert data.on_validation and list(data.points["validation_accuracy"]) == sorted(
        data.points["validation_accuracy"], reverse=True)
    worst_on_test = min(test_means)
    assert data.points.iloc[0]["mean_accuracy"] == worst_on_test  # chosen on validation, not test
    # each training-set size's best point (what the training-set size plot shows) is its best on validation
    for size, group in data.points.groupby("axis:dataset.train_size", sort=False):
        assert group.iloc[0]["mean_accuracy"] == group["mean_accuracy"].min(), size

    write_study_report(study, read_ledger(study, runs), runs.parent)
    markdown = (runs.parent / "REPORT.md").read_text()
    best = data.points.iloc[0]
    line = next(line for line in markdown.splitlines() if line.startswith("**Best value of each axis"))
    assert "the highest mean validation top-1" in line
    assert (f"dataset.train_size = {best['axis:dataset.train_size']} · "
            f"recipe.batch_size = {best['axis:recipe.batch_size']}") in line
    assert f"{100 * worst_on_test:.2f}% test top-1 ({100 * best['validation_accuracy']:.2f}% validation top-1)" in line
    assert "chosen on the validation split (32 training images held out" in markdown
    rows = table_rows(markdown, "Points")
    assert rows[0]["test top-1 ± std"].startswith(f"{100 * worst_on_test:.2f}%")
    assert [float(r["validation top-1 ± std"].split("%")[0]) for r in rows] == sorted(
        (float(r["validation top-1 ± std"].split("%")[0]) for r in rows), reverse=True)
    assert "(chosen on validation)" in markdown and "Choices: chosen on test" not in markdown


def test_a_study_without_a_split_says_chosen_on_test(synthetic_study):
    study_path, folder = synthetic_study
    markdown = (folder / "REPORT.md").read_text()
    assert "Choices: chosen on test. The base suite has no validation split" in markdown
    line = next(line for line in markdown.splitlines() if line.startswith("**Best value of each axis"))
    assert "(chosen on test)" in line and "test top-1" in line
    # no test figure is labelled as a validation one
    assert "validation top-1" not in markdown and "validation accuracy" not in markdown
    study = load_study(str(study_path))
    data = study_frames(study, read_ledger(study, folder / "runs"))
    means = list(data.points.loc[data.points["complete"] > 0, "mean_accuracy"])
    assert means == sorted(means, reverse=True)


def test_the_sparsity_read_off_compares_test_with_a_target_set_on_test():
    # magnitude: on test the 10% point reaches 80%; on validation it does not, the 20% point does. The
    # target is set on test, so the read-off is made on test: a validation mean against it mixes splits
    points = pd.DataFrame([
        {"sparsity_series": "magnitude", "active_fraction": 0.1, "active_params": 10, "mean_accuracy": 0.85,
         "validation_accuracy": 0.75, "complete": 2},
        {"sparsity_series": "magnitude", "active_fraction": 0.2, "active_params": 20, "mean_accuracy": 0.79,
         "validation_accuracy": 0.82, "complete": 2},
        {"sparsity_series": "magnitude", "active_fraction": 0.5, "active_params": 50, "mean_accuracy": 0.9,
         "validation_accuracy": 0.9, "complete": 2},
    ])
    assert smallest_reaching(points, 0.8)["magnitude"]["active_fraction"] == 0.1
    assert smallest_reaching(points, 0.8, "validation_accuracy")["magnitude"]["active_fraction"] == 0.2
    text = sparsity_readoff(points, 0.8)
    assert "magnitude: 10 active parameters (10.00% of its network), 85.00% test top-1 mean over 2 seeds" in text
    assert "read off on test, the target's split" in text and "validation" not in text
    assert text.compares == {"test"}
