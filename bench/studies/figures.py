"""A study's figures, from the result files standing for its cells (bench.studies.ledger picks
them): one row per cell, one row per point with its seeds pooled, the ranking, the best point.

A point's accuracy and time figures are the harness's verdict statistics (bench.measure's
`aggregate`, the same rule a multi-seed `bench run` applies) over the runs of its complete
cells, so a study and an invocation never disagree on what a mean, an interval or a median is.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.record.stats import aggregate, mean_ci95, time_summary
from bench import formatting as fmt
from bench.reports.frame import frames, hardware_label
from bench.studies.ledger import Ledger, record_cell_key
from bench.studies.study import Study, value_label

TRAIN_SIZE, BATCH_SIZE = "dataset.train_size", "recipe.batch_size"

RUN_COLUMNS = ("accuracy", "validation_accuracy", "train_accuracy", "reached_target", "time_to_target_s", "steps",
               "first_reached_s",
               "timed_s", "train_images_per_s", "active_params", "active_fraction", "train_peak_memory_mb",
               # the load each cell's timed region met (bench.load; None in files from before it was recorded)
               "competing_cpu_share", "load_high")
CELL_COLUMNS = ["key", "point", "seed", "state", "status", "id", "path", "params", "hardware", "code", "started_at",
                "finished_at", "error", "attempts", "concurrency", "order_seed", "target_source", "updates_per_step", *RUN_COLUMNS]


@dataclass
class StudyFrames:
    points: pd.DataFrame    # one row per point, in rank order
    cells: pd.DataFrame     # one row per cell with a standing result: point, seed, state, run figures
    curves: pd.DataFrame    # point, seed, epoch, time_s, accuracy, loss, active_fraction (NaN where not recorded)
    # the points' column every "best" is chosen on: validation_accuracy where the study has a
    # validation split (choice_column), else mean_accuracy, the test split's
    chosen_on: str = "mean_accuracy"

    @property
    def on_validation(self) -> bool:
        return self.chosen_on == VALIDATION


VALIDATION = "validation_accuracy"


def validation_size(study: Study) -> int:
    """The validation split every point of the study holds out (dataset.validation_size; the smallest
    where it varies), or 0 when some point has none: then the study's choices are made on test."""
    sizes = {p.suite.dataset["validation_size"] for p in study.points}
    return 0 if not sizes or 0 in sizes else min(sizes)


def choice_column(study: Study) -> str:
    """Where a study chooses its best points: on validation with a split, else (disclosed) on test."""
    return VALIDATION if validation_size(study) else "mean_accuracy"


def _cell_row(state: Any, inv: pd.DataFrame, runs: pd.DataFrame) -> dict[str, Any]:
    rid = state.result.record["id"]
    row = {"key": state.cell.key, "point": state.cell.point.identity, "seed": state.cell.seed, "state": state.state,
           "status": state.result.record["status"], "id": rid, "path": str(state.result.path),
           "params": inv.at[rid, "params"], "hardware": machine_kind(state.result.record.get("env") or {}),
           "code": inv.at[rid, "code"],
           "started_at": inv.at[rid, "started_at"], "finished_at": inv.at[rid, "finished_at"],
           "error": state.error, "attempts": state.attempts,
           # cells the sweep ran at once (study.concurrency); None in files from before it was recorded
           "concurrency": (state.result.record.get("study") or {}).get("concurrency"),
           # the seed the sweep shuffled its cells with (None: run in the grid's order); the load a
           # cell met is the run column competing_cpu_share
           "order_seed": (state.result.record.get("study") or {}).get("order_seed"),
           "target_source": ((state.result.record.get("suite") or {}).get("resolved") or {}).get("target_source"),
           "updates_per_step": _updates_per_step(state.result.record)}
    run = runs[runs["id"] == rid]
    for column in RUN_COLUMNS:
        row[column] = run[column].iloc[0] if len(run) else None
    if len(run) and run["status"].iloc[0] != "complete":
        row["accuracy"] = None  # a diverged run has no final accuracy
    return row


def machine_kind(env: dict[str, Any]) -> str:
    """What kind of machine a cell ran on, finer than its device: the CPU's vector ISA (torch's
    dispatch, or whether bf16 is fast: AVX-512-bf16 against AVX2-only EPYCs) and torch's threads.
    Identical cells differ by more than noise between kinds, so a study reports them apart."""
    cpu = env.get("cpu") or {}
    words = [hardware_label(env)]
    if not (env.get("gpu") or {}).get("name"):
        isa = cpu.get("isa") or ("fast bf16" if cpu.get("fast_bf16") else
                                 "no fast bf16" if cpu.get("fast_bf16") is False else None)
        if cpu.get("isa") and cpu.get("fast_bf16") is not None:
            isa += ", fast bf16" if cpu["fast_bf16"] else ", no fast bf16"
        words += [isa] if isa else []
        threads = cpu.get("torch_threads")
        words += [f"{threads} torch thread{'s' if threads != 1 else ''}"] if threads else []
    return ", ".join(words)


def _updates_per_step(record: dict[str, Any]) -> int:
    """Optimizer updates per recorded step (a loader batch): more than one under truncated,
    sliding or shuffled BPTT (bench.train.bptt); 1 otherwise."""
    resolved = (record.get("suite") or {}).get("resolved") or {}
    bptt = (resolved.get("recipe") or {}).get("bptt") or {}
    shape = (record.get("model") or {}).get("input_shape")
    if bptt.get("mode", "none") in ("none", "full") or not shape:
        return 1
    from bench.train.bptt import sequence_length, updates_per_batch  # torch: only for a BPTT study

    patch = ((resolved.get("model") or {}).get("args") or {}).get("patch", 0)
    return updates_per_batch(bptt, sequence_length(shape, patch))


def _cells_frame(ledger: Ledger) -> tuple[pd.DataFrame, pd.DataFrame]:
    found = frames(ledger.results)
    key_of = {r.record["id"]: record_cell_key(r.record) for r in ledger.results}
    point_of = {c.cell.key: c.cell.point.identity for c in ledger.cells.values()}
    inv = found.invocations.set_index("id")
    cells = [_cell_row(state, inv, found.runs) for state in ledger.cells.values() if state.result is not None]
    curves = found.curves.copy()
    curves["point"] = curves["id"].map(lambda i: point_of.get(key_of.get(i)))
    done_ids = {r["id"] for r in cells if r["state"] == "done"}
    curves = curves[curves["id"].isin(done_ids)]
    # a fractional budget's last epoch is cut short (1.5 epochs: epoch 2 ends at step 1.5 x the
    # epoch's): its point lies where the training stopped, not at the next whole epoch
    trained = pd.to_numeric(found.runs.drop_duplicates("id").set_index("id")["epochs"], errors="coerce")
    curves = curves.assign(epoch=pd.concat([pd.to_numeric(curves["epoch"], errors="coerce"),
                                            curves["id"].map(trained)], axis=1).min(axis=1))
    columns = ("accuracy", "time_s", "loss", "active_fraction")
    curves = curves.assign(**{c: pd.to_numeric(curves[c] if c in curves else None, errors="coerce") for c in columns})
    curves = curves.dropna(subset=["accuracy", "loss"], how="all")  # an epoch without either draws nothing
    return pd.DataFrame(cells, columns=CELL_COLUMNS), curves[["point", "seed", "epoch", *columns]]


def standing_runs(ledger: Ledger) -> dict[str, dict[str, Any]]:
    """Cell key -> the run record of the file that stands for it (a cell is one seed: one run)."""
    return {key: state.result.record["runs"][0] for key, state in ledger.cells.items()
            if state.result is not None and state.result.record.get("runs")}


def numbers(series: pd.Series) -> list[float]:
    return [float(v) for v in pd.to_numeric(series, errors="coerce").dropna()]


def _all_or_none(values: list[float], seeds: int) -> float | None:
    """The median of one value per seed, only where every seed has one."""
    return statistics.median(values) if values and len(values) == seeds else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


MIN_SEEDS_FOR_CI = 3  # below this a t interval is too wide to mean anything (t = 12.7 at two seeds)


def _pooled(complete: pd.DataFrame, runs: dict[str, dict[str, Any]], target: float, pass_rule: str) -> dict[str, Any]:
    """A point's seeds pooled: the verdict statistics of its complete cells' runs (no interval
    below MIN_SEEDS_FOR_CI seeds), and the figures of the runs that reached the target (time
    and steps to it), train accuracy."""
    verdict = aggregate([runs[key] for key in complete["key"]], target, pass_rule)
    ci = verdict["accuracy_ci95"] if len(complete) >= MIN_SEEDS_FOR_CI else None
    reached = complete[complete["reached_target"] == True]  # noqa: E712 (a column of booleans and None)
    train = numbers(complete["train_accuracy"])
    validation = numbers(complete["validation_accuracy"])
    return {"mean_accuracy": verdict["mean_accuracy"], "accuracy_std": verdict["accuracy_std"],
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None,
            "pass_fraction": verdict["pass_fraction"],
            "all_reached": len(complete) > 0 and len(reached) == len(complete),
            "median_time_s": verdict["median_time_s"], "reached": verdict["reached_runs"],
            "median_timed_s": verdict["median_timed_s"],
            # optimizer updates: a recorded step is a loader batch, several updates under BPTT windows
            "median_steps": _median(numbers(pd.to_numeric(reached["steps"], errors="coerce")
                                           * pd.to_numeric(reached["updates_per_step"], errors="coerce").fillna(1))),
            "median_reach_time_s": time_summary(numbers(reached["time_to_target_s"]))["median_time_s"],
            # budget mode: the timed clock at the first evaluation at or above the target (every seed
            # must have crossed it for a median), as against the whole budget's timed region
            "median_first_crossing_s": _all_or_none(numbers(complete["first_reached_s"]), len(complete)),
            "validation_accuracy": mean_ci95(validation)[0],
            "validation_std": statistics.stdev(validation) if len(validation) > 1 else None,
            **_validation_interval(validation),
            "train_accuracy": mean_ci95(train)[0],
            "train_accuracy_std": statistics.stdev(train) if len(train) > 1 else None,
            "images_per_s": verdict["median_train_images_per_s"],
            # bench.train.memory's training peak (the state plus one step's allocations), median over the seeds
            "train_peak_memory_mb": _median(numbers(complete["train_peak_memory_mb"])),
            # the trained networks' nonzero parameters (bench.sparsity), mean over the seeds
            "active_params": verdict["mean_active_params"], "active_fraction": verdict["mean_active_fraction"]}


def _validation_interval(values: list[float]) -> dict[str, float | None]:
    """The 95% CI of the mean validation accuracy (clipped like the test one; none below
    MIN_SEEDS_FOR_CI seeds): what ties are judged on where the study chooses on validation."""
    ci = mean_ci95(values)[1] if len(values) >= MIN_SEEDS_FOR_CI else None
    low, high = (max(0.0, ci[0]), min(1.0, ci[1])) if ci else (None, None)
    return {"validation_ci_low": low, "validation_ci_high": high}


def point_rows(study: Study, cells: pd.DataFrame, runs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for order, point in enumerate(study.points):
        mine = cells[cells["point"] == point.identity]
        done = mine[mine["state"] == "done"]
        complete = done[done["status"] == "complete"]
        row = {"point": point.identity, "order": order, "label": point.label, "target": point.suite.target,
               **{f"axis:{axis}": value_label(value) for axis, value in point.values},
               "planned": len(study.seeds), "done": len(done), "failed": int((mine["state"] == "failed").sum()),
               "diverged": int((done["status"] == "diverged").sum()), "complete": len(complete),
               **_pooled(complete, runs, point.suite.target, point.suite.resolved["pass_rule"]),
               "params": next(iter(numbers(done["params"])), None),
               **_sparsity_of(point.suite.recipe["sparsity"])}
        rows.append(row)
    return pd.DataFrame(_name_series(study, rows))


def _name_series(study: Study, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each point's series on the accuracy-sparsity front. An axis that takes one value at every
    sparse point (the full network's width, say) names no series: "magnitude", not "magnitude,
    hidden=[256]"; one that varies among them (weight decay, say) splits every series by its value.
    A dense point at another value of an axis the sparse points hold fixed is a smaller dense
    network ("dense, narrowed" for a model.* axis): the answer to "is a sparse net better than a
    small dense one?", drawn as a series of its own, apart from the full-width dense baseline."""
    others = [axis for axis in study.axes if not axis.startswith("recipe.sparsity")]
    sparse = [row for row in rows if row["sparsity_method"] != "none"]
    held = {axis: {row[f"axis:{axis}"] for row in sparse} for axis in others}
    splitting = [axis for axis in others if len(held[axis]) > 1]
    for row in rows:
        if row["sparsity_method"] == "none" and sparse:
            moved = [axis for axis in others if axis not in splitting and row[f"axis:{axis}"] not in held[axis]]
            words = ["dense"]
            if any(axis.startswith("model.") for axis in moved):
                words.append("narrowed")  # another network than the one the sparse points prune
            words += [f"{axis.split('.')[-1]}={row[f'axis:{axis}']}" for axis in moved if not axis.startswith("model.")]
            row["sparsity_series"] = ", ".join(words)
        row["sparsity_series"] += "".join(f", {a.split('.')[-1]}={row[f'axis:{a}']}" for a in splitting)
    return rows


def _sparsity_of(spec: dict[str, Any]) -> dict[str, Any]:
    """A point's sparsity recipe, and the series it belongs to on the accuracy-sparsity front: the
    method, and how it prunes where that differs (per layer, gradual)."""
    # "l1 then prune": an L1 penalty, then pruning to an exact target (the threshold variant says so)
    series = {"none": "dense"}.get(spec["method"], spec["method"])
    if spec["method"] == "l1" and spec["prune_epochs"] and spec["threshold"] is None:
        series = "l1 then prune"
    if spec["method"] != "none" and spec["prune_epochs"]:
        series += ", per layer" if spec["scope"] == "layer" else ""
        series += ", gradual" if len(spec["prune_epochs"]) > 1 else ""
        series += ", threshold" if spec["threshold"] is not None else ""
    return {"sparsity_method": spec["method"], "sparsity_series": series, "sparsity_target": spec["target"],
            "sparsity_threshold": spec["threshold"], "sparsity_l1": spec["l1"] if spec["method"] == "l1" else None}


def ranked(points: pd.DataFrame, rank: str, on: str = "mean_accuracy") -> pd.DataFrame:
    """Rank order (see bench.studies.report): points without a finished run last, in study order.
    `on` is the accuracy the order is chosen on (validation where the study has a split); reaching
    the target, for `rank = "time"`, is the verdict's own measure (the test split's)."""
    def key(row: pd.Series) -> tuple:
        has = not fmt.missing(row[on])
        accuracy = -row[on] if has else 0.0
        if rank == "time" and row["all_reached"] and not fmt.missing(row["median_reach_time_s"]):
            return (0, row["median_reach_time_s"], accuracy, row["order"])
        return (1 if has else 2, accuracy, 0.0, row["order"])
    if points.empty:
        return points
    order = sorted(points.index, key=lambda i: key(points.loc[i]))
    return points.loc[order].reset_index(drop=True)


def study_frames(study: Study, ledger: Ledger) -> StudyFrames:
    cells, curves = _cells_frame(ledger)
    points = point_rows(study, cells, standing_runs(ledger))
    on = choice_column(study)
    return StudyFrames(points=ranked(points, study.rank, on), cells=cells, curves=curves, chosen_on=on)


def best_point(data: StudyFrames) -> pd.Series | None:
    finished = data.points[data.points["complete"] > 0]
    return None if finished.empty else finished.iloc[0]


# ---------------------------------------------------------------- accuracy against sparsity ----

def is_sparsity_study(study: Study) -> bool:
    """A study whose points train sparse networks, or sparse and dense ones (recipe.sparsity)."""
    return any(p.suite.recipe["sparsity"]["method"] != "none" for p in study.points)


def pareto_front(points: pd.DataFrame) -> set[Any]:
    """The points no other point beats: none has at most their active parameters and at least their
    mean accuracy, one of them strictly. Index labels of `points`. Active parameters, not the
    active fraction: a narrowed dense network is 100% active of its own, smaller, count."""
    rows = [(i, float(r["active_params"]), float(r["mean_accuracy"])) for i, r in points.iterrows()]
    return {i for i, x, y in rows
            if not any(x2 <= x and y2 >= y and (x2 < x or y2 > y) for j, x2, y2 in rows if j != i)}


def smallest_reaching(points: pd.DataFrame, target: float, on: str = "mean_accuracy") -> dict[str, pd.Series]:
    """Per series: the point with the fewest active parameters whose mean accuracy on `on` (the
    validation split's where the study has one) reaches the target (the harness's verdict rule:
    mean over the seeds at or above it)."""
    out = {}
    for series, group in points.groupby("sparsity_series", sort=False):
        reaching = group[group[on] >= target]
        if len(reaching):
            out[str(series)] = reaching.sort_values("active_params", kind="stable").iloc[0]
    return out


def measured_points(data: StudyFrames) -> pd.DataFrame:
    """The finished points with their active parameters counted (the sparsity table and front)."""
    points = data.points[(data.points["complete"] > 0)].copy()
    return points[points["active_params"].notna() & points["mean_accuracy"].notna()]
