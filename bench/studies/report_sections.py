"""The study report's text and tables: the summary, the best values line, the points table,
failed and pending cells, and accuracy against sparsity (bench.studies.report puts them in order)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from bench import formatting as fmt
from bench.load import HIGH_LOAD_SHARE
from bench.record.calibration import cited_file, repository_root
from bench.reports.render import Headline, Part, ReportTable
from bench.studies.figures import (MIN_SEEDS_FOR_CI, StudyFrames, best_point, measured_points, numbers,
                                   pareto_front, validation_size)
from bench.studies.compare import chosen_split, finished_points, judge_points
from bench.studies.findings_questions import sparsity_readoff
from bench.studies.ledger import Ledger
from bench.studies.study import Study, toml_value, value_label


def _rank_words(study: Study, data: StudyFrames) -> str:
    split = "validation" if data.on_validation else "test"
    accuracy = f"the highest mean {split} top-1" + ("" if data.on_validation else " (chosen on test)")
    return (accuracy if study.rank == "accuracy"
            else "the fastest median time to target among the points whose every run reached it, then "
                 + accuracy)


def choice_line(study: Study, data: StudyFrames) -> str:
    """Which split the study's choices are made on, and which split its numbers are on."""
    if data.on_validation:
        line = (f"Choices: every best (each axis's value, each training-set size's point, the sparsity read-off) "
                f"is chosen on the validation split ({fmt.integer(validation_size(study))} training images held "
                "out by dataset.validation_size, never trained on); every accuracy reported for a chosen point is "
                "on the test split.")
        return line + (" Reaching the target (rank = \"time\") is the verdict's measure, on test."
                       if study.rank == "time" else "")
    why = ("not every point holds out a validation split" if any(p.suite.dataset["validation_size"]
                                                                 for p in study.points)
           else "the base suite has no validation split (dataset.validation_size)")
    return (f"Choices: chosen on test. {why[0].upper()}{why[1:]}, so every best is picked on the same test split "
            "it is reported on, and its accuracy is optimistic.")


def best_line(study: Study, data: StudyFrames) -> str:
    best = best_point(data)
    if best is None:
        return "Best value of each axis: none yet (no cell has finished)."
    values = " · ".join(f"{axis} = {best[f'axis:{axis}']}" for axis in study.axes)
    figure = f"{fmt.percent(best['mean_accuracy'])} test top-1"
    if data.on_validation:
        figure += f" ({fmt.percent(best['validation_accuracy'])} validation top-1)"
    if study.rank == "time" and best["all_reached"] and not fmt.missing(best["median_reach_time_s"]):
        figure = f"{fmt.seconds(best['median_reach_time_s'])} to {fmt.percent(best['target'], 1)}, {figure}"
    return (f"Best value of each axis ({_rank_words(study, data)}): {values} — {figure} "
            f"(mean over {int(best['complete'])} seed{'s' if best['complete'] != 1 else ''}). "
            f"{_ties(study, data, best)}").rstrip()


def _ties(study: Study, data: StudyFrames, best: pd.Series) -> str:
    """Every other finished point whose mean accuracy lies within the best one's 95% CI, on the split
    the choice is made on: the data cannot tell them from the best. Only where the ranking is by
    accuracy."""
    if study.rank != "accuracy":
        return ""
    on, split = data.chosen_on, chosen_split(data)
    low, high = ((best["validation_ci_low"], best["validation_ci_high"]) if data.on_validation
                 else (best["ci_low"], best["ci_high"]))
    if fmt.missing(low):
        return (f"Ties not judged: the best point has no interval (fewer than {MIN_SEEDS_FOR_CI} seeds).")
    tied = tied_points(data, best)
    if tied.empty:
        return f"No other point's mean {split} top-1 lies within its 95% CI."
    labels = "; ".join(" · ".join(f"{axis} = {row[f'axis:{axis}']}" for axis in study.axes)
                       + f" ({fmt.percent(row[on])})" for _, row in tied.iterrows())
    return (f"Tied with it (mean {split} top-1 within its 95% CI {fmt.percent(low)}–{fmt.percent(high)}): "
            f"{labels}.")


def tied_points(data: StudyFrames, best: pd.Series) -> pd.DataFrame:
    """The finished points other than the best that tie with it by THE tie rule
    (bench.studies.compare.judge_points): what the header lists and the table marks."""
    finished = finished_points(data)
    finished = finished[finished["point"] != best["point"]]
    mask = pd.Series([judge_points(data, best, row)[0] == "tied" for _, row in finished.iterrows()],
                     index=finished.index, dtype=bool)
    return finished.loc[mask]


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
        choice_line(study, data),
    ]
    cells = data.cells
    if not cells.empty:
        machines = cells.groupby("hardware", dropna=False).size()
        codes = cells.groupby("code", dropna=False).size()
        lines.append("Ran on (machine kind: device, vector ISA, torch threads): "
                     + "; ".join(f"{fmt.text(h)} ({n} cells)" for h, n in machines.items())
                     + ". Code (commit, +dirty for a modified tree): "
                     + "; ".join(f"{fmt.text(c)} ({n} cells)" for c, n in codes.items()) + ".")
        lines += missing_citations(study, cells)
        timed = sum(numbers(cells["timed_s"]))
        starts = pd.to_datetime(cells["started_at"], errors="coerce", utc=True).dropna()
        ends = pd.to_datetime(cells["finished_at"], errors="coerce", utc=True).dropna()
        if len(starts) and len(ends):
            lines.append(f"Time: {fmt.seconds(timed)} in the cells' timed regions; their results span "
                         f"{starts.min():%Y-%m-%d %H:%M}–{ends.max():%H:%M} UTC "
                         f"({fmt.seconds((ends.max() - starts.min()).total_seconds())} from the first start to the "
                         "last finish, across sweeps).")
        if (line := load_line(cells)) is not None:
            lines.append(line)
    return lines


def load_line(cells: pd.DataFrame) -> str | None:
    """How many cells' timed regions met high load (bench.load); None where no cell's load was
    measured (results from before it was recorded), so such reports read as they did."""
    shares = numbers(cells["competing_cpu_share"])
    if not shares:
        return None
    busy = int((cells["load_high"] == True).sum())  # noqa: E712 (None: not measured)
    return (f"Load: other processes took {min(shares):.0%}–{max(shares):.0%} of the CPU during the {len(shares)} "
            f"measured cells' timed regions; {busy} above {HIGH_LOAD_SHARE:.0%} (high: their times are suspect)"
            + (f"; {len(cells) - len(shares)} cells not measured" if len(cells) > len(shares) else "") + ".")


def missing_citations(study: Study, cells: pd.DataFrame) -> list[str]:
    """A line per calibration file the cells' recorded target sources cite that does not exist."""
    root = repository_root(study.base.path)
    counts = cells["target_source"].dropna().map(cited_file).dropna().value_counts()
    return [f"{n} cell{'s' if n != 1 else ''} cite{'' if n != 1 else 's'} the calibration file {cited}, which is "
            "missing: the source of the target they were judged under cannot be checked; restore it from the "
            "repository's history or recalibrate." for cited, n in counts.items()
            if not (Path(cited) if Path(cited).is_absolute() else root / cited).is_file()]


def points_table(study: Study, data: StudyFrames) -> ReportTable:
    measured_train = data.points["train_accuracy"].notna().any() if not data.points.empty else False
    budget = study.base.mode == "budget"
    # budget mode: every run trains the whole budget, so the time to the target is its first crossing
    time_column = "median first crossing" if budget else "median time to target"
    columns = [*study.axes, "rank", "seeds", "test top-1 ± std", "test 95% CI", "runs ≥ target",
               time_column, "median steps to target", "median timed region", "images/s", "params"]
    # bench.train.memory's training peak, where the runs record it (median over the seeds)
    measured_memory = "train_peak_memory_mb" in data.points and data.points["train_peak_memory_mb"].notna().any()
    if measured_memory:
        columns.append("train peak memory")
    if measured_train:
        columns.insert(len(study.axes) + 3, "train accuracy")
    if data.on_validation:  # what the rank was chosen on, before what is reported
        columns.insert(len(study.axes) + 2, "validation top-1 ± std")
    time_words = ("First crossing: the timed clock at the first evaluation at or above the target (first_reached_s), "
                  "median over the seeds, — unless every seed crossed it; timed region: every run's, the whole budget"
                  if budget else
                  "Time to target: until the first evaluation at the target, of the runs that reached it; timed "
                  "region: every run's, to its end")
    table = ReportTable("Points", columns, anchor="points", sortable=True,
                        note=f"One row per point, seeds pooled; ranked by {_rank_words(study, data)}. Accuracy: "
                             "final top-1 on the split its column names, mean ± sample std over the seeds, 95% CI of "
                             f"the mean (Student t, clipped to [0, 100%]; none with fewer than {MIN_SEEDS_FOR_CI} "
                             f"seeds). {time_words}"
                             "; steps: optimizer updates (under truncated, sliding or shuffled BPTT several a loader batch), of the "
                             "runs that reached the target."
                             + (" Train peak memory: the training's peak (the state plus one steady-state step's "
                                "allocations, outside the timed region; on CUDA the allocator's peak), median over "
                                "the seeds." if measured_memory else "")
                             + (" Rank \"(ties 1)\": the point's mean lies within the best one's 95% CI on the "
                                "split the ranking is chosen on (the tie rule the header and Findings use)."
                                if study.rank == "accuracy" else "") + " Click a column head to sort.")
    best = best_point(data)
    tied = set() if best is None or study.rank != "accuracy" else set(tied_points(data, best)["point"])
    for rank, row in data.points.iterrows():
        finished = row["complete"] > 0
        seeds = f"{int(row['complete'])}/{int(row['planned'])}"
        extra = [f"{int(row[k])} {k}" for k in ("diverged", "failed") if row[k]]
        seeds += f" ({', '.join(extra)})" if extra else ""
        accuracy = fmt.MISSING if not finished else _with_std(row["mean_accuracy"], row["accuracy_std"])
        ci = fmt.MISSING if fmt.missing(row["ci_low"]) else \
            f"{fmt.percent(row['ci_low'])}–{fmt.percent(row['ci_high'])}"
        cells = [row[f"axis:{axis}"] for axis in study.axes]
        keys: list[Any] = [_axis_sort_key(study, axis, row[f"axis:{axis}"]) for axis in study.axes]
        place = str(rank + 1) + (" (ties 1)" if row["point"] in tied else "")
        time = (fmt.seconds(row["median_first_crossing_s"]) if budget else
                fmt.time_to_target(row["median_time_s"], None, row["reached"], row["complete"]))
        cells += [place if finished else fmt.MISSING, seeds, accuracy, ci,
                  fmt.percent(row["pass_fraction"], 0), time,
                  fmt.integer(row["median_steps"]), fmt.seconds(row["median_timed_s"]), fmt.rate(row["images_per_s"]),
                  fmt.si(row["params"])]
        keys += [rank + 1 if finished else None, row["complete"], row["mean_accuracy"], row["ci_low"],
                 row["pass_fraction"], row["median_first_crossing_s"] if budget else row["median_time_s"], row["median_steps"], row["median_timed_s"],
                 row["images_per_s"], row["params"]]
        if measured_memory:
            cells.append(fmt.megabytes(row["train_peak_memory_mb"]))
            keys.append(row["train_peak_memory_mb"])
        if measured_train:
            at = len(study.axes) + 3
            cells.insert(at, fmt.percent(row["train_accuracy"]))
            keys.insert(at, row["train_accuracy"])
        if data.on_validation:
            at = len(study.axes) + 2
            cells.insert(at, _with_std(row["validation_accuracy"], row["validation_std"]))
            keys.insert(at, row["validation_accuracy"])
        style = "good" if rank == 0 and finished else ("bad" if row["failed"] or row["diverged"] else
                                                       ("muted" if not finished else ""))
        table.add(cells, style=style, keys=keys)
    return table


def _with_std(mean: Any, std: Any) -> str:
    return fmt.percent(mean) + ("" if fmt.missing(mean) or fmt.missing(std) else f" ± {100 * std:.2f}")


def _axis_sort_key(study: Study, axis: str, label: str) -> Any:
    """Sort an axis column by the values' order in the study file (numbers by value)."""
    values = study.axes[axis]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return next(v for v in values if value_label(v) == label)
    return next((i for i, v in enumerate(values) if value_label(v) == label), label)


def code_machine_table(data: StudyFrames) -> ReportTable | None:
    """The done cells split by the code and the machine kind that ran them, where there is more than
    one of either: which points each combination ran, and when."""
    done = data.cells[data.cells["state"] == "done"]
    if done.empty or (done["code"].nunique() < 2 and done["hardware"].nunique() < 2):
        return None
    labels = dict(zip(data.points["point"], data.points["label"]))
    table = ReportTable("Cells by code and machine", ["code", "machine kind", "cells", "points", "ran"],
                        anchor="code-machine", note="A study's cells should come from one code on one machine "
                        "kind; these did not (bench sweep refuses to mix them without --allow-mixed). The "
                        "figures above pool them.")
    for (code, kind), group in done.groupby(["code", "hardware"], dropna=False):
        starts = pd.to_datetime(group["started_at"], errors="coerce", utc=True).dropna()
        points = sorted({labels.get(p, p) for p in group["point"]})
        table.add([fmt.text(code), fmt.text(kind), str(len(group)),
                   f"{len(points)}: " + "; ".join(points[:4]) + ("; ..." if len(points) > 4 else ""),
                   f"{starts.min():%Y-%m-%d %H:%M}–{starts.max():%Y-%m-%d %H:%M} UTC" if len(starts) else fmt.MISSING])
    return table


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


# ---------------------------------------------------------------- accuracy against sparsity ----

def sparsity_table(points: pd.DataFrame, front: set[Any], target: float, on: str) -> ReportTable:
    split = "test" if on == "mean_accuracy" else "validation"
    columns = ["series", "pruned to", "active params", "active fraction", "test top-1 ± std", "test 95% CI",
               f"{split} ≥ target", "on the front"]
    if split == "validation":
        columns.insert(4, "validation top-1 ± std")
    table = ReportTable("Accuracy against sparsity", columns, anchor="sparsity", sortable=True,
                        note="Active params: nonzero parameters of the trained networks (all parameters, biases and "
                             "norms included; a target counts only conv and linear weights), mean over the seeds; "
                             "active fraction: of the point's own network (a narrowed dense network is 100% active "
                             "of its smaller count). On the front: no other point has at most its active parameters "
                             f"and at least its test top-1. ≥ target: the mean {split} top-1, the measure the "
                             "read-off above chooses on.")
    for i, row in points.sort_values(["sparsity_series", "active_params"], kind="stable").iterrows():
        acc = _with_std(row["mean_accuracy"], row["accuracy_std"])
        ci = fmt.MISSING if fmt.missing(row["ci_low"]) else f"{fmt.percent(row['ci_low'])}–{fmt.percent(row['ci_high'])}"
        # what the recipe prunes to: a target fraction active, or a magnitude threshold (not a fraction)
        target_text = f"{fmt.percent(row['sparsity_target'], 1)} active" if not fmt.missing(row["sparsity_target"]) \
            else (f"|w| < {row['sparsity_threshold']:g}" if not fmt.missing(row["sparsity_threshold"]) else fmt.MISSING)
        reaches = not fmt.missing(row[on]) and row[on] >= target
        cells = [row["sparsity_series"] + ("" if fmt.missing(row["sparsity_l1"]) else f" (l1 {row['sparsity_l1']:g})"),
                 target_text, fmt.count(row["active_params"]), fmt.percent(row["active_fraction"]), acc, ci,
                 "yes" if reaches else "no", "yes" if i in front else ""]
        keys = [row["sparsity_series"], row["sparsity_target"], row["active_params"], row["active_fraction"],
                row["mean_accuracy"], row["ci_low"], reaches, i in front]
        if split == "validation":
            cells.insert(4, _with_std(row[on], row["validation_std"]))
            keys.insert(4, row[on])
        table.add(cells, style="good" if i in front else "", keys=keys)
    return table


def sparsity_parts(study: Study, data: StudyFrames) -> list[Part]:
    """Accuracy against active parameters: the fewest reaching the target per series, every
    finished point with its place on the Pareto front, and the front drawn. The full-width dense
    network (series "dense") is the baseline; narrowed dense networks are a series like a method."""
    from bench.studies.plots import pareto_plot  # matplotlib: imported when a report is drawn

    points = measured_points(data)
    if points.empty:
        return ["Accuracy against sparsity: no point has finished yet."]
    target = study.base.target
    dense = points[points["sparsity_series"] == "dense"]
    series = points[points["sparsity_series"] != "dense"]
    front = pareto_front(points)
    # the read-off compares accuracies with the target: on the split the target was set on (test)
    return [Headline(sparsity_readoff(points, target)),
            sparsity_table(points, front, target, "mean_accuracy"), pareto_plot(series, dense, front, target)]
