"""The study report's Findings (bench.studies.findings), on synthetic cell data (nothing trains but
the one end-to-end sweep): a clear winner is "better" with an interval above 0, overlapping values
are tied, an optimum at the grid's edge is flagged and an interior one is not, fewer than 3 seeds
give no interval and say so, cells run at different concurrency make times not comparable; and
the README's studies block is rewritten from the reports and a stale one is caught."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.record.stats import welch_diff_ci95
from bench.studies.figures import CELL_COLUMNS, StudyFrames, choice_column, point_rows, ranked
from bench.studies.findings import concurrency_line, findings, time_sentence, tuned_numeric_axes
from bench.studies.study import load_study, value_label
from tests.helpers import STUDY_BASE
from tests.test_reports_fresh import FIXTURES, reports

OPTIMIZERS = """
name = "syn-findings"
suite = "base.toml"
seeds = {seeds}
[set]
"dataset.validation_size" = 1000
[axes]
"recipe.optimizer" = ["sgd", "adam"]
"recipe.lr" = [0.1, 0.01, 0.001]
"""

SPREAD = [-0.004, 0.002, 0.0, 0.004, -0.002]  # a seed-to-seed spread of about 0.3 points


def _study(tmp_path: Path, seeds: int = 5, text: str = OPTIMIZERS):
    (tmp_path / "base.toml").write_text(STUDY_BASE)
    path = tmp_path / "study.toml"
    path.write_text(text.format(seeds=list(range(seeds))))
    return load_study(str(path))


def _frames(study, accuracy: dict[tuple[str, ...], float | list[float]], concurrency=1,
            hardware="CPU") -> StudyFrames:
    """The study's frames from synthetic cells: each point's seeds at `accuracy[labels]` (a mean,
    spread by SPREAD, or the per-seed values), validation equal to test, every run reaching the
    target in a time that grows with its accuracy. `concurrency`: one value, or one per cell."""
    rows, runs = [], {}
    for point in study.points:
        wanted = accuracy[tuple(value_label(v) for _, v in point.values)]
        values = wanted if isinstance(wanted, list) else [wanted + SPREAD[s % 5] for s in study.seeds]
        for seed, value in zip(study.seeds, values):
            key = f"{point.identity}-s{seed}"
            at_once = concurrency[len(rows)] if isinstance(concurrency, list) else concurrency
            rows.append({"key": key, "point": point.identity, "seed": seed, "state": "done", "status": "complete",
                         "hardware": hardware, "concurrency": at_once, "accuracy": value,
                         "validation_accuracy": value, "reached_target": True, "time_to_target_s": 100 * value,
                         "timed_s": 100 * value, "steps": 10, "params": 1000})
            runs[key] = {"status": "complete", "accuracy": value, "time_to_target_s": 100 * value,
                         "timed_s": 100 * value}
    cells = pd.DataFrame(rows, columns=CELL_COLUMNS)
    on = choice_column(study)
    points = ranked(point_rows(study, cells, runs), study.rank, on)
    return StudyFrames(points=points, cells=cells, curves=pd.DataFrame(), chosen_on=on)


def _grid(sgd: tuple[float, float, float], adam: tuple[float, float, float]) -> dict:
    """Mean accuracies at lr 0.1, 0.01, 0.001 per optimizer."""
    lrs = ("0.1", "0.01", "0.001")
    return {**{("sgd", lr): a for lr, a in zip(lrs, sgd)}, **{("adam", lr): a for lr, a in zip(lrs, adam)}}


def _axis_line(lines: list[str], axis: str) -> str:
    return next(line for line in lines if line.startswith(f"{axis}: "))


def _best_interval(line: str) -> tuple[float, float]:
    """The best value's 95% CI (in percent) an axis Finding judges the runner-up by."""
    found = re.search(r"95% CI \(([0-9.]+)%–([0-9.]+)%\)", line)
    assert found, line
    return float(found[1]), float(found[2])


def test_a_clear_winner_is_better_with_an_interval_above_zero(tmp_path):
    study = _study(tmp_path)
    lines = findings(study, _frames(study, _grid(sgd=(0.80, 0.82, 0.81), adam=(0.84, 0.90, 0.86))))
    assert lines[0].startswith("Best point (highest mean validation top-1, chosen on validation): "
                               "recipe.optimizer = adam, recipe.lr = 0.01, with a mean test top-1 of 90.00% (95% CI ")
    line = _axis_line(lines, "recipe.optimizer")
    assert ("adam against the runner-up sgd, with recipe.lr = 0.01 held at the best point's values (chosen on "
            "validation): mean validation top-1 90.00% against 82.00%; sgd lies below adam's 95% CI") in line
    low, high = _best_interval(line)
    assert low < 90 < high and ": adam is better." in line and "No value ties with adam." in line
    assert line.compares == {"validation"}
    assert not any("cannot tell the values" in text for text in lines)


def test_overlapping_values_are_tied_within_noise(tmp_path):
    study = _study(tmp_path)
    noisy = {key: 0.5 for key in _grid((0, 0, 0), (0, 0, 0))}
    noisy[("adam", "0.01")] = [0.90, 0.86, 0.88, 0.92, 0.845]
    noisy[("sgd", "0.01")] = [0.89, 0.87, 0.91, 0.85, 0.88]
    lines = findings(study, _frames(study, noisy))
    line = _axis_line(lines, "recipe.optimizer")
    low, high = _best_interval(line)
    assert low < 88.0 < high and "sgd lies within adam's 95% CI" in line and "tied within noise" in line
    assert "Tied with adam: sgd." in line
    # the learning rate's values are far apart: 0.01 is better than the others, so not every axis is tied
    assert ": 0.01 is better." in _axis_line(lines, "recipe.lr")


def test_the_welch_interval_of_a_difference():
    difference, (low, high) = welch_diff_ci95([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])
    # equal variances 1e-4, n = 3 each: se = sqrt(2e-4 / 3), Welch dof = 4, t = 2.776
    assert difference == pytest.approx(0.10) and high - difference == pytest.approx(2.776 * (2e-4 / 3) ** 0.5)
    assert welch_diff_ci95([0.9], [0.8, 0.7]) == (pytest.approx(0.15), None)


def test_a_best_at_the_grid_edge_is_flagged_and_an_interior_one_is_not(tmp_path):
    study = _study(tmp_path)
    lines = findings(study, _frames(study, _grid(sgd=(0.80, 0.85, 0.81), adam=(0.70, 0.80, 0.88))))
    assert "Best recipe.lr per recipe.optimizer (chosen on validation): sgd: 0.01; adam: 0.001." in lines
    assert ("adam's best recipe.lr, 0.001, is the smallest value tried (0.001 to 0.1): the optimum may lie beyond "
            "the grid; widen it.") in lines
    assert not any(line.startswith("sgd's best") for line in lines)
    interior = findings(study, _frames(study, _grid(sgd=(0.80, 0.85, 0.81), adam=(0.70, 0.88, 0.80))))
    assert "No best recipe.lr lies at an edge of its grid." in interior
    assert not any("widen it" in line for line in interior)


def test_a_single_numeric_axis_best_at_its_edge_is_flagged(tmp_path):
    study = _study(tmp_path, text=OPTIMIZERS.replace('"recipe.optimizer" = ["sgd", "adam"]\n', ""))
    lines = findings(study, _frames(study, {("0.1",): 0.9, ("0.01",): 0.85, ("0.001",): 0.8}))
    assert ("The best recipe.lr, 0.1, is the largest value tried (0.001 to 0.1): the optimum may lie beyond the "
            "grid; widen it.") in lines


def test_conditions_are_not_tuned_axes(tmp_path):
    text = OPTIMIZERS.replace('"recipe.optimizer" = ["sgd", "adam"]', '"dataset.train_size" = [500, 2000]')
    assert tuned_numeric_axes(_study(tmp_path, text=text)) == ["recipe.lr"]


def test_fewer_than_three_seeds_give_no_interval_and_say_so(tmp_path):
    study = _study(tmp_path, seeds=2)
    lines = findings(study, _frames(study, _grid(sgd=(0.80, 0.82, 0.81), adam=(0.84, 0.90, 0.86))))
    assert lines[0].endswith("with a mean test top-1 of 89.90% (no interval: fewer than 3 seeds, 2 here).")  # 90 - 0.4, 90 + 0.2
    line = _axis_line(lines, "recipe.optimizer")
    assert "no interval (fewer than 3 seeds at adam: 2), so the data cannot say whether adam is better." in line
    assert "95% CI" not in line
    assert lines[-1].startswith("The data cannot settle these questions at 6 of 6 points: they have fewer than 3 seeds")


def test_times_compare_only_under_the_same_concurrency(tmp_path):
    study = _study(tmp_path)
    grid = _grid(sgd=(0.80, 0.82, 0.81), adam=(0.84, 0.90, 0.86))
    alike = _frames(study, grid, concurrency=2)
    assert concurrency_line(alike) == "Cells ran 2 at a time (bench sweep's workers on one machine): their times compare."
    assert time_sentence(alike).startswith("Time (every cell ran alike (same machine, same concurrency, no overlap "
                                           "beyond it, no high load, shuffled or not in the grid's order)): of the 6 "
                                           "points whose every seed reached the target, the fastest is "
                                           "recipe.optimizer=sgd, recipe.lr=0.1, 80.0 s")
    mixed = _frames(study, grid, concurrency=[1] * 15 + [2] * 15)
    assert time_sentence(mixed) == ("Times are not comparable: the cells ran at different concurrency (1 at a time: "
                                    "15 cells; 2 at a time: 15 cells).")
    assert concurrency_line(mixed).startswith("Cells ran at different concurrency (1 at a time: 15 cells; 2 at a time")
    unknown = _frames(study, grid, concurrency=None)
    assert concurrency_line(unknown).startswith("Concurrency not recorded: ")
    assert time_sentence(unknown).startswith("Times are not comparable: how many cells ran at once is not recorded "
                                             "for 30 cells")


def test_a_sweep_records_its_concurrency_and_the_report_ends_with_findings(synthetic_study):
    _, folder = synthetic_study
    records = [json.loads(path.read_text()) for path in sorted((folder / "runs").glob("*.json"))]
    assert records and all(record["study"]["concurrency"] == 1 for record in records)  # in this process: 1
    report = (folder / "REPORT.md").read_text()
    # on a busy machine (xdist's other worker, CI's neighbours) the cells' load decides: either they
    # compare, or the line names the load that stops them
    line = next(line for line in report.splitlines() if line.startswith("Cells ran 1 at a time"))
    assert line == "Cells ran 1 at a time (bench sweep's workers on one machine): their times compare." or \
        "high load" in line, line
    findings_part = report.split("\n## Findings\n\n", 1)[1]
    assert findings_part.startswith("- Best point (") and "\n## " not in findings_part  # the last section
    assert '<section id="findings"><h2>Findings</h2><ul><li>Best point (' in (folder / "report.html").read_text()


# ---------------------------------------------------------------- the README's studies block ----

README = """# project

## Studies

text before

<!-- studies:begin -->
- [`gone`](results/studies/gone/REPORT.md): a study since removed
<!-- studies:end -->

text after
"""


def _report(results: Path, name: str, *findings_lines: str) -> None:
    folder = results / "studies" / name
    folder.mkdir(parents=True)
    bullets = "\n".join(f"- {line}" for line in findings_lines)
    (folder / "REPORT.md").write_text(f"# Study {name}\n\n## Points\n\n- not a finding\n\n## Findings\n\n{bullets}\n")


def test_the_readme_block_links_each_report_with_its_first_finding(tmp_path):
    results = tmp_path / "results"
    _report(results, "b-study", "Best point: b.", "Second finding.")
    _report(results, "a-study", "Best point: a.")
    readme = tmp_path / "README.md"
    readme.write_text(README)
    reports.write_readme(results, readme)
    text = readme.read_text()
    block = text[text.index("<!-- studies:begin -->"):text.index("<!-- studies:end -->")]
    assert block.splitlines()[2:] == ["- [`a-study`](results/studies/a-study/REPORT.md): Best point: a.",
                                      "- [`b-study`](results/studies/b-study/REPORT.md): Best point: b."]
    assert text.startswith("# project\n\n## Studies\n\ntext before\n\n") and text.endswith("\n\ntext after\n")
    assert "gone" not in text and "Second finding" not in text


def test_a_stale_readme_block_is_caught_and_make_reports_rewrites_it(tmp_path, capsys):
    results = shutil.copytree(FIXTURES, tmp_path / "results")
    readme = tmp_path / "README.md"
    readme.write_text(README)
    assert reports.main(["--results", str(results), "--check"]) == 1  # the README beside it is found
    assert "stale: README.md: the results table or the studies block differs from its regeneration: line 8: committed " \
           "'- [`gone`](results/studies/gone/REPORT.md): a study since removed'" in capsys.readouterr().out
    assert reports.main(["--results", str(results)]) == 0
    assert "gone" not in readme.read_text()
    assert reports.check(results, readme).stale == []


def test_a_readme_without_the_markers_is_one_line(tmp_path, capsys):
    results = tmp_path / "results"
    results.mkdir()
    readme = tmp_path / "OTHER.md"
    readme.write_text("# no markers\n")
    with pytest.raises(reports.ReportsNotRegenerated, match="has no <!-- studies:begin --> ... <!-- studies:end -->"):
        reports.write_readme(results, readme)
    assert reports.main(["--results", str(results), "--readme", str(tmp_path / "missing.md")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
