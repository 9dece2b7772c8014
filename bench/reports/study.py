"""The study report: REPORT.md and report.html (self-contained) in the study's folder.

Numbers come only from the result files standing for the study's cells (bench.studies.ledger
picks them); the study file says only which cells there are and along which axes they lie.

Rules:
- A *point* (one row) is one combination of axis values; its figures pool its seeds: mean
  final top-1 with the sample std and the 95% CI of the mean (Student t), the fraction of
  runs at or above the target, median time to target (budget mode: the budget's time) and
  median steps to target (runs that reached it), median training images/s, parameters.
- Ranking (the study's `rank`): `accuracy` — highest mean accuracy first; `time` — the
  points whose every finished run reached the target, fastest median time first, then the
  rest by accuracy. The best point is the first; its axis values are the best values.
- Curves: per axis, validation accuracy against epochs and against seconds, one line per
  value, mean over seeds with a ±1 std band; top row with the other axes at the best
  point's values, bottom row each value's own best point.
- `dataset.train_size` axis: final accuracy (test, and train where recipe.train_eval
  measured it) against training-set size, each size at its best point (per model when a
  model.* axis exists). `recipe.batch_size` axis: time and steps to target against batch size.
- Failed cells (with their reason) and cells not run yet are listed, never left out.
"""

from __future__ import annotations

import html
import os
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.measure import mean_ci95
from bench.reports import formatting as fmt
from bench.reports.frame import frames
from bench.reports.render import SORT_SCRIPT, ReportTable, html_page, png_img_html, table_html, table_markdown
from bench.results import staged_file
from bench.studies.ledger import Ledger, record_cell_key
from bench.studies.study import Study, toml_value, value_label

TRAIN_SIZE, BATCH_SIZE = "dataset.train_size", "recipe.batch_size"


@dataclass
class Plot:
    name: str
    caption: str
    png: bytes


@dataclass
class Headline:
    """A paragraph set in bold (the best values)."""

    text: str


@dataclass
class StudyFrames:
    points: pd.DataFrame    # one row per point, in rank order
    cells: pd.DataFrame     # one row per cell with a standing result: point, seed, state, run figures
    curves: pd.DataFrame    # point, seed, epoch, time_s, accuracy


# ---------------------------------------------------------------- figures per point ----

def _cells_frame(ledger: Ledger) -> tuple[pd.DataFrame, pd.DataFrame]:
    found = frames(ledger.results)
    key_of = {r.record["id"]: record_cell_key(r.record) for r in ledger.results}
    point_of = {c.cell.key: c.cell.point.hash for c in ledger.cells.values()}
    inv = found.invocations.set_index("id")
    runs = found.runs.copy()
    runs["key"] = runs["id"].map(key_of)
    cells = []
    for state in ledger.cells.values():
        if state.result is None:
            continue
        rid = state.result.record["id"]
        row = {"key": state.cell.key, "point": state.cell.point.hash, "seed": state.cell.seed, "state": state.state,
               "status": state.result.record["status"], "id": rid, "path": str(state.result.path),
               "params": inv.at[rid, "params"], "hardware": inv.at[rid, "hardware"], "code": inv.at[rid, "code"],
               "started_at": inv.at[rid, "started_at"], "finished_at": inv.at[rid, "finished_at"],
               "error": state.error, "attempts": state.attempts}
        run = runs[runs["id"] == rid]
        for column in ("accuracy", "train_accuracy", "reached_target", "time_to_target_s", "steps", "timed_s",
                       "train_images_per_s", "active_params", "active_fraction"):
            row[column] = run[column].iloc[0] if len(run) else None
        if len(run) and run["status"].iloc[0] != "complete":
            row["accuracy"] = None  # a diverged run has no final accuracy
        cells.append(row)
    cell_frame = pd.DataFrame(cells, columns=["key", "point", "seed", "state", "status", "id", "path", "params",
                                              "hardware", "code", "started_at", "finished_at", "error", "attempts",
                                              "accuracy", "train_accuracy", "reached_target", "time_to_target_s",
                                              "steps", "timed_s", "train_images_per_s", "active_params",
                                              "active_fraction"])
    curves = found.curves.copy()
    curves["point"] = curves["id"].map(lambda i: point_of.get(key_of.get(i)))
    done_ids = {r["id"] for r in cells if r["state"] == "done"}
    curves = curves[curves["id"].isin(done_ids)]
    curves = curves.assign(accuracy=pd.to_numeric(curves["accuracy"], errors="coerce"),
                           time_s=pd.to_numeric(curves["time_s"], errors="coerce")).dropna(subset=["accuracy"])
    return cell_frame, curves[["point", "seed", "epoch", "time_s", "accuracy"]]


def _numbers(series: pd.Series) -> list[float]:
    return [float(v) for v in pd.to_numeric(series, errors="coerce").dropna()]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def point_rows(study: Study, cells: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for order, point in enumerate(study.points):
        mine = cells[cells["point"] == point.hash]
        done = mine[mine["state"] == "done"]
        complete = done[done["status"] == "complete"]
        accuracies = _numbers(complete["accuracy"])
        mean, ci = mean_ci95(accuracies)
        target = point.suite.target
        reached = complete[complete["reached_target"] == True]  # noqa: E712 (a column of booleans and None)
        row = {"point": point.hash, "order": order, "label": point.label, "target": target,
               **{f"axis:{axis}": value_label(value) for axis, value in point.values},
               "planned": len(study.seeds), "done": len(done), "failed": int((mine["state"] == "failed").sum()),
               "diverged": int((done["status"] == "diverged").sum()), "complete": len(complete),
               "mean_accuracy": mean, "accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
               "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
               "pass_fraction": sum(a >= target for a in accuracies) / len(accuracies) if accuracies else None,
               "all_reached": len(complete) > 0 and len(reached) == len(complete),
               "median_time_s": _median(_numbers(complete["time_to_target_s"])),
               "median_steps": _median(_numbers(reached["steps"])),
               "median_reach_time_s": _median(_numbers(reached["time_to_target_s"])),
               "train_accuracy": statistics.fmean(_numbers(complete["train_accuracy"]))
               if _numbers(complete["train_accuracy"]) else None,
               "train_accuracy_std": statistics.stdev(_numbers(complete["train_accuracy"]))
               if len(_numbers(complete["train_accuracy"])) > 1 else None,
               "images_per_s": _median(_numbers(complete["train_images_per_s"])),
               "params": next(iter(_numbers(done["params"])), None),
               # the trained networks' nonzero parameters (bench.sparsity), mean over the seeds
               "active_params": statistics.fmean(_numbers(complete["active_params"]))
               if _numbers(complete["active_params"]) else None,
               "active_fraction": statistics.fmean(_numbers(complete["active_fraction"]))
               if _numbers(complete["active_fraction"]) else None,
               **_sparsity_of(point.suite.recipe["sparsity"])}
        # the study's other axes (weight decay, say) split a method into series of their own
        others = [f"{axis.split('.')[-1]}={value_label(value)}" for axis, value in point.values
                  if not axis.startswith("recipe.sparsity")]
        if others and row["sparsity_method"] != "none":
            row["sparsity_series"] += ", " + ", ".join(others)
        rows.append(row)
    return pd.DataFrame(rows)


def _sparsity_of(spec: dict[str, Any]) -> dict[str, Any]:
    """A point's sparsity recipe, and the series it belongs to on the accuracy-sparsity front: the
    method, and how it prunes where that differs (per layer, gradual)."""
    series = spec["method"]
    if spec["method"] != "none" and spec["prune_epochs"]:
        series += ", per layer" if spec["scope"] == "layer" else ""
        series += ", gradual" if len(spec["prune_epochs"]) > 1 else ""
        series += ", threshold" if spec["threshold"] is not None else ""
    return {"sparsity_method": spec["method"], "sparsity_series": series, "sparsity_target": spec["target"],
            "sparsity_threshold": spec["threshold"], "sparsity_l1": spec["l1"] if spec["method"] == "l1" else None}


def ranked(points: pd.DataFrame, rank: str) -> pd.DataFrame:
    """Rank order (see the module's rules); points without a finished run last, in study order."""
    def key(row: pd.Series) -> tuple:
        has = not fmt.missing(row["mean_accuracy"])
        accuracy = -row["mean_accuracy"] if has else 0.0
        if rank == "time" and row["all_reached"] and not fmt.missing(row["median_reach_time_s"]):
            return (0, row["median_reach_time_s"], accuracy, row["order"])
        return (1 if has else 2, accuracy, 0.0, row["order"])
    if points.empty:
        return points
    order = sorted(points.index, key=lambda i: key(points.loc[i]))
    return points.loc[order].reset_index(drop=True)


def study_frames(study: Study, ledger: Ledger) -> StudyFrames:
    cells, curves = _cells_frame(ledger)
    return StudyFrames(points=ranked(point_rows(study, cells), study.rank), cells=cells, curves=curves)


def best_point(data: StudyFrames) -> pd.Series | None:
    finished = data.points[data.points["complete"] > 0]
    return None if finished.empty else finished.iloc[0]


# ---------------------------------------------------------------- text and tables ----

def _rank_words(study: Study) -> str:
    return ("the highest mean accuracy" if study.rank == "accuracy"
            else "the fastest median time to target among the points whose every run reached it")


def best_line(study: Study, data: StudyFrames) -> str:
    best = best_point(data)
    if best is None:
        return "Best value of each axis: none yet (no cell has finished)."
    values = " · ".join(f"{axis} = {best[f'axis:{axis}']}" for axis in study.axes)
    figure = fmt.percent(best["mean_accuracy"])
    if study.rank == "time" and best["all_reached"] and not fmt.missing(best["median_reach_time_s"]):
        figure = f"{fmt.seconds(best['median_reach_time_s'])} to {fmt.percent(best['target'], 1)}, {figure}"
    return (f"Best value of each axis ({_rank_words(study)}): {values} — {figure} "
            f"(mean over {int(best['complete'])} seed{'s' if best['complete'] != 1 else ''}).")


def _fixed_text(study: Study) -> str:
    return ", ".join(f"{k} = {toml_value(v)}" for k, v in study.fixed.items()) or "none"


def summary_lines(study: Study, ledger: Ledger, data: StudyFrames) -> list[str]:
    points, seeds = len(study.points), len(study.seeds)
    done, failed, pending = (len(ledger.where(s)) for s in ("done", "failed", "pending"))
    axes = "; ".join(f"{axis} ({len(values)}): {', '.join(value_label(v) for v in values)}"
                     for axis, values in study.axes.items())
    lines = [
        f"Base suite: {study.base_ref} ({study.base.mode} mode, target {fmt.percent(study.base.target)}); "
        f"fixed for every cell: {_fixed_text(study)}.",
        f"Axes: {axes}. Seeds: {', '.join(map(str, study.seeds))}. Strategy: {study.strategy}.",
        f"Cells: {points} points × {seeds} seeds = {points * seeds}; {done} done, {failed} failed, {pending} not run "
        f"yet.",
    ]
    cells = data.cells
    if not cells.empty:
        machines = cells.groupby("hardware", dropna=False).size()
        codes = sorted(set(cells["code"].dropna()))
        lines.append("Ran on: " + "; ".join(f"{fmt.text(h)} ({n} cells)" for h, n in machines.items())
                     + f". Code: {', '.join(codes) or fmt.MISSING}.")
        timed = sum(_numbers(cells["timed_s"]))
        starts = pd.to_datetime(cells["started_at"], errors="coerce", utc=True).dropna()
        ends = pd.to_datetime(cells["finished_at"], errors="coerce", utc=True).dropna()
        if len(starts) and len(ends):
            lines.append(f"Time: {fmt.seconds(timed)} in the cells' timed regions; their results span "
                         f"{starts.min():%Y-%m-%d %H:%M}–{ends.max():%H:%M} UTC "
                         f"({fmt.seconds((ends.max() - starts.min()).total_seconds())} from the first start to the "
                         "last finish, across sweeps).")
    return lines


def points_table(study: Study, data: StudyFrames) -> ReportTable:
    measured_train = data.points["train_accuracy"].notna().any() if not data.points.empty else False
    columns = [*study.axes, "rank", "seeds", "mean accuracy ± std", "95% CI", "runs ≥ target",
               "median time to target", "median steps to target", "images/s", "params"]
    if measured_train:
        columns.insert(len(study.axes) + 3, "train accuracy")
    time_words = ("Time to target: the budget's timed region" if study.base.mode == "budget"
                  else "Time to target: until the first evaluation at the target")
    table = ReportTable("Points", columns, anchor="points", sortable=True,
                        note=f"One row per point, seeds pooled; ranked by {_rank_words(study)}. Accuracy: final "
                             f"top-1, mean ± sample std over the seeds, 95% CI of the mean (Student t). {time_words}"
                             "; steps: of the runs that reached the target. Click a column head to sort.")
    for rank, row in data.points.iterrows():
        finished = row["complete"] > 0
        seeds = f"{int(row['complete'])}/{int(row['planned'])}"
        extra = [f"{int(row[k])} {k}" for k in ("diverged", "failed") if row[k]]
        seeds += f" ({', '.join(extra)})" if extra else ""
        accuracy = fmt.MISSING if not finished else fmt.percent(row["mean_accuracy"]) + (
            "" if fmt.missing(row["accuracy_std"]) else f" ± {100 * row['accuracy_std']:.2f}")
        ci = fmt.MISSING if fmt.missing(row["ci_low"]) else \
            f"{fmt.percent(row['ci_low'])}–{fmt.percent(row['ci_high'])}"
        cells = [row[f"axis:{axis}"] for axis in study.axes]
        keys: list[Any] = [_axis_sort_key(study, axis, row[f"axis:{axis}"]) for axis in study.axes]
        cells += [str(rank + 1) if finished else fmt.MISSING, seeds, accuracy, ci,
                  fmt.percent(row["pass_fraction"], 0), fmt.seconds(row["median_time_s"]),
                  fmt.integer(row["median_steps"]), fmt.rate(row["images_per_s"]), fmt.si(row["params"])]
        keys += [rank + 1 if finished else None, row["complete"], row["mean_accuracy"], row["ci_low"],
                 row["pass_fraction"], row["median_time_s"], row["median_steps"], row["images_per_s"], row["params"]]
        if measured_train:
            at = len(study.axes) + 3
            cells.insert(at, fmt.percent(row["train_accuracy"]))
            keys.insert(at, row["train_accuracy"])
        style = "good" if rank == 0 and finished else ("bad" if row["failed"] or row["diverged"] else
                                                       ("muted" if not finished else ""))
        table.add(cells, style=style, keys=keys)
    return table


def _axis_sort_key(study: Study, axis: str, label: str) -> Any:
    """Sort an axis column by the values' order in the study file (numbers by value)."""
    values = study.axes[axis]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return next(v for v in values if value_label(v) == label)
    return next((i for i, v in enumerate(values) if value_label(v) == label), label)


def failed_table(study: Study, ledger: Ledger) -> ReportTable:
    table = ReportTable("Failed cells", [*study.axes, "seed", "attempts", "reason", "result file"], anchor="failed",
                        note="Cells whose every result file is failed or interrupted: the next sweep retries them.")
    for state in ledger.where("failed"):
        values = [value_label(v) for _, v in state.cell.point.values]
        table.add([*values, str(state.cell.seed), str(state.attempts), fmt.text(state.error),
                   os.path.basename(str(state.result.path)) if state.result else fmt.MISSING], style="bad")
    return table


def retried_table(study: Study, ledger: Ledger) -> ReportTable | None:
    """Cells a cluster executor started more than once (a node or worker lost under them)."""
    table = ReportTable("Retried cells", [*study.axes, "seed", "attempts", "lost on", "ran on", "result file"],
                        anchor="retried", note="Cells whose node or worker was lost while they ran: the executor "
                                               "retried them on another node; the result is the last attempt's.")
    for state in ledger.cells.values():
        placement = (state.result.record.get("study") or {}).get("placement") if state.result else None
        if not placement or placement.get("attempts", 1) < 2:
            continue
        values = [value_label(v) for _, v in state.cell.point.values]
        table.add([*values, str(state.cell.seed), str(placement["attempts"]),
                   ", ".join(node[:12] for node in placement.get("lost", [])) or fmt.MISSING,
                   (placement.get("node_id") or placement.get("hostname") or "")[:12] or fmt.MISSING,
                   os.path.basename(str(state.result.path))])
    return table if table.rows else None


def pending_table(study: Study, ledger: Ledger) -> ReportTable:
    table = ReportTable("Cells not run yet", [*study.axes, "seed"], anchor="pending",
                        note="Planned cells with no result file yet: `bench sweep` runs them.")
    for state in ledger.where("pending"):
        table.add([*[value_label(v) for _, v in state.cell.point.values], str(state.cell.seed)], style="muted")
    return table


# ---------------------------------------------------------------- plots ----

def mean_curve(curves: pd.DataFrame) -> pd.DataFrame:
    """Per epoch: mean accuracy over seeds, its sample std (NaN for one seed), mean seconds."""
    grouped = curves.groupby("epoch")
    return pd.DataFrame({"mean": grouped["accuracy"].mean(), "std": grouped["accuracy"].std(),
                         "time_s": grouped["time_s"].mean()}).reset_index()


def _line_for(point: pd.Series, label: str, colour: str, data: StudyFrames):
    from bench.reports.study_plots import Line

    curves = data.curves[data.curves["point"] == point["point"]]
    if curves.empty:
        return None
    return Line(label, colour, mean_curve(curves), int(curves["seed"].nunique()))


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def axis_plot(study: Study, axis: str, data: StudyFrames, best: pd.Series) -> Plot | None:
    from bench.reports.study_plots import axis_curves_png, value_colours

    labels = [value_label(v) for v in study.axes[axis]]
    colours = value_colours(labels, _numeric(study.axes[axis]))
    others = [a for a in study.axes if a != axis]
    points = data.points[data.points["complete"] > 0]
    at_best, unfinished, outside = [], [], []
    for label in labels:
        planned = data.points[data.points[f"axis:{axis}"] == label]
        for other in others:
            planned = planned[planned[f"axis:{other}"] == best[f"axis:{other}"]]
        mine = planned[planned["complete"] > 0]
        line = _line_for(mine.iloc[0], label, colours[label], data) if len(mine) else None
        if line:
            at_best.append(line)
        else:  # excluded from the grid at these values, or not finished yet
            (unfinished if len(planned) else outside).append(label)
    if not at_best:
        return None
    fixed = ", ".join(f"{o} = {best[f'axis:{o}']}" for o in others)
    note = f"others at the best point ({fixed})" if others else "every value"
    if outside:
        note += f"; no point in the study for {', '.join(outside)} there"
    if unfinished:
        note += f"; {', '.join(unfinished)} not finished there"
    best_each = None
    if others:
        best_each = []
        for label in labels:
            mine = points[points[f"axis:{axis}"] == label]  # already in rank order
            if len(mine):
                rest = ", ".join(f"{o}={mine.iloc[0][f'axis:{o}']}" for o in others)
                line = _line_for(mine.iloc[0], f"{label} ({rest})", colours[label], data)
                if line:
                    best_each.append(line)
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", axis)
    caption = (f"{axis}: validation accuracy against epochs and seconds, one line per value (mean over seeds, "
               f"band ±1 std); {note}" + ("; bottom: each value at its own best point" if others else ""))
    return Plot(f"curves-{slug}.png", caption, axis_curves_png(axis, at_best, note, best_each, study.base.target))


def train_size_plot(study: Study, data: StudyFrames) -> Plot | None:
    from bench.reports.study_plots import SizePoint, train_size_png, value_colours

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
                entries.append(SizePoint(float(size), best["mean_accuracy"], _nan(best["accuracy_std"]),
                                         None if fmt.missing(best["train_accuracy"]) else best["train_accuracy"],
                                         None if fmt.missing(best["train_accuracy_std"]) else
                                         best["train_accuracy_std"]))
        if entries:
            groups[group if group_axis is None else f"{group_axis}={group}"] = entries
    if not groups:
        return None
    free = [a for a in others if a != group_axis]
    note = ("each size at its best " + ", ".join(free) if free else "every point") + \
        (f", per {group_axis}" if group_axis else "")
    colours = value_colours(list(groups), False)
    caption = (f"Final accuracy against training-set size (test solid, train dashed where measured; mean ± std "
               f"over seeds): {note}")
    return Plot("train-size.png", caption, train_size_png(groups, colours, note))


def _nan(value: Any) -> float:
    return float("nan") if fmt.missing(value) else float(value)


def batch_size_plot(study: Study, data: StudyFrames) -> Plot | None:
    from bench.reports.study_plots import BatchPoint, batch_size_png

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
    caption = ("Median time and steps to target against batch size: the fastest point of each batch size "
               "(the other axes' values beside it), every point whose runs all reached the target as a dot")
    return Plot("batch-size.png", caption, batch_size_png(best, every, study.base.target))


def _opt(value: Any) -> float | None:
    return None if fmt.missing(value) else float(value)


# ---------------------------------------------------------------- accuracy against sparsity ----

def is_sparsity_study(study: Study) -> bool:
    """A study whose points train sparse networks, or sparse and dense ones (recipe.sparsity)."""
    return any(p.suite.recipe["sparsity"]["method"] != "none" for p in study.points)


def pareto_front(points: pd.DataFrame) -> set[Any]:
    """The points no other point beats: none has at most their active fraction and at least their
    mean accuracy, one of them strictly. Index labels of `points`."""
    rows = [(i, float(r["active_fraction"]), float(r["mean_accuracy"])) for i, r in points.iterrows()]
    return {i for i, x, y in rows
            if not any(x2 <= x and y2 >= y and (x2 < x or y2 > y) for j, x2, y2 in rows if j != i)}


def smallest_reaching(points: pd.DataFrame, target: float) -> dict[str, pd.Series]:
    """Per series: the point with the smallest active fraction whose mean accuracy reaches the
    target (the harness's verdict rule: mean over the seeds at or above it)."""
    out = {}
    for series, group in points.groupby("sparsity_series", sort=False):
        reaching = group[group["mean_accuracy"] >= target]
        if len(reaching):
            out[str(series)] = reaching.sort_values("active_fraction", kind="stable").iloc[0]
    return out


def _measured(data: StudyFrames) -> pd.DataFrame:
    points = data.points[(data.points["complete"] > 0)].copy()
    points = points[points["active_fraction"].notna() & points["mean_accuracy"].notna()]
    return points


def sparsity_parts(study: Study, data: StudyFrames) -> list[Part]:
    from bench.reports.study_plots import FrontPoint, pareto_png, value_colours

    points = _measured(data)
    if points.empty:
        return ["Accuracy against sparsity: no point has finished yet."]
    target = study.base.target
    dense = points[points["sparsity_method"] == "none"]
    sparse = points[points["sparsity_method"] != "none"]
    front = pareto_front(points)
    reach = smallest_reaching(sparse, target)
    lines = [f"{series}: {fmt.percent(row['active_fraction'])} of the parameters active "
             f"({fmt.integer(row['active_params'])}), {fmt.percent(row['mean_accuracy'])} mean over "
             f"{int(row['complete'])} seed{'s' if row['complete'] != 1 else ''}"
             for series, row in reach.items()]
    missed = [s for s in sparse["sparsity_series"].unique() if s not in reach]
    text = (f"Smallest active fraction that reaches the base suite's target {fmt.percent(target)} "
            f"(mean accuracy over the seeds), per method: " + ("; ".join(lines) if lines else "none reaches it")
            + (f"; never reached by {', '.join(missed)}" if missed and lines else "") + ".")
    if len(dense):
        row = dense.iloc[0]
        text += (f" Dense baseline: {fmt.percent(row['mean_accuracy'])} at {fmt.percent(row['active_fraction'])} "
                 "active.")
    table = ReportTable("Accuracy against sparsity", ["method", "target active", "active fraction", "active params",
                                                      "mean accuracy ± std", "95% CI", "≥ target", "on the front"],
                        anchor="sparsity", sortable=True,
                        note="Active: nonzero parameters of the trained networks (all parameters, biases and norms "
                             "included; a target counts only conv and linear weights), mean over the seeds. On the "
                             "front: no other point has at most its active fraction and at least its accuracy.")
    for i, row in points.sort_values(["sparsity_series", "active_fraction"], kind="stable").iterrows():
        acc = fmt.percent(row["mean_accuracy"]) + ("" if fmt.missing(row["accuracy_std"])
                                                   else f" ± {100 * row['accuracy_std']:.2f}")
        ci = fmt.MISSING if fmt.missing(row["ci_low"]) else f"{fmt.percent(row['ci_low'])}–{fmt.percent(row['ci_high'])}"
        target_text = fmt.percent(row["sparsity_target"], 1) if not fmt.missing(row["sparsity_target"]) else (
            f"|w| < {row['sparsity_threshold']:g}" if not fmt.missing(row["sparsity_threshold"]) else fmt.MISSING)
        table.add([row["sparsity_series"] + ("" if fmt.missing(row["sparsity_l1"]) else f" (l1 {row['sparsity_l1']:g})"),
                   target_text, fmt.percent(row["active_fraction"]), fmt.integer(row["active_params"]), acc, ci,
                   "yes" if row["mean_accuracy"] >= target else "no", "yes" if i in front else ""],
                  style="good" if i in front else "",
                  keys=[row["sparsity_series"], row["sparsity_target"], row["active_fraction"], row["active_params"],
                        row["mean_accuracy"], row["ci_low"], row["mean_accuracy"] >= target, i in front])
    series = list(dict.fromkeys(sparse["sparsity_series"]))
    colours = value_colours(series, False)
    drawn = {s: [FrontPoint(float(r["active_fraction"]), float(r["mean_accuracy"]), _opt(r["ci_low"]),
                            _opt(r["ci_high"]), i in front) for i, r in sparse[sparse["sparsity_series"] == s].iterrows()]
             for s in series}
    baseline = None if dense.empty else (float(dense.iloc[0]["mean_accuracy"]), _opt(dense.iloc[0]["ci_low"]),
                                         _opt(dense.iloc[0]["ci_high"]))
    caption = ("Accuracy against the fraction of parameters active (log scale): mean final top-1 over the seeds "
               "with its 95% CI, one series per method; the dense baseline as a solid line (its CI shaded), the "
               "target dashed; ringed points are on the Pareto front")
    plot = Plot("pareto.png", caption, pareto_png(drawn, colours, baseline, target))
    return [Headline(text), table, plot]


# ---------------------------------------------------------------- the report ----

Part = ReportTable | Plot | Headline | str


def report_parts(study: Study, ledger: Ledger) -> list[Part]:
    data = study_frames(study, ledger)
    parts: list[Part] = []
    if study.description:
        parts.append(study.description)
    parts += summary_lines(study, ledger, data)
    parts.append(Headline(best_line(study, data)))
    parts.append(points_table(study, data))
    best = best_point(data)
    if best is not None:
        for axis in study.axes:
            if (plot := axis_plot(study, axis, data, best)) is not None:
                parts.append(plot)
        for plot in (train_size_plot(study, data), batch_size_plot(study, data)):
            if plot is not None:
                parts.append(plot)
    if is_sparsity_study(study):
        parts += sparsity_parts(study, data)
    if ledger.where("failed"):
        parts.append(failed_table(study, ledger))
    if (retried := retried_table(study, ledger)) is not None:
        parts.append(retried)
    if ledger.where("pending"):
        parts.append(pending_table(study, ledger))
    if ledger.strays:
        names = ", ".join(sorted(os.path.basename(str(r.path)) for r in ledger.strays))
        parts.append(f"Result files in the folder that are no cell of this study (left out): {names}.")
    return parts


def render_markdown(study: Study, parts: list[Part]) -> str:
    lines = [f"# Study {study.name}", ""]
    for part in parts:
        if isinstance(part, ReportTable):
            lines.append(table_markdown(part, level=2))
        elif isinstance(part, Plot):
            lines += [f"![{part.caption}]({part.name})", ""]
        elif isinstance(part, Headline):
            lines += [f"**{part.text}**", ""]
        else:
            lines += [part, ""]
    return "\n".join(lines).rstrip() + "\n"


def render_html(study: Study, parts: list[Part]) -> str:
    body = []
    for part in parts:
        if isinstance(part, ReportTable):
            body.append(table_html(part, level=2))
        elif isinstance(part, Plot):
            body.append(png_img_html(part.png, part.caption))
        elif isinstance(part, Headline):
            body.append(f'<p id="best"><strong>{html.escape(part.text)}</strong></p>')
        else:
            body.append(f'<p class="note">{html.escape(part)}</p>')
    return html_page(f"Study {study.name}", "\n".join(body), script=SORT_SCRIPT)


def _replace(path: Path, data: str | bytes) -> None:
    """Rewrites a report file whole: a reader never sees half of one."""
    text = data if isinstance(data, str) else None
    if text is not None:
        with staged_file(path.parent, text, path.suffix) as staged:
            os.replace(staged, path)
        return
    tmp = path.with_name(f".tmp-{os.getpid()}-{time.monotonic_ns()}{path.suffix}")
    tmp.write_bytes(data)  # type: ignore[arg-type]
    os.replace(tmp, path)


def write_study_report(study: Study, ledger: Ledger, folder: Path) -> tuple[Path, Path]:
    """REPORT.md (plots as PNG files beside it) and report.html (plots inline) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = report_parts(study, ledger)
    for part in parts:
        if isinstance(part, Plot):
            _replace(folder / part.name, part.png)
    page, markdown = folder / "report.html", folder / "REPORT.md"
    _replace(page, render_html(study, parts))
    _replace(markdown, render_markdown(study, parts))
    return page, markdown
