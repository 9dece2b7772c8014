"""Charts for the study report, as PNG bytes (matplotlib's Agg canvas, no pyplot, as plots.py).

The report module chooses what to draw (which points, which seeds); these functions only
draw: a `Line` is a labelled curve already averaged over seeds, with its spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from bench.reports.plots import PALETTE, _png, _short


@dataclass
class Line:
    label: str
    colour: str
    curve: pd.DataFrame   # epoch, time_s, mean, std (accuracy as a fraction; std NaN with one seed)
    seeds: int


def value_colours(labels: list[str], numeric: bool) -> dict[str, str]:
    """Ordered values (numbers) along a sequential map, so neighbours look alike; others apart."""
    if numeric and len(labels) > 1:
        cmap = colormaps["viridis"]
        return {label: _hex(cmap(0.9 * i / (len(labels) - 1))) for i, label in enumerate(labels)}
    return {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}


def _hex(rgba: tuple[float, ...]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgba[:3])


def _draw(axes, lines: list[Line], x: str, target: float | None) -> None:
    for line in lines:
        curve = line.curve.sort_values(x)
        mean = 100 * curve["mean"].to_numpy(dtype=float)
        xs = curve[x].to_numpy(dtype=float)
        axes.plot(xs, mean, marker="o", markersize=3, linewidth=1.4, color=line.colour,
                  label=_short(f"{line.label} ({line.seeds} seed{'s' if line.seeds != 1 else ''})", 44))
        std = 100 * curve["std"].to_numpy(dtype=float)
        if np.isfinite(std).any():
            axes.fill_between(xs, mean - np.nan_to_num(std), mean + np.nan_to_num(std), color=line.colour,
                              alpha=0.18, linewidth=0)
    if target is not None:
        axes.axhline(100 * target, color="#333", linestyle="--", linewidth=0.8)
    axes.set_xlabel("epoch" if x == "epoch" else "seconds in the timed region (mean over seeds)")
    axes.set_ylabel("validation top-1 (%)")
    axes.grid(True, alpha=0.3)


def axis_curves_png(axis: str, at_best: list[Line], at_best_note: str, best_each: list[Line] | None,
                    target: float | None) -> bytes:
    """Validation accuracy against epochs and against seconds, one line per value of `axis`:
    the top row with the other axes at their best values, the bottom row (when the study has
    other axes) each value's own best point. Lines are means over seeds, bands ±1 std."""
    rows = 2 if best_each is not None else 1
    figure = Figure(figsize=(12, 4.3 * rows))
    panels = np.atleast_2d(figure.subplots(rows, 2))
    sets = [(at_best, f"{axis}: {at_best_note}")]
    if best_each is not None:
        sets.append((best_each, f"{axis}: each value's best point"))
    for (lines, title), row in zip(sets, panels):
        for panel, x in zip(row, ("epoch", "time_s")):
            _draw(panel, lines, x, target)
            panel.set_title(_short(title, 70), fontsize=9)
        row[0].legend(fontsize=7, loc="lower right")
    return _png(figure)


@dataclass
class SizePoint:
    size: float
    test_mean: float
    test_std: float
    train_mean: float | None
    train_std: float | None


def train_size_png(groups: dict[str, list[SizePoint]], colours: dict[str, str], note: str) -> bytes:
    """Final accuracy against training-set size (log axis): test solid, train dashed, per group."""
    figure = Figure(figsize=(8, 4.8))
    axes = figure.add_subplot()
    for label, points in groups.items():
        points = sorted(points, key=lambda p: p.size)
        sizes = [p.size for p in points]
        colour = colours.get(label, "#444")
        axes.errorbar(sizes, [100 * p.test_mean for p in points],
                      yerr=[100 * np.nan_to_num(p.test_std) for p in points], color=colour, marker="o", markersize=4,
                      capsize=3, linewidth=1.4, label=_short(f"{label} test", 40))
        train = [(p.size, p.train_mean, p.train_std) for p in points if p.train_mean is not None]
        if train:
            axes.errorbar([t[0] for t in train], [100 * t[1] for t in train],
                          yerr=[100 * np.nan_to_num(t[2] if t[2] is not None else np.nan) for t in train],
                          color=colour, marker="s", markersize=3, capsize=3, linewidth=1, linestyle="--",
                          label=_short(f"{label} train", 40))
    axes.set_xscale("log")
    axes.set_xlabel("training-set size (images)")
    axes.set_ylabel("final top-1 (%)")
    axes.set_title(_short(f"Final accuracy against training-set size: {note}", 90), fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    return _png(figure)


@dataclass
class BatchPoint:
    batch: float
    time_s: float | None
    steps: float | None
    label: str           # the rest of the point: which lr/schedule made it the fastest
    reached: bool


def batch_size_png(best: list[BatchPoint], every: list[BatchPoint], target: float | None) -> bytes:
    """Median time and steps to target against batch size (log 2): the fastest point of each
    batch size joined, every point that reached the target as a faint dot."""
    figure = Figure(figsize=(12, 4.4))
    panels = figure.subplots(1, 2)
    for panel, field, label in ((panels[0], "time_s", "median time to target (s)"),
                                (panels[1], "steps", "median steps to target")):
        dots = [p for p in every if getattr(p, field) is not None]
        panel.scatter([p.batch for p in dots], [getattr(p, field) for p in dots], color="#999", s=12, alpha=0.6,
                      label="every point that reached the target")
        joined = sorted((p for p in best if getattr(p, field) is not None), key=lambda p: p.batch)
        panel.plot([p.batch for p in joined], [getattr(p, field) for p in joined], color=PALETTE[0], marker="o",
                   linewidth=1.6, label="fastest point of each batch size")
        for p in joined:
            panel.annotate(_short(p.label, 28), (p.batch, getattr(p, field)), fontsize=6, xytext=(4, 4),
                           textcoords="offset points")
        panel.set_xscale("log", base=2)
        panel.set_xlabel("batch size")
        panel.set_ylabel(label)
        panel.grid(True, which="both", alpha=0.3)
    panels[0].legend(fontsize=7)
    title = "Time and steps to target against batch size"
    figure.suptitle(title + ("" if target is None else f" (target {100 * target:.1f}%)"), fontsize=10)
    return _png(figure)


@dataclass
class FrontPoint:
    active_fraction: float
    accuracy: float
    ci_low: float | None
    ci_high: float | None
    on_front: bool


def pareto_png(series: dict[str, list[FrontPoint]], colours: dict[str, str],
               baseline: tuple[float, float | None, float | None] | None, target: float | None) -> bytes:
    """Mean accuracy (with its 95% CI) against the active fraction on a log axis, one line per
    method in order of sparsity; the dense baseline as a line with its CI band; the target dashed;
    points on the Pareto front ringed."""
    figure = Figure(figsize=(8.5, 5))
    axes = figure.add_subplot()
    for label, points in series.items():
        points = sorted(points, key=lambda p: p.active_fraction)
        xs = [p.active_fraction for p in points]
        ys = [100 * p.accuracy for p in points]
        low = [100 * (p.accuracy - p.ci_low) if p.ci_low is not None else 0.0 for p in points]
        high = [100 * (p.ci_high - p.accuracy) if p.ci_high is not None else 0.0 for p in points]
        colour = colours.get(label, "#444")
        axes.errorbar(xs, ys, yerr=[low, high], color=colour, marker="o", markersize=4, capsize=3, linewidth=1.4,
                      label=_short(label, 40))
        ringed = [p for p in points if p.on_front]
        axes.scatter([p.active_fraction for p in ringed], [100 * p.accuracy for p in ringed], s=90,
                     facecolors="none", edgecolors="#111", linewidths=1.1, zorder=3)
    if baseline is not None:
        mean, low, high = baseline
        axes.axhline(100 * mean, color="#111", linewidth=1.2, label=f"dense baseline {100 * mean:.2f}%")
        if low is not None and high is not None:
            axes.axhspan(100 * low, 100 * high, color="#111", alpha=0.08, linewidth=0)
    if target is not None:
        axes.axhline(100 * target, color="#b22", linestyle="--", linewidth=0.9, label=f"target {100 * target:.1f}%")
    axes.set_xscale("log")
    axes.set_xlabel("fraction of parameters active (nonzero after training)")
    axes.set_ylabel("final top-1 (%)")
    axes.set_title("Accuracy against sparsity", fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
    return _png(figure)
