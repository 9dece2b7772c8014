"""Findings for the questions particular studies ask, computed like every finding (bench.studies.
findings puts them after the per-axis comparisons):

- "Is a sparse network better than a small dense one?" Where a study trains dense networks
  narrowed to the sparse networks' active-parameter counts (series "dense, narrowed", named in
  bench.studies.figures), each narrowed network against the best sparse point (chosen on
  validation) at about its count, by the one tie rule on the choice's split (test reported beside),
  then a tally over the counts; and the read-off of the fewest active parameters reaching the
  target, on test, the split the target was set on.
- Per value of an axis whose values are the study's question and differ in cost by design
  (PER_VALUE_AXES: the BPTT modes), one sentence per value at its best point: accuracy, time to
  target and the training's peak memory, so the values compare in one place.
- "Does the larger network pay off at every training-set size?" Where a study crosses
  dataset.train_size with a model axis: at each size, the model values at their own best points
  there (chosen on validation; the tuned axes where they differ named), by the one tie rule, with
  the train top-1 beside the test top-1 where it was measured (the gap is the over-fitting).
- "Does the linked rule beat a fixed value?" In a study ranked by time with linked axes (the
  linear scaling rule: the learning rate linked to the batch size) and off-link points added by
  [[include]], at each value of the group's first axis: the linked point against each other
  point there, by time to target (the mean over the seeds that reached it; the slower mean within
  the faster one's 95% CI ties) and the median steps, then a tally and the median times per arm;
  only where the study's times compare (bench.studies.timing).
"""

from __future__ import annotations

import math

import pandas as pd

from bench import formatting as fmt
from bench.studies.compare import (TARGET_SPLIT, Finding, best_of, chosen_split, finished_points, interval_words, judge,
                                   judge_points, per_value_best, split_words)
from bench.studies.figures import MIN_SEEDS_FOR_CI, StudyFrames, measured_points, smallest_reaching
from bench.studies.study import Study, value_label

# A narrowed width is a whole number of units, so its count only approximates the sparse one's: at
# hidden = 1 the dense 784-1-10 has 805 parameters for the sparse networks' ~1,282 (0.5% active).
# Points further apart than this factor are not compared.
MATCH_FACTOR = 1.7

# axes whose every value is a question of its own (accuracy, time and memory per value)
PER_VALUE_AXES = ("recipe.bptt.mode",)


# ---------------------------------------------------------------- sparse against narrowed dense ----

def _sparse_name(row: pd.Series) -> str:
    """A sparse point as the report's table names it: its series and what it prunes to."""
    if not fmt.missing(row["sparsity_target"]):
        return f"{row['sparsity_series']} to {fmt.percent(row['sparsity_target'], 1)} active"
    return row["sparsity_series"] + ("" if fmt.missing(row["sparsity_l1"]) else f" (l1 {row['sparsity_l1']:g})")


def _dense_name(study: Study, row: pd.Series) -> str:
    widths = ", ".join(f"{axis} = {row[f'axis:{axis}']}" for axis in study.axes if axis.startswith("model."))
    return f"the dense network narrowed to {widths}" if widths else f"the dense network {row['sparsity_series']}"


def _nearest(sparse: pd.DataFrame, count: float) -> list[pd.Series]:
    """Per sparse series, its point nearest `count` active parameters (on a log scale), within MATCH_FACTOR."""
    out = []
    for _, group in sparse.groupby("sparsity_series", sort=False):
        distance = (group["active_params"].astype(float) / count).map(lambda r: abs(math.log(r)))
        if distance.min() <= math.log(MATCH_FACTOR):
            out.append(group.loc[distance.idxmin()])
    return out


def sparsity_readoff(points: pd.DataFrame, target: float) -> Finding:
    """Per series (each sparse method, the narrowed dense networks; `points`: bench.studies.figures'
    measured points): the fewest active parameters whose mean test top-1 reaches the target; and the
    full-width dense baseline. On test, the split the target was set on: a validation mean against a
    target set on test would compare two splits (validation runs higher than test here)."""
    dense = points[points["sparsity_series"] == "dense"]
    series = points[points["sparsity_series"] != "dense"]
    reach = smallest_reaching(series, target, "mean_accuracy")
    lines = [f"{name}: {fmt.count(row['active_params'])} active parameters ({fmt.percent(row['active_fraction'])} "
             f"of its network), {fmt.percent(row['mean_accuracy'])} test top-1 mean over "
             f"{int(row['complete'])} seed{'s' if row['complete'] != 1 else ''}"
             for name, row in reach.items()]
    missed = [s for s in series["sparsity_series"].unique() if s not in reach]
    text = (f"Fewest active parameters that reach the base suite's target {fmt.percent(target)} (mean test top-1 over "
            f"the seeds against a target set on {TARGET_SPLIT}: read off on test, the target's split, so this choice is "
            "made on test), per series: " + ("; ".join(lines) if lines else "none reaches it")
            + (f"; never reached by {', '.join(missed)}" if missed and lines else "") + ".")
    if len(dense):
        row = dense.iloc[0]
        text += (f" Dense baseline: {fmt.percent(row['mean_accuracy'])} test top-1 with "
                 f"{fmt.count(row['active_params'])} parameters.")
    return Finding(text, ["test", TARGET_SPLIT])


def narrowed_dense_sentences(study: Study, data: StudyFrames) -> list[str]:
    """Each narrowed dense network against the best sparse point at about its active-parameter count."""
    points = measured_points(data)
    points = points[points["point"].isin(finished_points(data)["point"])]
    narrowed = points[points["sparsity_series"].str.startswith("dense, narrowed")]
    sparse = points[points["sparsity_method"] != "none"]
    if narrowed.empty or sparse.empty:
        return []
    lines, tally = [], {"better": 0, "tied": 0, "worse": 0, "unjudged": 0}
    for _, dense in narrowed.sort_values("active_params", ascending=False, kind="stable").iterrows():
        matches = _nearest(sparse, float(dense["active_params"]))
        if not matches:
            continue
        sparse_best = best_of(pd.DataFrame(matches), data.chosen_on)
        on, split = data.chosen_on, chosen_split(data)
        higher, lower = ((sparse_best, dense) if sparse_best[on] >= dense[on] else (dense, sparse_best))
        found, interval = judge_points(data, higher, lower)
        sparse_higher = higher is sparse_best
        if found != "unjudged":
            found = "tied" if found == "tied" else ("better" if sparse_higher else "worse")
        tally[found] += 1
        head = (f"At about {fmt.count(dense['active_params'])} active parameters: the best sparse network there, "
                f"{_sparse_name(sparse_best)} ({fmt.count(sparse_best['active_params'])} active; {split_words(data)}), "
                f"against {_dense_name(study, dense)}: mean {split} top-1 {fmt.percent(sparse_best[on])} against "
                f"{fmt.percent(dense[on])}")
        on_test = ("" if split == "test" else f" On test (reported, not compared): "
                   f"{fmt.percent(sparse_best['mean_accuracy'])} against {fmt.percent(dense['mean_accuracy'])}.")
        if found == "unjudged":
            lines.append(Finding(head + f"; no interval (fewer than {MIN_SEEDS_FOR_CI} seeds: "
                                        f"{int(higher['complete'])} at the higher), so the data cannot say which is "
                                        "better." + on_test, [split]))
            continue
        words = {"better": "the sparse network is better", "tied": "tied within noise",
                 "worse": "the narrowed dense network is better"}[found]
        where = "within" if found == "tied" else "below"
        lines.append(Finding(f"{head}; the lower lies {where} the higher one's 95% CI ({fmt.percent(interval[0])}–"
                             f"{fmt.percent(interval[1])}): {words}." + on_test, [split]))
    if not lines:
        return [Finding(f"No narrowed dense network has a sparse point within a factor {MATCH_FACTOR:g} of its "
                        "active parameters: the data cannot compare them.")]
    judged = len(lines) - tally["unjudged"]
    summary = (f"Is a sparse network better than a small dense one? At {len(lines)} matched active-parameter "
               f"count{'s' if len(lines) != 1 else ''} (within a factor {MATCH_FACTOR:g}), the best sparse network is "
               f"better at {tally['better']}, tied within noise at {tally['tied']} and worse at {tally['worse']}"
               + (f"; {tally['unjudged']} not judged (fewer than {MIN_SEEDS_FOR_CI} seeds)" if tally["unjudged"]
                  else "") + ("." if judged else "; the data cannot answer it."))
    return [Finding(summary, [chosen_split(data)]), *lines]


# ---------------------------------------------------------------- one sentence per value ----

def per_value_sentences(study: Study, data: StudyFrames, times_compare: bool) -> list[Finding]:
    """Per value of each PER_VALUE_AXES axis, at its own best point: accuracy, time to target, peak memory."""
    finished = finished_points(data)
    out = []
    for axis in (a for a in PER_VALUE_AXES if a in study.axes):
        others = [a for a in study.axes if a != axis]
        for _, group in sorted(finished.groupby(f"axis:{axis}", sort=False), key=lambda item: item[1]["order"].min()):
            best = best_of(group, data.chosen_on)
            where = ", ".join(f"{a} = {best[f'axis:{a}']}" for a in others)
            memory = best.get("train_peak_memory_mb")
            out.append(Finding(
                f"{axis} = {best[f'axis:{axis}']}, at its best point ({where + '; ' if where else ''}"
                f"{split_words(data)}): mean test top-1 {fmt.percent(best['mean_accuracy'])} "
                f"({interval_words(best['ci_low'], best['ci_high'], int(best['complete']))}); "
                + _time_words(best, times_compare, study.base.mode) + "; training peak memory "
                + (f"{fmt.megabytes(memory)} (median over the seeds)." if not fmt.missing(memory) else "not recorded."),
                [chosen_split(data)]))
    return out


def _time_words(best: pd.Series, times_compare: bool, mode: str = "reach") -> str:
    caveat = "" if times_compare else " (times do not compare across these cells: see the time finding)"
    if mode == "budget":  # the budget's time is no time to the target: the first crossing is
        crossing = best.get("median_first_crossing_s")
        first = ("not every seed crossed the target at an evaluation" if fmt.missing(crossing)
                 else f"median first crossing of the target {fmt.seconds(crossing)}")
        return f"{first}; median timed region (the whole budget) {fmt.seconds(best['median_timed_s'])}{caveat}"
    if fmt.missing(best["reached"]) or not int(best["reached"]):
        return "no seed reached the target"
    time = fmt.time_to_target(best["median_time_s"], None, best["reached"], best["complete"])
    return f"median time to target {time}{caveat}"


# ---------------------------------------------------------------- data size x network size ----

SIZE_AXIS = "dataset.train_size"


def _accuracy_words(row: pd.Series) -> str:
    train = row.get("train_accuracy")
    test = f"test {fmt.percent(row['mean_accuracy'])}"
    return test if fmt.missing(train) else f"{test} (train {fmt.percent(train)})"


def per_size_sentences(study: Study, data: StudyFrames) -> list[Finding]:
    """At each training-set size, the best model value against the runner-up, each at its best point there."""
    models = [axis for axis in study.axes if axis.startswith("model.") and len(study.axes[axis]) > 1]
    if SIZE_AXIS not in study.axes or not models:
        return []
    finished = finished_points(data)
    out, tally = [], {"better": {}, "tied": 0, "worse": 0, "unjudged": 0}
    for size in sorted(study.axes[SIZE_AXIS], reverse=True):
        group = finished[finished[f"axis:{SIZE_AXIS}"] == value_label(size)]
        for axis in models:
            per_value = per_value_best(group, f"axis:{axis}", data.chosen_on)
            if len(per_value) < 2:
                continue
            best, runner = per_value[0], per_value[1]
            found, interval = judge_points(data, best, runner)
            on, split = data.chosen_on, chosen_split(data)
            tuned = [a for a in study.axes if a not in (SIZE_AXIS, axis)
                     and len({best[f"axis:{a}"], runner[f"axis:{a}"]}) > 1]
            own = (f", each at its own best {', '.join(tuned)} there ("
                   + "; ".join(f"{row[f'axis:{axis}']}: " + ", ".join(f"{a} = {row[f'axis:{a}']}" for a in tuned)
                               for row in (best, runner)) + ")") if tuned else ""
            head = (f"At {SIZE_AXIS} = {fmt.count(size)}: {axis} = {best[f'axis:{axis}']} against "
                    f"{runner[f'axis:{axis}']}{own} ({split_words(data)}): mean {split} top-1 "
                    f"{fmt.percent(best[on])} against {fmt.percent(runner[on])}")
            on_test = f"; on test (reported, not compared) {_accuracy_words(best)} against {_accuracy_words(runner)}"
            if found == "unjudged":
                tally["unjudged"] += 1
                out.append(Finding(head + f"; no interval (fewer than {MIN_SEEDS_FOR_CI} seeds){on_test}.", [split]))
                continue
            if found == "better":
                tally["better"][best[f"axis:{axis}"]] = tally["better"].get(best[f"axis:{axis}"], 0) + 1
            else:
                tally[found] += 1
            words = {"better": f"{best[f'axis:{axis}']} is better", "tied": "tied within noise",
                     "worse": f"{runner[f'axis:{axis}']} is better"}[found]
            where = {"better": "below", "tied": "within", "worse": "above"}[found]
            out.append(Finding(f"{head}; {runner[f'axis:{axis}']} lies {where} {best[f'axis:{axis}']}'s 95% CI "
                               f"({fmt.percent(interval[0])}–{fmt.percent(interval[1])}): {words}{on_test}.",
                               [split]))
    if not out:
        return []
    wins = "; ".join(f"{value} better at {n}" for value, n in tally["better"].items()) or "no value better at any"
    summary = (f"Data size x network size: over {len(out)} training-set size{'s' if len(out) != 1 else ''}, {wins}"
               f", tied within noise at {tally['tied']}" + (f", reversed at {tally['worse']}" if tally["worse"]
                                                             else "")
               + (f", not judged at {tally['unjudged']}" if tally["unjudged"] else "") + ".")
    return [Finding(summary, [chosen_split(data)]), *out]


# ---------------------------------------------------------------- a linked rule against fixed values ----

def _reach_times(data: StudyFrames, point: str) -> list[float]:
    """The per-seed time to target of a point's complete cells that reached it."""
    cells = data.cells[(data.cells["point"] == point) & (data.cells["state"] == "done")
                       & (data.cells["status"] == "complete") & (data.cells["reached_target"] == True)]  # noqa: E712
    return [float(v) for v in pd.to_numeric(cells["time_to_target_s"], errors="coerce").dropna()]


def _reach_words(times: list[float], row: pd.Series) -> str:
    seeds = int(row["complete"])
    if not times:
        return f"no seed of {seeds} reached the target"
    steps = "" if fmt.missing(row["median_steps"]) else f", median {fmt.count(row['median_steps'])} steps"
    return f"{fmt.seconds(sum(times) / len(times))} mean ({len(times)} of {seeds} seeds reached it{steps})"


def linked_arm_sentences(study: Study, data: StudyFrames, times_compare: bool = True) -> list[Finding]:
    """At each value of a link group's first axis, its linked point against the others, by time to
    target, by the one tie rule: the slower mean within the faster one's 95% CI ties. Only where
    the study's times compare (bench.studies.timing)."""
    if study.rank != "time" or not study.links:
        return []
    if not times_compare:
        return [Finding(f"The linked values ({'; '.join(' with '.join(g) for g in study.links)}) are not compared "
                        "with the other values by time: the study's times do not compare (see the time Finding).")]
    finished = finished_points(data)
    out, tally, arms = [], {"faster": 0, "tied": 0, "slower": 0, "unjudged": 0}, {}
    shared: list[tuple[str, str, pd.Series]] = []  # linked points, which also belong to an arm of equal values
    for group in study.links:
        lead, partners = group[0], group[1:]
        pairs = {value_label(v): [value_label(study.axes[a][i]) for a in partners]
                 for i, v in enumerate(study.axes[lead])}
        for lead_value, linked_values in pairs.items():
            here = finished[finished[f"axis:{lead}"] == lead_value]
            on_link = here[(here[[f"axis:{a}" for a in partners]] == linked_values).all(axis=1)]
            if on_link.empty:
                continue
            linked = on_link.iloc[0]
            arms.setdefault("the link", {})[lead_value] = linked
            shared.append((lead_value, ", ".join(f"{a} = {v}" for a, v in zip(partners, linked_values)), linked))
            for _, other in here[here["point"] != linked["point"]].iterrows():
                name = ", ".join(f"{a} = {other[f'axis:{a}']}" for a in partners)
                arms.setdefault(name, {})[lead_value] = other
                mine, theirs = _reach_times(data, linked["point"]), _reach_times(data, other["point"])
                linked_faster = bool(mine) and (not theirs or sum(mine) / len(mine) <= sum(theirs) / len(theirs))
                faster, slower = (mine, theirs) if linked_faster else (theirs, mine)
                found, interval = judge(faster, slower)
                head = (f"At {lead} = {lead_value}: the linked "
                        f"{', '.join(f'{a} = {v}' for a, v in zip(partners, linked_values))}, "
                        f"{_reach_words(mine, linked)}, against {name}, {_reach_words(theirs, other)}")
                if interval is None or min(len(mine), len(theirs)) < MIN_SEEDS_FOR_CI:
                    tally["unjudged"] += 1
                    out.append(Finding(head + f": not judged (fewer than {MIN_SEEDS_FOR_CI} seeds reached the "
                                              "target on a side)."))
                    continue
                found = "tied" if found == "tied" else ("faster" if linked_faster else "slower")
                tally[found] += 1
                words = {"faster": "the linked value is faster", "slower": "the linked value is slower",
                         "tied": "tied within noise"}[found]
                out.append(Finding(f"{head}: the slower mean lies {'within' if found == 'tied' else 'above'} the "
                                   f"faster one's 95% CI ({interval[0]:.1f}–{interval[1]:.1f} s): {words}."))
    if not out:
        return []
    summary = (f"The linked values ({'; '.join(' with '.join(g) for g in study.links)}) against the other values at "
               f"the same {', '.join(g[0] for g in study.links)}, by time to target: faster at {tally['faster']}, "
               f"tied within noise at {tally['tied']}, slower at {tally['slower']}"
               + (f", not judged at {tally['unjudged']}" if tally["unjudged"] else "") + ".")
    summary = Finding(summary)
    for lead_value, name, linked in shared:  # e.g. batch 128 at lr 0.05: on the link and in the fixed arm
        if name in arms:
            arms[name][lead_value] = linked
    order = {value_label(v): i for g in study.links for i, v in enumerate(study.axes[g[0]])}
    return [summary, *out, _per_arm_words(arms, order)]


def _per_arm_words(arms: dict[str, dict[str, pd.Series]], order: dict[str, int]) -> Finding:
    def words(row: pd.Series) -> str:
        return "not reached" if fmt.missing(row["median_reach_time_s"]) else fmt.seconds(row["median_reach_time_s"])
    return Finding("Median time to target per arm: " + "; ".join(
        f"{arm}: " + ", ".join(f"{lead}: {words(row)}" for lead, row in
                               sorted(values.items(), key=lambda item: order[item[0]]))
        for arm, values in arms.items()) + ".")
