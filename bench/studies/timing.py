"""Whether a study's times compare, and its time Finding (bench.studies.findings).

Times compare only between cells that ran alike (DESIGN section 10). A study's cells ran alike
when, on the one machine kind:
- the sweep recorded how many ran at once (study.concurrency), one number for all of them;
- no cell overlapped more other cells in time (its recorded start and end) than that number
  allows: a cell recorded as run one at a time that overlaps another (a second sweep, another
  study's cells beside it) met contention its record does not say;
- no cell met high load (run `load.competing_cpu_share`, the CPU share other processes took in its
  timed region, at or above bench.load.HIGH_LOAD_SHARE) where the runs measured it;
- the cells did not run in the grid's order: a sweep that did not shuffle (no study.order_seed)
  and whose start times follow the order of the points (rank correlation at or above
  ORDER_DRIFT_CORRELATION) lines any drift of the machine's speed up with the axes.
Otherwise the Finding says the times are not comparable, and why.

Budget mode: every run trains the whole budget, so its timed region is the budget's time, not a
time to the target. The time Finding ranks the first crossing (`first_reached_s`: the timed clock
at the first evaluation at or above the target) and names the timed region as such.
"""

from __future__ import annotations

import pandas as pd

from bench import formatting as fmt
from bench.load import HIGH_LOAD_SHARE
from bench.studies.compare import Finding
from bench.studies.figures import StudyFrames

# start order against point order, rank-correlated: above this an unshuffled sweep's drift lines up with the grid
ORDER_DRIFT_CORRELATION = 0.5


def _done(data: StudyFrames) -> pd.DataFrame:
    return data.cells[data.cells["state"] == "done"]


def _concurrency_counts(data: StudyFrames) -> tuple[dict[int, int], int]:
    """Cells per recorded concurrency, and cells without one (files from before it was recorded)."""
    known = pd.to_numeric(_done(data)["concurrency"], errors="coerce")
    counts = {int(n): int(c) for n, c in known.dropna().value_counts().sort_index().items()}
    return counts, int(known.isna().sum())


def _counts_words(counts: dict[int, int]) -> str:
    return "; ".join(f"{n} at a time: {c} cell{'s' if c != 1 else ''}" for n, c in counts.items())


def overlaps(data: StudyFrames) -> tuple[int, int]:
    """(pairs of done cells whose recorded start-to-end spans overlap, the most cells running at one
    instant by those spans): the concurrency the cells really met, from their times."""
    done = _done(data)
    starts = pd.to_datetime(done["started_at"], errors="coerce", utc=True)
    ends = pd.to_datetime(done["finished_at"], errors="coerce", utc=True)
    spans = sorted((s, e) for s, e in zip(starts, ends) if not (pd.isna(s) or pd.isna(e)))
    pairs = 0
    for i, (_, end) in enumerate(spans):
        for later_start, _ in spans[i + 1:]:
            if later_start >= end:
                break  # sorted by start: no later span starts before this one ends
            pairs += 1
    # at once: +1 at a start, -1 at an end; an end sorts before a start at the same instant
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return pairs, most


def order_correlation(data: StudyFrames) -> float | None:
    """Rank correlation of the done cells' start times with their points' order in the grid; None
    where fewer than three cells have a start time or either order is constant."""
    done = _done(data)
    order = dict(zip(data.points["point"], data.points["order"]))
    starts = pd.to_datetime(done["started_at"], errors="coerce", utc=True)
    frame = pd.DataFrame({"start": starts.reset_index(drop=True),
                          "order": done["point"].map(order).reset_index(drop=True)}).dropna()
    if len(frame) < 3 or frame["start"].nunique() < 2 or frame["order"].nunique() < 2:
        return None
    return float(frame["start"].rank().corr(frame["order"].rank()))


def _load_words(data: StudyFrames) -> str | None:
    shares = pd.to_numeric(_done(data)["competing_cpu_share"], errors="coerce").dropna()
    high = shares[shares >= HIGH_LOAD_SHARE]
    if high.empty:
        return None
    return (f"{len(high)} of {len(shares)} cells whose load was measured met high load (other processes took "
            f"{100 * high.min():.0f}–{100 * high.max():.0f}% of the CPU in their timed regions; high is "
            f"{100 * HIGH_LOAD_SHARE:.0f}% or more)")


def comparable_times(data: StudyFrames) -> str | None:
    """Why the study's times cannot be compared with each other; None when they can."""
    counts, unknown = _concurrency_counts(data)
    if unknown:
        return (f"how many cells ran at once is not recorded for {unknown} cell{'s' if unknown != 1 else ''}, so "
                "their times may hold the contention of cells run beside them")
    if len(counts) > 1:
        return f"the cells ran at different concurrency ({_counts_words(counts)})"
    machines = set(_done(data)["hardware"].dropna())
    if len(machines) > 1:
        return f"the cells ran on different machines ({'; '.join(sorted(map(str, machines)))})"
    recorded = next(iter(counts), 1)
    pairs, most = overlaps(data)
    if most > recorded:
        return (f"the cells were recorded as run {recorded} at a time, yet as many as {most} ran at once by their "
                f"recorded starts and ends ({pairs} overlapping pair{'s' if pairs != 1 else ''}): another sweep ran "
                "beside them, so their contention differed")
    if (load := _load_words(data)) is not None:
        return load
    shuffled = _done(data)["order_seed"].notna().all()
    correlation = order_correlation(data)
    if not shuffled and correlation is not None and abs(correlation) >= ORDER_DRIFT_CORRELATION:
        return (f"the cells ran in the grid's order, unshuffled (their start times' rank correlation with the "
                f"points' order is {correlation:+.2f}), so a drift in the machine's speed during the sweep lines up "
                "with the axes")
    return None


def concurrency_line(data: StudyFrames) -> str | None:
    """The report header's line on how many cells ran at once; None before any cell is done."""
    counts, unknown = _concurrency_counts(data)
    if not counts and not unknown:
        return None
    if unknown and not counts:
        return ("Concurrency not recorded: these cells' results do not say how many cells ran at once (files from "
                "before bench sweep recorded it, or cells placed by Ray or SLURM), so their times are not compared.")
    if len(counts) == 1 and not unknown:
        n = next(iter(counts))
        why = comparable_times(data)
        return (f"Cells ran {n} at a time (bench sweep's workers on one machine): "
                + ("their times compare." if why is None else f"their times still do not compare: {why}."))
    missing = f"; not recorded: {unknown} cell{'s' if unknown != 1 else ''}" if unknown else ""
    return (f"Cells ran at different concurrency ({_counts_words(counts)}{missing}): times compare only between "
            "cells that ran alike.")


ALIKE = "every cell ran alike (same machine, same concurrency, no overlap beyond it, no high load, shuffled or " \
        "not in the grid's order)"


def time_sentence(data: StudyFrames, mode: str = "reach") -> Finding:
    """Time to target compared between points, only where every cell ran alike; in budget mode the
    first crossing, with the timed region named as the budget's."""
    why = comparable_times(data)
    if why is not None:
        return Finding(f"Times are not comparable: {why}.")
    finished = data.points[data.points["complete"] > 0]
    column, name = (("median_first_crossing_s", "first crossing of the target (median over the seeds)")
                    if mode == "budget" else ("median_reach_time_s", "median to it"))
    reached = finished[finished["all_reached"] & finished[column].notna()] if mode != "budget" else \
        finished[finished[column].notna()]
    every = "crossed the target at an evaluation" if mode == "budget" else "reached the target"
    if reached.empty:
        timed = finished[finished["median_timed_s"].notna()].sort_values("median_timed_s", kind="stable")
        if timed.empty:
            return Finding(f"Time: no point's every seed {every}, and no timed region was recorded.")
        return Finding(f"Time ({ALIKE}): no point's every seed {every}; median timed regions (the whole run, not a "
                       f"time to the target) run from {fmt.seconds(timed.iloc[0]['median_timed_s'])} "
                       f"({timed.iloc[0]['label']}) to {fmt.seconds(timed.iloc[-1]['median_timed_s'])} "
                       f"({timed.iloc[-1]['label']}).")
    ordered = reached.sort_values([column, "order"], kind="stable")
    fastest = ordered.iloc[0]
    text = (f"Time ({ALIKE}): of the {len(reached)} point{'s' if len(reached) != 1 else ''} whose every seed {every}, "
            f"the fastest is {fastest['label']}, {fmt.seconds(fastest[column])} {name}")
    if len(ordered) > 1:
        slowest = ordered.iloc[-1]
        text += f"; the slowest {slowest['label']}, {fmt.seconds(slowest[column])}"
    if mode == "budget":
        text += (f". The timed region (the whole budget) of {fastest['label']}: "
                 f"{fmt.seconds(fastest['median_timed_s'])} median")
    return Finding(text + ".", [])
