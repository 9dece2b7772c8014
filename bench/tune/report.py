"""The search's report: RESULTS/tune/<suite>/REPORT.md and report.html, laid out and written by
bench.reports as the studies' are. Its numbers come from the stored study (each trial's outcome,
time and validation accuracy, which its result file holds too) and the verification's result
files; each names its split: the trials' accuracies are validation top-1, the verification's test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.reports.pages import write_report
from bench.reports.render import Bullets, Headline, Part, Plot, ReportTable

MIN_FOR_IMPORTANCES = 5  # trials that reached the target, before Optuna's fANOVA is asked to apportion their times
COLOURS = {"reached": "#2a9d4b", "pruned": "#e08a00", "not reached": "#8c8c8c", "failed": "#c0392b",
           "diverged": "#c0392b"}


def _fmt(value: Any, spec: str = ".4g") -> str:
    if value is None:
        return "—"
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def trials_table(search: Any) -> ReportTable:
    keys = [d.key for d in search.space.dimensions]
    table = ReportTable(title="Trials", columns=["trial", "outcome", "time (s)", "time limit (s)",
                                                 "validation top-1", "seed", *keys], anchor="trials",
                        note="Time: the timed region (to the target where reached, to the stop where pruned); "
                             "top-1 on the validation split (the trials never read the test split). The suite's own "
                             "recipe, where the space holds it, is the first trial (default).")
    for trial in search.study.trials:
        attrs = trial.user_attrs
        outcome = attrs.get("outcome", trial.state.name.lower())
        number = f"{trial.number} (default)" if attrs.get("default_recipe") else str(trial.number)
        table.rows.append([number, outcome, _fmt(attrs.get("timed_s"), ".2f"),
                           _fmt(attrs.get("time_limit_s"), ".2f"), _fmt(attrs.get("validation_accuracy"), ".4f"),
                           _fmt(attrs.get("seed"), "d"), *[_fmt(trial.params.get(k)) for k in keys]])
        table.row_styles.append({"reached": "good", "failed": "bad", "diverged": "bad"}.get(outcome, "muted"))
    return table


def history_plot(search: Any) -> Plot | None:
    """Time per trial, coloured by outcome (pruned ones marked), with the best time so far."""
    from matplotlib.figure import Figure

    from bench.reports.plots import figure_png

    trials = [t for t in search.study.trials if t.user_attrs.get("timed_s") is not None]
    if not trials:
        return None
    figure = Figure(figsize=(7.5, 4))
    ax = figure.add_subplot()
    for outcome, colour in COLOURS.items():
        mine = [t for t in trials if t.user_attrs.get("outcome") == outcome]
        if mine:
            ax.scatter([t.number for t in mine], [t.user_attrs["timed_s"] for t in mine], color=colour, label=outcome,
                       marker="x" if outcome == "pruned" else "o", zorder=3)
    best, line = None, []
    for t in sorted(search.study.trials, key=lambda t: t.number):
        if t.user_attrs.get("outcome") == "reached" and search.objective == "time":
            best = t.value if best is None else min(best, t.value)
        line.append((t.number, best))
    if any(b is not None for _, b in line):
        ax.step([n for n, _ in line], [b if b is not None else float("nan") for _, b in line], where="post",
                color="#2a6fb0", label="best time to target so far (each later trial's limit)")
    ax.set_xlabel("trial")
    ax.set_ylabel("timed seconds (validation)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    figure.tight_layout()
    return Plot(name="trials.png", caption=f"{search.suite.name}: time per trial (to the target, or to the stop: "
                                           "pruned trials are crosses) and the best time so far", png=figure_png(figure))


def importances(search: Any) -> Part:
    import optuna

    complete = [t for t in search.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < MIN_FOR_IMPORTANCES or len(search.space.dimensions) < 2:
        return (f"Parameter importances: too few trials to estimate ({len(complete)} reached the target; fANOVA "
                f"over fewer than {MIN_FOR_IMPORTANCES} would split the variance of a handful of times among "
                f"{len(search.space.dimensions)} parameters, which says nothing).")
    try:
        found = optuna.importance.get_param_importances(search.study)
    except (RuntimeError, ValueError) as exc:
        return f"Parameter importances: not estimated ({exc})."
    table = ReportTable(title="Parameter importances", columns=["parameter", "importance"], anchor="importances",
                        note=f"Optuna's fANOVA over the {len(complete)} trials that reached the target: the share of "
                             "the variance of their time each parameter explains (few trials: a rough guide).")
    for key, value in found.items():
        table.rows.append([key, f"{value:.2f}"])
        table.row_styles.append("")
    return table


def verification_parts(verification: dict[str, Any] | None, origin: dict[str, Any] | None) -> list[Part]:
    if verification is None:
        return ["No trial reached the target on the validation split: there is no recipe to verify."]
    tuned, default, ratio = verification["tuned"], verification["default"], verification["speedup"]
    table = ReportTable(title="Best recipe against the default (test split)", anchor="verification",
                        columns=["recipe", "verdict", "mean top-1 (test)", "95% CI", "median time to target (s)",
                                 "reached", "result file"],
                        note=f"Ordinary runs, interleaved tuned/default, on seeds {tuned['seeds']} (judged seeds no "
                             "trial used).")
    for label, side in (("tuned", tuned), ("default", default)):
        ci = side.get("accuracy_ci95")
        table.rows.append([label, _fmt(side["verdict"]), _fmt(side["mean_accuracy"], ".4f"),
                           f"{ci[0]:.4f}–{ci[1]:.4f}" if ci else "—", _fmt(side["median_time_s"], ".2f"),
                           f"{side['reached_runs']}/{side['runs']}", Path(side["file"]).name if side["file"] else "—"])
        table.row_styles.append("good" if side["verdict"] == "PASS" else "bad")
    if ratio["ratio"] is None:
        speed = "no speed-up measured: a side never reached the target"
    elif ratio["ci95"] is None:
        speed = f"speed-up {ratio['ratio']:.2f}x (no interval: {ratio['pairs']} seeds where both reached the target)"
    else:
        speed = (f"speed-up {ratio['ratio']:.2f}x, 95% interval {ratio['ci95'][0]:.2f}x–{ratio['ci95'][1]:.2f}x "
                 f"(paired bootstrap over {ratio['pairs']} seeds)")
    share = verification.get("competing_cpu_share")
    load = f"; other processes took {share:.0%} of the machine's CPU meanwhile" if share is not None else ""
    return [Headline(f"Verified: the tuned recipe {tuned['verdict']}; {speed}{load}.", anchor="speedup"), table]


def confirmation_table(confirmation: dict[str, Any] | None) -> ReportTable | None:
    if not confirmation:
        return None
    seeds = confirmation["seeds"]
    table = ReportTable(title="Confirmation (validation split)", anchor="confirmation",
                        columns=["trial", "trial's time (s)", "verdict", "mean top-1 (validation)",
                                 "median time to target (s)", "reached", "result file"],
                        note=f"The fastest trials again, interleaved, on seeds {seeds[0]}–{seeds[-1]} (none a trial's "
                             f"or a verdict's), judged on validation against the trials' target; chosen: "
                             f"{confirmation['rule']}.")
    for row in confirmation["rows"]:
        table.rows.append([str(row["trial"]), _fmt(row["trial_value"], ".2f"), _fmt(row["verdict"]),
                           _fmt(row["mean_accuracy"], ".4f"), _fmt(row["median_time_s"], ".2f"),
                           f"{row['reached_runs']}/{row['runs']}", _fmt(row["file"])])
        table.row_styles.append("good" if row["trial"] == confirmation["chosen"] else "muted")
    return table


def summary_lines(search: Any, origin: dict[str, Any] | None) -> list[Part]:
    import optuna

    states = [t.state for t in search.study.trials]
    lines = [f"Suite {search.suite.name} (target {search.suite.target}, source {search.suite.target_source}); "
             f"objective: {'time to target' if search.objective == 'time' else 'accuracy under the budget'}; "
             f"{len(states)} trials: {states.count(optuna.trial.TrialState.COMPLETE)} reached, "
             f"{states.count(optuna.trial.TrialState.PRUNED)} pruned or short of the target, "
             f"{states.count(optuna.trial.TrialState.FAIL)} failed. Storage: {search.storage_text}.",
             f"Trials judged on {search.validation_size} validation images held out of training, against "
             f"{search.trial_target:g} ({_target_source(search)}); seeds 2,000,000 + the trial number; sampler "
             "Optuna TPE (multivariate, constant liar)."]
    if origin is not None:
        share = origin.get("competing_cpu_share")
        lines.append(f"Machine: {origin['machine']['summary']} ({origin['machine']['hostname']}); search "
                     f"{origin['search_s']:.0f} s" + (f", other processes took {share:.0%} of its CPU meanwhile"
                                                     if share is not None else "") + f"; code {origin['commit'][:12]}.")
    return lines


def _target_source(search: Any) -> str:
    found = search.study.user_attrs.get("validation_target")
    source = found["source"] if found else "the suite's target"
    return source + (f", plus a margin of {search.margin:g}" if search.margin else "")


def write_tune_report(search: Any, verification: dict[str, Any] | None,
                      origin: dict[str, Any] | None) -> tuple[Path, Path]:
    parts: list[Part] = summary_lines(search, origin)
    parts += verification_parts(verification, origin)
    if verification is not None:
        parts.append(Bullets("Tuned suite", [verification["tuned_suite"]], anchor="tuned-suite"))
        if (table := confirmation_table(verification.get("confirmation"))) is not None:
            parts.append(table)
    plot = history_plot(search)
    if plot is not None:
        parts.append(plot)
    parts.append(trials_table(search))
    parts.append(importances(search))
    markdown, page = write_report(search.folder, f"Tuning {search.suite.name}", parts, ("REPORT.md", "report.html"))
    return page, markdown
