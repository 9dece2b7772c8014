"""Final accuracy against learning rate (issue 20): for a study with a recipe.lr axis of at least
3 numbers and one other axis, one line per value of the other axis, each over the learning
rates that value was run at (a grid built from [[include]] rows gives each value its own range).

The figures are the points table's own (bench.studies.figures: the verdict's mean and 95% CI of
the mean over the seeds, none below MIN_SEEDS_FOR_CI), so the chart and the table never disagree.
Imported only when a report is drawn (matplotlib).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench import formatting as fmt
from bench.reports.plots import figure_png, wrapped
from bench.reports.render import Plot
from bench.studies.figures import MIN_SEEDS_FOR_CI, StudyFrames, validation_size
from bench.studies.plots import short_label, value_colours
from bench.studies.study import Study, value_label

LR = "recipe.lr"
MIN_LRS = 3  # fewer learning rates draw no curve worth reading


def lr_axes(study: Study) -> str | None:
    """The other axis when the study is a learning-rate sweep this chart reads: recipe.lr with at
    least MIN_LRS numbers and exactly one other axis; else None (no chart)."""
    values = study.axes.get(LR)
    if values is None or len(study.axes) != 2:
        return None
    numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numeric) < MIN_LRS or len(numeric) != len(values):
        return None
    return next(axis for axis in study.axes if axis != LR)


@dataclass
class LrLine:
    label: str
    colour: str
    points: pd.DataFrame  # lr, mean, ci_low, ci_high, validation (NaN where none), seeds; in lr order
    best_lr: float | None  # the learning rate this line's best point is chosen at (ringed)


def _line(rows: pd.DataFrame, lr_of: dict[str, float], label: str, colour: str, on: str) -> LrLine:
    def number(value) -> float:
        return np.nan if fmt.missing(value) else float(value)
    frame = pd.DataFrame({"lr": [lr_of[v] for v in rows[f"axis:{LR}"]],
                          "mean": [number(v) for v in rows["mean_accuracy"]],
                          "ci_low": [number(v) for v in rows["ci_low"]],
                          "ci_high": [number(v) for v in rows["ci_high"]],
                          "validation": [number(v) for v in rows["validation_accuracy"]],
                          "on": [number(v) for v in rows[on]],
                          "seeds": rows["complete"].astype(int).tolist()}).sort_values("lr")
    chosen = frame.dropna(subset=["on"])
    # the best of the line on the choice split; the first (smaller lr) of equal means, as ranked() keeps order
    best = None if chosen.empty else float(chosen.loc[chosen["on"].idxmax(), "lr"])
    return LrLine(label, colour, frame.reset_index(drop=True), best)


def lr_plot(study: Study, data: StudyFrames) -> Plot | None:
    """The chart where lr_axes finds one, with each line drawn only over its own finished points."""
    other = lr_axes(study)
    if other is None:
        return None
    lr_of = {value_label(v): float(v) for v in study.axes[LR]}
    labels = [value_label(v) for v in study.axes[other]]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in study.axes[other])
    colours = value_colours(labels, numeric)
    finished = data.points[(data.points["complete"] > 0) & data.points["mean_accuracy"].notna()]
    lines = []
    for value, label in zip(study.axes[other], labels):
        rows = finished[finished[f"axis:{other}"] == label]
        if len(rows):
            lines.append(_line(rows, lr_of, f"{other.split('.')[-1]} {short_label(value)}", colours[label],
                               data.chosen_on))
    if not lines:
        return None
    held = validation_size(study)
    split = (f"the validation split ({held} training images held out by dataset.validation_size)"
             if data.on_validation else "the test split (the study holds out no validation split)")
    caption = (f"Final top-1 against learning rate ({LR}, log scale), one line per {other} value, each drawn only "
               f"over the learning rates that value was run at: solid, the mean final top-1 on the test split over "
               f"the seeds, shaded with the 95% CI of that mean (none below {MIN_SEEDS_FOR_CI} seeds)"
               + ("; dashed, the mean final top-1 on the validation split" if data.on_validation else "")
               + f"; ringed, each line's best learning rate, chosen on the mean top-1 of {split}; "
               f"the base suite's target ({fmt.percent(study.base.target)}, a test-split figure) dashed grey")
    return Plot("accuracy-vs-lr.png", caption, lr_png(lines, other, study.base.target, data.on_validation))


def lr_png(lines: list[LrLine], other: str, target: float | None, validation: bool) -> bytes:
    """Test mean with its CI band (and the validation mean dashed) against a log learning-rate axis,
    each line's best point ringed on the test line; legend outside the axes, right."""
    figure = Figure(figsize=(10.5, 5))
    axes = figure.add_subplot()
    for line in lines:
        points = line.points
        xs = points["lr"].to_numpy(dtype=float)
        seeds = f"{points['seeds'].min()}" + ("" if points["seeds"].nunique() == 1 else f"-{points['seeds'].max()}")
        axes.plot(xs, 100 * points["mean"].to_numpy(dtype=float), marker="o", markersize=4, linewidth=1.5,
                  color=line.colour, label=wrapped(f"{line.label} test ({seeds} seeds)", 36))
        low, high = (100 * points[c].to_numpy(dtype=float) for c in ("ci_low", "ci_high"))
        if np.isfinite(low).any():  # the 95% CI of the mean, as the points table prints it
            axes.fill_between(xs, low, high, color=line.colour, alpha=0.15, linewidth=0)
        if validation and points["validation"].notna().any():
            axes.plot(xs, 100 * points["validation"].to_numpy(dtype=float), linestyle="--", marker=".",
                      linewidth=1.0, color=line.colour, alpha=0.8, label=wrapped(f"{line.label} validation", 36))
        if line.best_lr is not None:
            at = points[points["lr"] == line.best_lr]
            axes.scatter(at["lr"].to_numpy(dtype=float), 100 * at["mean"].to_numpy(dtype=float), s=140,
                         facecolors="none", edgecolors=line.colour, linewidths=1.6, zorder=3)
    if target is not None:
        axes.axhline(100 * target, color="#555", linestyle="--", linewidth=0.9, label=f"target {100 * target:.1f}%")
    axes.scatter([], [], s=140, facecolors="none", edgecolors="#333", linewidths=1.6,
                 label="ring: best lr, chosen on " + ("validation" if validation else "test"))
    axes.set_xscale("log")
    axes.set_xlabel(f"learning rate ({LR})")
    axes.set_ylabel("final top-1 (%)")
    axes.set_title(f"Final accuracy against learning rate, per {other}", fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return figure_png(figure)
