"""The questions particular studies ask, on synthetic cells (nothing trains): "is a sparse network
better than a small dense one?" (series on active parameters, narrowed dense networks a series of
their own, the comparison at matched counts), the BPTT modes' accuracy, time and peak memory in
one place, and the grid-edge flag on each optimizer's own learning-rate range when the grid is
built from [[include]] rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pandas as pd

from bench.studies.figures import CELL_COLUMNS, StudyFrames, choice_column, point_rows, ranked
from bench.studies.findings import findings
from bench.studies.findings_questions import (linked_arm_sentences, narrowed_dense_sentences, per_size_sentences,
                                              per_value_sentences)
from bench.studies.report_sections import points_table, sparsity_parts
from bench.studies.study import load_study, value_label
from tests.helpers import STUDY_BASE, per_optimizer_lr_study

def synthetic(name: str, top: str = "") -> str:
    """The head of a synthetic study on base.toml: five seeds, a 1,000-image validation split, and
    `top`'s top-level keys (rank, link)."""
    return f'''
name = "{name}"
suite = "base.toml"
seeds = [0, 1, 2, 3, 4]
{top}
[set]
"dataset.validation_size" = 1000
'''


SPREAD = [-0.004, 0.002, 0.0, 0.004, -0.002]  # about 0.3 points from seed to seed

SPARSE = synthetic("syn-sparse") + """"recipe.epochs" = 8
[axes]
"model.args.hidden" = [[16], [4], [1]]
"recipe.sparsity" = [
  { method = "none" },
  { method = "magnitude", target = 0.25, prune_epochs = [4] },
  { method = "magnitude", target = 0.05, prune_epochs = [4] },
  { method = "l1", l1 = 3e-4, target = 0.25, prune_epochs = [4] },
  { method = "l1", l1 = 1e-3, threshold = 1e-3, prune_epochs = [8] },
]
[[exclude]]
"model.args.hidden" = [[4], [1]]
[[include]]
"model.args.hidden" = [[4], [1]]
"recipe.sparsity" = { method = "none" }
"""

# 784-h-10 MLPs: 795 h + 10 parameters
DENSE_PARAMS = {"[16]": 12730, "[4]": 3190, "[1]": 805}


def _study(tmp_path: Path, text: str):
    (tmp_path / "base.toml").write_text(STUDY_BASE)
    path = tmp_path / "study.toml"
    path.write_text(text)
    return load_study(str(path))


def _frames(study, figures: Callable[[Any], dict[str, Any]]) -> StudyFrames:
    """Frames from synthetic cells: figures(point) gives its mean accuracy (spread by SPREAD over the
    seeds; validation equal to test) and optionally active parameters, parameters, time to target
    and per-seed training peak memory."""
    rows, runs = [], {}
    for point in study.points:
        f = figures(point)
        for i, seed in enumerate(study.seeds):
            key, value = f"{point.identity}-s{seed}", f["accuracy"] + SPREAD[i % 5]
            time = f["time"][i] if isinstance(f.get("time"), list) else f.get("time", 10.0)
            memory = f["memory"][i] if "memory" in f else None
            rows.append({"key": key, "point": point.identity, "seed": seed, "state": "done", "status": "complete",
                         "hardware": "CPU", "concurrency": 2, "accuracy": value, "validation_accuracy": value,
                         "reached_target": time is not None, "time_to_target_s": time, "timed_s": 12.0,
                         "first_reached_s": time, "steps": 10, "params": f.get("params", 1000), "train_peak_memory_mb": memory})
            run = {"status": "complete", "accuracy": value, "time_to_target_s": time, "timed_s": 12.0}
            if "active" in f:
                run["sparsity"] = {"active_params": f["active"], "active_fraction": f["active"] / f["params"]}
            runs[key] = run
    cells = pd.DataFrame(rows, columns=CELL_COLUMNS)
    on = choice_column(study)
    return StudyFrames(points=ranked(point_rows(study, cells, runs), study.rank, on), cells=cells,
                       curves=pd.DataFrame(), chosen_on=on)


def _sparse_figures(point) -> dict[str, Any]:
    """Full width 85%; narrowed to [4] 80%, to [1] 60%. Magnitude 25% beats the [4] net by 4 points
    at about its count; magnitude 5% ties the [1] net; L1 then pruning trails magnitude; the
    threshold series' count (6,000) is too far from any narrowed net's to be compared."""
    hidden = value_label(point.axes["model.args.hidden"])
    spec = point.suite.recipe["sparsity"]
    if spec["method"] == "none":
        return {"accuracy": {"[16]": 0.85, "[4]": 0.80, "[1]": 0.60}[hidden], "active": DENSE_PARAMS[hidden],
                "params": DENSE_PARAMS[hidden]}
    if spec["threshold"] is not None:
        return {"accuracy": 0.845, "active": 6000, "params": 12730}
    if spec["method"] == "l1":
        return {"accuracy": 0.83, "active": 3250, "params": 12730}
    return {"accuracy": 0.84 if spec["target"] == 0.25 else 0.601, "active": 3200 if spec["target"] == 0.25 else 900,
            "params": 12730}


def test_sparse_series_have_short_names_and_the_narrowed_dense_nets_their_own(tmp_path):
    study = _study(tmp_path, SPARSE)
    data = _frames(study, _sparse_figures)
    series = data.points.groupby("sparsity_series")["point"].count().to_dict()
    assert series == {"dense": 1, "dense, narrowed": 2, "magnitude": 2, "l1 then prune": 1, "l1, threshold": 1}


def test_the_front_is_drawn_on_active_parameters_with_the_narrowed_nets_at_their_counts(tmp_path, monkeypatch):
    study = _study(tmp_path, SPARSE)
    drawn = {}
    monkeypatch.setattr("bench.studies.plots.pareto_png",
                        lambda series, colours, baseline, target: drawn.update(series=series, baseline=baseline)
                        or b"png")
    headline, table, plot = sparsity_parts(study, _frames(study, _sparse_figures))
    narrowed = sorted(p.active_params for p in drawn["series"]["dense, narrowed"])
    assert narrowed == [805, 3190]  # their own parameter counts, not 100% of something
    assert sorted(p.active_params for p in drawn["series"]["magnitude"]) == [900, 3200]
    assert "dense" not in drawn["series"] and drawn["baseline"][0] == 0.85  # the full width: the baseline
    assert "narrowed to the sparse ones' counts dashed, at their own parameter counts" in plot.caption
    assert table.columns[:4] == ["series", "pruned to", "active params", "active fraction"]
    rows = {(row[0], row[2]) for row in table.rows}
    assert ("dense, narrowed", "805") in rows and ("dense, narrowed", "3,190") in rows
    # the fewest active parameters reaching the target (0.9) per series: none here, at 85% at most
    assert "none reaches it" in headline.text and "12,730 parameters" in headline.text


def test_sparse_against_narrowed_dense_at_matched_counts(tmp_path):
    study = _study(tmp_path, SPARSE)
    lines = narrowed_dense_sentences(study, _frames(study, _sparse_figures))
    summary, wide, narrow = lines
    assert summary == ("Is a sparse network better than a small dense one? At 2 matched active-parameter counts "
                       "(within a factor 1.7), the best sparse network is better at 1, tied within noise at 1 and "
                       "worse at 0.")
    assert wide.startswith("At about 3,190 active parameters: the best sparse network there, magnitude to 25.0% "
                           "active (3,200 active; chosen on validation), against the dense network narrowed to "
                           "model.args.hidden = [4]: mean validation top-1 84.00% against 80.00%; the lower lies "
                           "below the higher one's 95% CI (")
    assert wide.endswith("the sparse network is better. On test (reported, not compared): 84.00% against 80.00%.")
    assert narrow.startswith("At about 805 active parameters: the best sparse network there, magnitude to 5.0% ")
    assert "tied within noise." in narrow
    assert all(line.compares == {"validation"} for line in lines)
    assert summary in findings(study, _frames(study, _sparse_figures))  # the report's Findings carry it


def test_a_narrowed_net_with_no_sparse_point_near_its_count_is_not_compared(tmp_path):
    study = _study(tmp_path, SPARSE)

    def far(point):
        figures = _sparse_figures(point)
        return {**figures, "active": 9000} if point.suite.recipe["sparsity"]["method"] != "none" else figures
    lines = narrowed_dense_sentences(study, _frames(study, far))
    assert lines == ["No narrowed dense network has a sparse point within a factor 1.7 of its active parameters: "
                     "the data cannot compare them."]


BPTT = synthetic("syn-bptt") + """"recipe.bptt.length" = 4
"recipe.bptt.step" = 2
[axes]
"recipe.bptt.mode" = ["full", "truncated"]
"recipe.lr" = [0.001, 0.002]
"""


def _bptt_figures(point) -> dict[str, Any]:
    """full: best at lr 0.002, 40 MB a run; truncated: best at 0.001, never reaching the target, 10 MB."""
    mode, lr = point.axes["recipe.bptt.mode"], point.axes["recipe.lr"]
    if mode == "full":
        return {"accuracy": 0.88 if lr == 0.002 else 0.86, "time": 30.0, "memory": [40.0, 42.0, 41.0, 39.0, 50.0]}
    return {"accuracy": 0.84 if lr == 0.001 else 0.82, "time": None, "memory": [10.0] * 5}


def test_the_points_table_shows_the_median_training_peak_memory(tmp_path):
    study = _study(tmp_path, BPTT)
    table = points_table(study, _frames(study, _bptt_figures))
    assert table.columns[-1] == "train peak memory" and "Train peak memory: the training's peak" in table.note
    memory = {(row[0], row[1]): row[-1] for row in table.rows}
    assert memory[("full", "0.002")] == "41.0 MB" and memory[("truncated", "0.001")] == "10.0 MB"
    without = points_table(study, _frames(study, lambda p: {"accuracy": 0.8}))
    assert "train peak memory" not in without.columns


def test_one_finding_per_mode_with_accuracy_time_and_memory(tmp_path):
    study = _study(tmp_path, BPTT)
    full, truncated = per_value_sentences(study, _frames(study, _bptt_figures), times_compare=True)
    assert full.startswith("recipe.bptt.mode = full, at its best point (recipe.lr = 0.002; chosen on validation): "
                           "mean test top-1 88.00% (95% CI ")
    # budget mode (the base suite's): the first crossing of the target, and the budget named its timed region
    assert full.endswith("; median first crossing of the target 30.0 s; median timed region (the whole budget) "
                         "12.0 s; training peak memory 41.0 MB (median over the seeds).")
    assert truncated.startswith("recipe.bptt.mode = truncated, at its best point (recipe.lr = 0.001; ")
    assert "not every seed crossed the target at an evaluation; median timed region" in truncated
    apart = per_value_sentences(study, _frames(study, _bptt_figures), times_compare=False)
    assert "(times do not compare across these cells: see the time finding)" in apart[0]
    assert not per_value_sentences(_study(tmp_path, SPARSE), _frames(_study(tmp_path, SPARSE), _sparse_figures),
                                   True)  # only the axes whose values are the question


INCLUDED = per_optimizer_lr_study("syn-ranges", "base.toml", [0, 1, 2], 1000, [0.1, 0.03, 0.01],
                                  [0.003, 0.001, 0.0003])


def test_the_grid_edge_is_each_optimizers_own_range_in_an_include_built_grid(tmp_path):
    study = _study(tmp_path, INCLUDED)

    def accuracy(best: dict[str, float]):
        return lambda p: {"accuracy": 0.9 if p.axes["recipe.lr"] == best[p.axes["recipe.optimizer"]] else 0.8}
    # sgd's 0.01 and adam's 0.003 are interior to the union (0.0003 to 0.1), but the edges of their own ranges
    edged = findings(study, _frames(study, accuracy({"sgd": 0.01, "adam": 0.003})))
    assert ("sgd's best recipe.lr, 0.01, is the smallest value tried (0.01 to 0.1): the optimum may lie beyond the "
            "grid; widen it.") in edged
    assert ("adam's best recipe.lr, 0.003, is the largest value tried (0.0003 to 0.003): the optimum may lie beyond "
            "the grid; widen it.") in edged
    # the middle of each own range is not flagged, though 0.03 and 0.001 are nowhere near the union's edges either
    interior = findings(study, _frames(study, accuracy({"sgd": 0.03, "adam": 0.001})))
    assert "No best recipe.lr lies at an edge of its grid." in interior


def test_the_committed_optimizer_study_flags_edges_on_each_optimizers_own_range():
    study = load_study("fmnist-optimizers")
    best = {"sgd": 0.003, "adam": 0.001, "adadelta": 3.0}  # sgd's and adadelta's at an end of their own ranges
    lines = findings(study, _frames(study, lambda p: {
        "accuracy": 0.9 if p.axes["recipe.lr"] == best[p.axes["recipe.optimizer"]] else 0.85}))
    assert "Best recipe.lr per recipe.optimizer (chosen on validation): sgd: 0.003; adam: 0.001; adadelta: 3." in lines
    flags = [line for line in lines if line.endswith("widen it.")]
    assert flags == [
        "sgd's best recipe.lr, 0.003, is the smallest value tried (0.003 to 0.1): the optimum may lie beyond the "
        "grid; widen it.",
        "adadelta's best recipe.lr, 3, is the largest value tried (0.03 to 3): the optimum may lie beyond the "
        "grid; widen it."]


SIZES = synthetic("syn-sizes") + """[axes]
"model.args.hidden" = [[4], [16]]
"dataset.train_size" = [4000, 1000]
"recipe.lr" = [0.1, 0.01]
"""


def _size_figures(point) -> dict[str, Any]:
    """The wide net 3 points ahead on 4,000 images, 0.1 ahead (noise) on 1,000; lr 0.01 best everywhere."""
    wide = value_label(point.axes["model.args.hidden"]) == "[16]"
    large = point.axes["dataset.train_size"] == 4000
    accuracy = (0.85 if large else 0.80) + (0.03 if wide and large else 0.001 if wide else 0.0)
    return {"accuracy": accuracy - (0.02 if point.axes["recipe.lr"] == 0.1 else 0.0)}


def test_the_network_sizes_are_compared_at_each_training_set_size(tmp_path):
    study = _study(tmp_path, SIZES)
    summary, large, small = per_size_sentences(study, _frames(study, _size_figures))
    assert summary == "Data size x network size: over 2 training-set sizes, [16] better at 1, tied within noise at 1."
    assert large.startswith("At dataset.train_size = 4,000: model.args.hidden = [16] against [4] (chosen on "
                            "validation): mean validation top-1 88.00% against 85.00%; [4] lies below [16]'s 95% CI")
    assert large.endswith("[16] is better; on test (reported, not compared) test 88.00% against test 85.00%.")
    assert small.startswith("At dataset.train_size = 1,000:") and "tied within noise" in small
    assert not per_size_sentences(_study(tmp_path, BPTT), _frames(_study(tmp_path, BPTT), lambda p: {"accuracy": 0.8}))


SCALING = synthetic("syn-scaling", 'rank = "time"\nlink = [["recipe.batch_size", "recipe.lr"]]') + """mode = "reach"
[axes]
"recipe.batch_size" = [32, 64, 128]
"recipe.lr" = [0.025, 0.05, 0.1]
[[include]]
"recipe.batch_size" = [32, 64, 128]
"recipe.lr" = 0.05
"""


def _scaling_figures(point) -> dict[str, Any]:
    """At batch 32 the scaled rate (0.025) reaches the target in 20 s, the fixed 0.05 in 30 s; at 128
    the scaled 0.1 and the fixed 0.05 both take about 8 s; batch 64 is one point (0.05 on both arms)."""
    batch, lr = point.axes["recipe.batch_size"], point.axes["recipe.lr"]
    times = {(32, 0.025): 20.0, (32, 0.05): 30.0, (64, 0.05): 12.0, (128, 0.1): 8.0, (128, 0.05): 8.0}[(batch, lr)]
    return {"accuracy": 0.9, "time": [times + d for d in (-0.5, 0.3, 0.0, 0.4, -0.2)]}


def test_the_linked_rule_is_compared_with_the_fixed_value_by_time_at_each_batch_size(tmp_path):
    study = _study(tmp_path, SCALING)
    assert study.links == [["recipe.batch_size", "recipe.lr"]]
    summary, at_32, at_128, per_arm = linked_arm_sentences(study, _frames(study, _scaling_figures))
    assert summary == ("The linked values (recipe.batch_size with recipe.lr) against the other values at the same "
                       "recipe.batch_size, by time to target: faster at 1, tied within noise at 1, slower at 0.")
    assert at_32.startswith("At recipe.batch_size = 32: the linked recipe.lr = 0.025, 20.0 s mean (5 of 5 seeds "
                            "reached it, median 10 steps), against recipe.lr = 0.05, 30.0 s mean")
    assert at_32.endswith("the slower mean lies above the faster one's 95% CI (19.5–20.5 s): the linked value is "
                          "faster.")
    assert at_128.startswith("At recipe.batch_size = 128:") and at_128.endswith("tied within noise.")
    # batch 64's one point sits on both arms
    assert per_arm == ("Median time to target per arm: the link: 32: 20.0 s, 64: 12.0 s, 128: 8.00 s; "
                       "recipe.lr = 0.05: 32: 30.0 s, 64: 12.0 s, 128: 8.00 s.")
    # no edge flag for a linked rate: the rule sets it, nothing tunes it
    assert not any("edge" in line or "widen" in line for line in findings(study, _frames(study, _scaling_figures)))
    assert not linked_arm_sentences(_study(tmp_path, SIZES), _frames(_study(tmp_path, SIZES), _size_figures))


def test_the_batch_figure_draws_the_linked_rule_and_the_fixed_rate_as_arms(tmp_path):
    from bench.studies.plots import batch_arms

    study = _study(tmp_path, SCALING)
    data = _frames(study, _scaling_figures)
    arms = batch_arms(study, data.points[data.points["all_reached"]])
    assert {name: [(p.batch, p.time_s) for p in arm] for name, arm in arms.items()} == {
        "linked: lr with the batch": [(32.0, 20.0), (64.0, 12.0), (128.0, 8.0)],
        "lr=0.05": [(32.0, 30.0), (64.0, 12.0), (128.0, 8.0)]}  # batch 64's point is on both arms
    assert batch_arms(_study(tmp_path, SIZES), data.points) == {}
