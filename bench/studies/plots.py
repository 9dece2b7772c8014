"""The study report's charts: which points and seeds each one shows (the first half), and the
drawing, as PNG bytes on matplotlib's Agg canvas, no pyplot (the second half: a `Line` is a
labelled curve already averaged over seeds, with its spread).

Imported only when a report is drawn: matplotlib costs a noticeable fraction of a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from bench import formatting as fmt
from bench.reports.plots import PALETTE, figure_png, wrapped
from bench.reports.render import Plot
from bench.record.stats import accuracy_ci95
from bench.studies.figures import BATCH_SIZE, MIN_SEEDS_FOR_CI, TRAIN_SIZE, StudyFrames
from bench.studies.study import Study, value_label


# ---------------------------------------------------------------- what each chart shows ----

def mean_curve(curves: pd.DataFrame) -> pd.DataFrame:
    """Per epoch: mean accuracy over seeds with its 95% CI (the tables' interval: Student t, clipped
    to [0, 1]; none below MIN_SEEDS_FOR_CI seeds), mean seconds, mean training loss and mean
    active fraction (NaN where not recorded)."""
    rows = []
    for epoch, group in curves.groupby("epoch"):
        accuracies = [float(a) for a in group["accuracy"].dropna()]
        mean, ci = accuracy_ci95(accuracies)
        ci = ci if len(accuracies) >= MIN_SEEDS_FOR_CI else None
        rows.append({"epoch": epoch, "mean": np.nan if mean is None else mean,
                     "ci_low": ci[0] if ci else np.nan, "ci_high": ci[1] if ci else np.nan,
                     "time_s": group["time_s"].mean(), "loss": group["loss"].mean(),
                     "active_fraction": group["active_fraction"].mean(), "seeds": len(accuracies)})
    return pd.DataFrame(rows, columns=["epoch", "mean", "ci_low", "ci_high", "time_s", "loss", "active_fraction",
                                       "seeds"])


def short_label(value: Any) -> str:
    """A legend's name for an axis value: a sparsity recipe as its method and what it prunes to
    ("magnitude 5%", "l1 3e-04, 5%", "dense"); anything else as the study file spells it."""
    if isinstance(value, dict) and "method" in value:
        if value["method"] == "none":
            return "dense"
        name = value["method"] + (f" {value['l1']:g}," if value["method"] == "l1" and value.get("l1") else "")
        if value.get("target") is not None:
            return f"{name} {100 * value['target']:g}%"
        if value.get("threshold") is not None:
            return f"{name} |w| < {value['threshold']:g}"
        return name.rstrip(",")
    return value_label(value)


def _line_for(point: pd.Series, label: str, colour: str, data: StudyFrames) -> Line | None:
    curves = data.curves[data.curves["point"] == point["point"]]
    if curves.empty:
        return None
    return Line(label, colour, mean_curve(curves), int(curves["seed"].nunique()))


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def axis_plot(study: Study, axis: str, data: StudyFrames, best: pd.Series) -> Plot | None:
    labels = [value_label(v) for v in study.axes[axis]]
    short = {value_label(v): short_label(v) for v in study.axes[axis]}
    colours = value_colours(labels, _numeric(study.axes[axis]))
    others = [a for a in study.axes if a != axis]
    points = data.points[data.points["complete"] > 0]
    at_best, unfinished, outside, drawn = [], [], [], []
    for label in labels:
        planned = data.points[data.points[f"axis:{axis}"] == label]
        for other in others:
            planned = planned[planned[f"axis:{other}"] == best[f"axis:{other}"]]
        mine = planned[planned["complete"] > 0]
        line = _line_for(mine.iloc[0], short[label], colours[label], data) if len(mine) else None
        if line:
            at_best.append(line)
            drawn.append(mine.iloc[0]["point"])
        else:  # excluded from the grid at these values, or not finished yet
            (unfinished if len(planned) else outside).append(short[label])
    if not at_best:
        return None
    fixed = ", ".join(f"{o} = {best[f'axis:{o}']}" for o in others)
    chosen = "chosen on validation" if data.on_validation else "chosen on test"
    note = f"others at the best point ({fixed}; {chosen})" if others else "every value"
    if outside:
        note += f"; no point in the study for {', '.join(outside)} there"
    if unfinished:
        note += f"; {', '.join(unfinished)} not finished there"
    best_each, own = None, []
    if others:
        best_each = []
        for label in labels:
            mine = points[points[f"axis:{axis}"] == label]  # already in rank order
            if len(mine):
                own.append(mine.iloc[0]["point"])
                rest = ", ".join(f"{o}={mine.iloc[0][f'axis:{o}']}" for o in others)
                line = _line_for(mine.iloc[0], f"{short[label]} ({rest})", colours[label], data)
                if line:
                    best_each.append(line)
    # the bottom row only where some value's own best point is not the one the top row draws
    if best_each is not None and own == drawn:
        best_each = None
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", axis)
    traces = "training loss" + (" (ringed at each pruning: the epoch after which the network was pruned; the next "
                                "epoch's loss shows its cost) and active fraction" if _has_active(at_best) else "")
    caption = (f"{axis}: test top-1 against epochs and seconds, and the {traces} per epoch, one line per value "
               f"(mean over seeds; band: the 95% CI of the mean, drawn from {MIN_SEEDS_FOR_CI} seeds on); the "
               f"target dashed; a hollow ring: a point averaging fewer seeds than its line (runs that stopped "
               f"earlier, as the legend counts); {note}"
               + ("; bottom: each value at its own best point" if best_each is not None else ""))
    return Plot(f"curves-{slug}.png", caption, axis_curves_png(axis, at_best, note, best_each, study.base.target))


def train_size_plot(study: Study, data: StudyFrames) -> Plot | None:
    if TRAIN_SIZE not in study.axes:
        return None
    others = [a for a in study.axes if a != TRAIN_SIZE]
    group_axis = next((a for a in others if a.startswith("model.")), None)
    groups_values = [value_label(v) for v in study.axes[group_axis]] if group_axis else ["best point"]
    points = data.points[data.points["complete"] > 0]
    groups: dict[str, list[SizePoint]] = {}
    for group in groups_values:
        mine = points if group_axis is None else points[points[f"axis:{group_axis}"] == group]
        entries = []
        for size in study.axes[TRAIN_SIZE]:
            at = mine[mine[f"axis:{TRAIN_SIZE}"] == value_label(size)]
            if len(at):
                best = at.iloc[0]  # rank order: the best of the other axes for this size (and group)
                entries.append(SizePoint(float(size), best["mean_accuracy"], _opt(best["ci_low"]),
                                         _opt(best["ci_high"]), _opt(best["train_accuracy"])))
        if entries:
            groups[group if group_axis is None else f"{group_axis}={group}"] = entries
    if not groups:
        return None
    free = [a for a in others if a != group_axis]
    note = ("each size at its best " + ", ".join(free) if free else "every point") + \
        (f", per {group_axis}" if group_axis else "") + \
        (f" (chosen on {'validation' if data.on_validation else 'test'})" if free else "")
    colours = value_colours(list(groups), False)
    caption = (f"Final accuracy against training-set size (test solid with the 95% CI of its mean, none below "
               f"{MIN_SEEDS_FOR_CI} seeds; train dashed where measured, its mean): {note}")
    return Plot("train-size.png", caption, train_size_png(groups, colours, note))


def batch_size_plot(study: Study, data: StudyFrames) -> Plot | None:
    if BATCH_SIZE not in study.axes:
        return None
    others = [a for a in study.axes if a != BATCH_SIZE]
    points = data.points[data.points["all_reached"]]
    every, best = [], []
    for _, row in points.iterrows():
        label = ", ".join(f"{o.split('.')[-1]}={row[f'axis:{o}']}" for o in others)
        every.append(BatchPoint(float(row[f"axis:{BATCH_SIZE}"]), _opt(row["median_reach_time_s"]),
                                _opt(row["median_steps"]), label, True))
    for size in study.axes[BATCH_SIZE]:
        mine = [p for p in every if p.batch == float(size) and p.time_s is not None]
        if mine:
            best.append(min(mine, key=lambda p: p.time_s))
    if not every:
        return None
    arms = batch_arms(study, points)
    if arms:
        caption = ("Median time and steps to target against batch size, one line per arm: the linked rule ("
                   + "; ".join(" with ".join(g) for g in study.links if g[0] == BATCH_SIZE)
                   + ") and each value off the link; every point whose runs all reached the target as a dot")
    else:
        caption = ("Median time and steps to target against batch size: the fastest point of each batch size "
                   "(the other axes' values beside it), every point whose runs all reached the target as a dot")
    return Plot("batch-size.png", caption, batch_size_png(best, every, study.base.target, arms))


def batch_arms(study: Study, points: pd.DataFrame) -> dict[str, list[BatchPoint]]:
    """Where the batch size is linked to other axes (the linear scaling rule): the linked points as
    one arm, and each combination of the partners' values met at two or more batch sizes (a fixed
    rate) as another; a point on the link with such values belongs to both."""
    group = next((g for g in study.links if g[0] == BATCH_SIZE), None)
    if group is None:
        return {}
    partners = group[1:]
    linked = {value_label(b): [value_label(study.axes[a][i]) for a in partners]
              for i, b in enumerate(study.axes[BATCH_SIZE])}
    rule = "linked: " + ", ".join(a.split(".")[-1] for a in partners) + " with the batch"
    arms: dict[str, list[BatchPoint]] = {rule: []}
    for _, row in points.iterrows():
        values = [row[f"axis:{a}"] for a in partners]
        point = BatchPoint(float(row[f"axis:{BATCH_SIZE}"]), _opt(row["median_reach_time_s"]),
                           _opt(row["median_steps"]), ", ".join(f"{a.split('.')[-1]}={v}" for a, v in
                                                                 zip(partners, values)), True)
        if values == linked.get(row[f"axis:{BATCH_SIZE}"]):
            arms[rule].append(point)
        arms.setdefault(point.label, []).append(point)
    return {name: sorted(arm, key=lambda p: p.batch) for name, arm in arms.items() if name == rule or len(arm) > 1}


def _opt(value: Any) -> float | None:
    return None if fmt.missing(value) else float(value)


def pareto_plot(series_points: pd.DataFrame, dense: pd.DataFrame, front: set[Any], target: float) -> Plot:
    """The accuracy-sparsity front on active parameters: each series (a sparse method, the narrowed
    dense networks) in order of size, the full-width dense network as the baseline."""
    series = list(dict.fromkeys(series_points["sparsity_series"]))
    colours = value_colours(series, False)
    drawn = {s: [FrontPoint(float(r["active_params"]), float(r["mean_accuracy"]), _opt(r["ci_low"]),
                            _opt(r["ci_high"]), i in front)
                 for i, r in series_points[series_points["sparsity_series"] == s].iterrows()]
             for s in series}
    baseline = None if dense.empty else (float(dense.iloc[0]["mean_accuracy"]), _opt(dense.iloc[0]["ci_low"]),
                                         _opt(dense.iloc[0]["ci_high"]))
    dense_words = ("the full-width dense network as a solid line (its CI shaded)" if baseline is not None
                   else "no full-width dense point in this study, so no baseline line")
    narrowed = any(s.startswith("dense") for s in series)
    caption = ("Accuracy against active parameters (nonzero after training, log scale): mean final test top-1 over "
               f"the seeds with its 95% CI (none below {MIN_SEEDS_FOR_CI} seeds), one series per method"
               + ("; dense networks narrowed to the sparse ones' counts dashed, at their own parameter counts"
                  if narrowed else "")
               + f"; {dense_words}; the target dashed; ringed points are on the Pareto front")
    return Plot("pareto.png", caption, pareto_png(drawn, colours, baseline, target))


# ---------------------------------------------------------------- drawing ----

@dataclass
class Line:
    label: str
    colour: str
    curve: pd.DataFrame   # mean_curve's: epoch, mean, ci_low, ci_high, time_s, loss, active_fraction
    seeds: int


def value_colours(labels: list[str], numeric: bool) -> dict[str, str]:
    """Ordered values (numbers) along a sequential map, so neighbours look alike; others apart,
    never one colour twice in a figure (the palette, then tab20, then an even spread of turbo)."""
    if numeric and len(labels) > 1:
        cmap = colormaps["viridis"]
        return {label: _hex(cmap(0.9 * i / (len(labels) - 1))) for i, label in enumerate(labels)}
    if len(labels) <= len(PALETTE):
        return {label: PALETTE[i] for i, label in enumerate(labels)}
    if len(labels) <= 20:
        return {label: _hex(colormaps["tab20"](i)) for i, label in enumerate(labels)}
    return {label: _hex(colormaps["turbo"](0.05 + 0.9 * i / (len(labels) - 1))) for i, label in enumerate(labels)}


def _has_active(lines: list[Line]) -> bool:
    """Whether any line's networks were pruned (a dense trace is 100% throughout: not worth a panel)."""
    return any((line.curve["active_fraction"].dropna() < 1).any() for line in lines)


def pruned_epochs(curve: pd.DataFrame) -> list[Any]:
    """The epochs after which a network was pruned: where its mean active fraction falls below the
    epoch before's (below 100% at the first epoch). None for a curve without active fractions."""
    ordered = curve.sort_values("epoch")
    previous, out = 1.0, []
    for epoch, active in zip(ordered["epoch"], ordered["active_fraction"]):
        if pd.notna(active):
            if active < previous - 1e-12:
                out.append(epoch)
            previous = active
    return out


def _hex(rgba: tuple[float, ...]) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgba[:3])


def seeds_words(line: Line) -> str:
    """How many seeds the line's points average: "5 seeds", or "5 seeds, 2 at the last points" where
    later points average fewer (reach mode: a run stops at the target, so its curve ends there)."""
    counts = line.curve["seeds"].dropna() if "seeds" in line.curve else pd.Series(dtype=float)
    words = f"{line.seeds} seed{'s' if line.seeds != 1 else ''}"
    fewest = int(counts.min()) if len(counts) else line.seeds
    return words + (f", {fewest} at the last points" if fewest < line.seeds else "")


def _draw(axes, lines: list[Line], x: str, target: float | None) -> None:
    for line in lines:
        curve = line.curve.sort_values(x)
        mean = 100 * curve["mean"].to_numpy(dtype=float)
        xs = curve[x].to_numpy(dtype=float)
        axes.plot(xs, mean, marker="o", markersize=3, linewidth=1.4, color=line.colour,
                  label=wrapped(f"{line.label} ({seeds_words(line)})", 30))
        if "seeds" in curve:  # points averaging fewer seeds than the line's: hollow rings
            fewer = (curve["seeds"] < line.seeds).to_numpy()
            axes.scatter(xs[fewer], mean[fewer], s=30, facecolors="white", edgecolors=line.colour, zorder=3)
        low, high = (100 * curve[c].to_numpy(dtype=float) for c in ("ci_low", "ci_high"))
        if np.isfinite(low).any():  # the 95% CI of the mean, as the tables print it
            axes.fill_between(xs, low, high, color=line.colour, alpha=0.15, linewidth=0)
    if target is not None:
        axes.axhline(100 * target, color="#333", linestyle="--", linewidth=0.8, label=f"target {100 * target:.1f}%")
    axes.set_xlabel("epoch" if x == "epoch" else "seconds in the timed region (mean over seeds)")
    axes.set_ylabel("test top-1 (%)")
    axes.grid(True, alpha=0.3)


def _trace(axes, lines: list[Line], column: str, ylabel: str) -> None:
    """A per-epoch trace (training loss, active fraction): means over the seeds."""
    for line in lines:
        curve = line.curve.sort_values("epoch")
        values = curve[column].to_numpy(dtype=float) * (100 if column == "active_fraction" else 1)
        axes.plot(curve["epoch"].to_numpy(dtype=float), values, marker="o", markersize=3, linewidth=1.2,
                  color=line.colour)
        if column == "loss":  # the loss at each pruning, ringed: its cost shows in the next epoch's loss
            at = pruned_epochs(curve)
            ringed = curve[curve["epoch"].isin(at)]
            axes.scatter(ringed["epoch"].to_numpy(dtype=float), ringed["loss"].to_numpy(dtype=float), s=70,
                         facecolors="none", edgecolors=line.colour, linewidths=1.2, zorder=3)
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    shown = [v for line in lines for v in line.curve[column].dropna()]
    if column == "active_fraction" and shown and min(shown) < 0.1:  # log only where it spans decades
        axes.set_yscale("log")
    axes.grid(True, alpha=0.3)


def axis_curves_png(axis: str, at_best: list[Line], at_best_note: str, best_each: list[Line] | None,
                    target: float | None) -> bytes:
    """Test accuracy against epochs and against seconds, one line per value of `axis`:
    the top row with the other axes at their best values, beside its training loss and (for pruned
    networks) active fraction per epoch; the bottom row (when the study has other axes) each
    value's own best point. Lines are means over seeds, bands the 95% CI of the mean. The legend
    sits outside the axes, right of each row."""
    traces = [("loss", "training loss")] + ([("active_fraction", "active fraction (%)")]
                                            if _has_active(at_best) else [])
    sets = [(at_best, f"{axis}: {at_best_note}")]
    if best_each is not None:
        sets.append((best_each, f"{axis}: each value's best point"))
    rows = len(sets) + 1  # the traces of the top row's lines below the accuracy rows
    most = max(len(lines) for lines, _ in sets)
    columns = 1 if most <= 12 else 2  # a long legend in two columns, the figure widened to hold it
    figure = Figure(figsize=(13.5 + 3.0 * (columns - 1), max(4.0, 0.2 * most / columns + 1.0) * rows))
    for r, (lines, title) in enumerate(sets):
        panels = [figure.add_subplot(rows, 2, 2 * r + c + 1) for c in range(2)]
        for panel, x in zip(panels, ("epoch", "time_s")):
            _draw(panel, lines, x, target)
        panels[0].set_title(wrapped(title, 60), fontsize=9, loc="left")
        panels[1].legend(*panels[0].get_legend_handles_labels(), fontsize=8, loc="upper left", ncol=columns,
                         bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    for c, (column, ylabel) in enumerate(traces):
        panel = figure.add_subplot(rows, 2, 2 * len(sets) + c + 1)
        _trace(panel, at_best, column, ylabel)
        panel.set_title(wrapped(f"{ylabel} per epoch; {at_best_note}", 60), fontsize=9, loc="left")
    return figure_png(figure)


@dataclass
class SizePoint:
    size: float
    test_mean: float
    ci_low: float | None   # the 95% CI of the test mean, as the points table prints it
    ci_high: float | None
    train_mean: float | None


def train_size_png(groups: dict[str, list[SizePoint]], colours: dict[str, str], note: str) -> bytes:
    """Final accuracy against training-set size (log axis): test solid, train dashed, per group."""
    figure = Figure(figsize=(10, 4.8))
    axes = figure.add_subplot()
    for label, points in groups.items():
        points = sorted(points, key=lambda p: p.size)
        sizes = [p.size for p in points]
        colour = colours.get(label, "#444")
        low = [100 * (p.test_mean - p.ci_low) if p.ci_low is not None else 0.0 for p in points]
        high = [100 * (p.ci_high - p.test_mean) if p.ci_high is not None else 0.0 for p in points]
        axes.errorbar(sizes, [100 * p.test_mean for p in points], yerr=[low, high], color=colour, marker="o",
                      markersize=4, capsize=3, linewidth=1.4, label=wrapped(f"{label} test", 30))
        train = [(p.size, p.train_mean) for p in points if p.train_mean is not None]
        if train:
            axes.plot([t[0] for t in train], [100 * t[1] for t in train], color=colour, marker="s", markersize=3,
                      linewidth=1, linestyle="--", label=wrapped(f"{label} train", 30))
    axes.set_xscale("log")
    axes.set_xlabel("training-set size (images)")
    axes.set_ylabel("final top-1 (%)")
    axes.set_title(wrapped(f"Final accuracy against training-set size: {note}", 70), fontsize=9)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return figure_png(figure)


@dataclass
class BatchPoint:
    batch: float
    time_s: float | None
    steps: float | None
    label: str           # the rest of the point: which lr/schedule made it the fastest
    reached: bool


def batch_size_png(best: list[BatchPoint], every: list[BatchPoint], target: float | None,
                   arms: dict[str, list[BatchPoint]] | None = None) -> bytes:
    """Median time and steps to target against batch size (log 2): one line per arm where there
    are arms (bench.studies.plots.batch_arms), else the fastest point of each batch size joined;
    every point that reached the target as a faint dot."""
    figure = Figure(figsize=(12, 4.4))
    panels = figure.subplots(1, 2)
    for panel, field, label in ((panels[0], "time_s", "median time to target (s)"),
                                (panels[1], "steps", "median steps to target")):
        dots = [p for p in every if getattr(p, field) is not None]
        panel.scatter([p.batch for p in dots], [getattr(p, field) for p in dots], color="#999", s=12, alpha=0.6,
                      label="every point that reached the target")
        if arms:
            for colour, (name, arm) in zip(PALETTE, arms.items()):
                shown = [p for p in arm if getattr(p, field) is not None]
                panel.plot([p.batch for p in shown], [getattr(p, field) for p in shown], color=colour, marker="o",
                           linewidth=1.6, label=name)
        else:
            joined = sorted((p for p in best if getattr(p, field) is not None), key=lambda p: p.batch)
            panel.plot([p.batch for p in joined], [getattr(p, field) for p in joined], color=PALETTE[0], marker="o",
                       linewidth=1.6, label="fastest point of each batch size")
            for p in joined:
                panel.annotate(wrapped(p.label, 28), (p.batch, getattr(p, field)), fontsize=6, xytext=(4, 4),
                               textcoords="offset points")
        panel.set_xscale("log", base=2)
        panel.set_xlabel("batch size")
        panel.set_ylabel(label)
        panel.grid(True, which="both", alpha=0.3)
    panels[0].legend(fontsize=7)
    title = "Time and steps to target against batch size"
    figure.suptitle(title + ("" if target is None else f" (target {100 * target:.1f}%)"), fontsize=10)
    return figure_png(figure)


@dataclass
class FrontPoint:
    active_params: float
    accuracy: float
    ci_low: float | None
    ci_high: float | None
    on_front: bool


def pareto_png(series: dict[str, list[FrontPoint]], colours: dict[str, str],
               baseline: tuple[float, float | None, float | None] | None, target: float | None) -> bytes:
    """Mean accuracy (with its 95% CI) against active parameters on a log axis, one line per series
    in order of size (dense ones dashed); the full-width dense baseline as a line with its CI band;
    the target dashed; points on the Pareto front ringed."""
    figure = Figure(figsize=(10.5, 5))
    axes = figure.add_subplot()
    for label, points in series.items():
        points = sorted(points, key=lambda p: p.active_params)
        xs = [p.active_params for p in points]
        ys = [100 * p.accuracy for p in points]
        low = [100 * (p.accuracy - p.ci_low) if p.ci_low is not None else 0.0 for p in points]
        high = [100 * (p.ci_high - p.accuracy) if p.ci_high is not None else 0.0 for p in points]
        colour = colours.get(label, "#444")
        axes.errorbar(xs, ys, yerr=[low, high], color=colour, marker="o", markersize=4, capsize=3, linewidth=1.4,
                      linestyle="--" if label.startswith("dense") else "-", label=wrapped(label, 40))
        ringed = [p for p in points if p.on_front]
        axes.scatter([p.active_params for p in ringed], [100 * p.accuracy for p in ringed], s=90,
                     facecolors="none", edgecolors="#111", linewidths=1.1, zorder=3)
    if baseline is not None:
        mean, low, high = baseline
        axes.axhline(100 * mean, color="#111", linewidth=1.2, label=f"dense, full width {100 * mean:.2f}%")
        if low is not None and high is not None:
            axes.axhspan(100 * low, 100 * high, color="#111", alpha=0.08, linewidth=0)
    if target is not None:
        axes.axhline(100 * target, color="#b22", linestyle="--", linewidth=0.9, label=f"target {100 * target:.1f}%")
    axes.set_xscale("log")
    axes.set_xlabel("active parameters (nonzero after training)")
    axes.set_ylabel("final test top-1 (%)")
    axes.set_title("Accuracy against active parameters", fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return figure_png(figure)
