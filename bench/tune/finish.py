"""After the trials: the best trial made a tuned suite, verified beside the default, the report
rewritten, and the closing lines (the tuned recipe, the verified speed-up with its interval)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from bench.errors import EXIT_BROKEN, EXIT_FAIL, EXIT_OK


def abandon(search: Any) -> None:
    """Trials asked but never told (Ctrl-C, an error of the driver) are told FAIL, so the stored
    study holds no trial RUNNING for ever."""
    import optuna

    for number, trial in list(search.live.items()):
        trial.set_user_attr("outcome", "failed")
        trial.set_user_attr("error", "the search ended before this trial finished")
        search.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        search.live.pop(number)


def machine() -> dict[str, Any]:
    import torch

    from bench.env import fingerprint

    env = fingerprint(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    cpu = env.get("cpu") or {}
    summary = f"{cpu.get('model')} ({cpu.get('cores')} cores, {cpu.get('isa')})"
    if env.get("gpu"):
        gpu = env["gpu"]
        summary = f"{gpu.get('name', gpu) if isinstance(gpu, dict) else gpu} on {summary}"
    return {"summary": summary, "hostname": env.get("hostname"), "torch": env.get("torch")}


def tuned_from(search: Any, best: Any, search_s: float, load_share: float | None) -> dict[str, Any]:
    from bench.env import code_version

    import optuna

    states = [t.state for t in search.study.trials]
    code = code_version()
    origin = {"suite": search.suite.name, "storage": search.storage_text, "study": search.study.study_name, "trials": len(states),
            "complete": states.count(optuna.trial.TrialState.COMPLETE),
            "pruned": states.count(optuna.trial.TrialState.PRUNED),
            "failed": states.count(optuna.trial.TrialState.FAIL), "best_trial": best.number,
            "objective": search.objective, "judged_on": f"validation ({search.validation_size} training images held out)",
            "trial_target": search.trial_target,
            "trial_target_source": (search.study.user_attrs.get("validation_target") or {}).get("source"),
            "sampler": "optuna TPESampler (multivariate, constant liar)", "space": search.space.describe(),
            "machine": machine(), "commit": code.get("git_commit") or "unknown",
            "commit_dirty": bool(code.get("git_dirty")), "search_s": round(search_s, 1),
            "competing_cpu_share": None if load_share is None else round(load_share, 3)}
    # TOML has no null: a figure not measured (the load of trials placed on Ray or SLURM machines) is left out
    return {key: value for key, value in origin.items() if value is not None}


def conclude(args: Any, search: Any, console: Console, reporter: Any, search_s: float,
             load_share: float | None) -> int:
    import optuna

    from bench.tune.output import write_tuned_suite
    from bench.tune.search import decoded, shown
    from bench.tune.report import write_tune_report
    from bench.tune.verify import verify

    complete = search.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        page, markdown = write_tune_report(search, None, None)
        console.print(escape(f"no trial reached {search.trial_target} on validation: nothing to verify; report "
                             f"{markdown}"))
        return EXIT_BROKEN
    best, confirmation = search.study.best_trial, None
    if args.confirm_runs:
        from bench.tune.confirm import confirm

        console.print(escape(f"confirming the {min(args.confirm_top, len(complete))} fastest trials on "
                             f"{args.confirm_runs} more seeds each (validation)"))
        best, confirmation = confirm(search, args.confirm_top, args.confirm_runs, reporter)
    values = decoded(search, best)
    origin = tuned_from(search, best, search_s, load_share)
    if confirmation is not None:
        origin["confirmation"] = {"seeds": confirmation["seeds"], "candidates": [r["trial"] for r in confirmation["rows"]],
                                  "rule": confirmation["rule"]}
    path = write_tuned_suite(search.suite, values, origin, args.suite_dir or search.folder)
    console.print(escape(f"chosen: trial {best.number} ({_value(search, best.value)} on validation); tuned suite "
                         f"{path}; verifying on {args.verify_runs} seeds from {args.verify_seed} beside the default"))
    command = ["bench", "tune", args.suite, "(verification)"]
    verification = verify(path, str(search.suite.path), args.verify_runs, args.verify_seed, search.folder / "verify",
                          args.device, reporter, command)
    verification.update(trial=best.number, confirmation=confirmation, tuned_suite=shown(path), search_s=origin["search_s"],
                        search_competing_cpu_share=origin.get("competing_cpu_share"))
    search.study.set_user_attr(f"verification_{best.number}", verification)
    search.study.set_user_attr("verification", verification)  # the latest: what --report-only shows
    page, markdown = write_tune_report(search, verification, origin)
    console.print(escape(closing(search, values, verification)))
    console.print(escape(f"report: {markdown} and {page}"))
    verdict = verification["tuned"]["verdict"]
    return EXIT_OK if verdict == "PASS" else EXIT_FAIL if verdict == "FAIL" else EXIT_BROKEN


def _value(search: Any, value: float) -> str:
    return f"{value:.2f} s to target" if search.objective == "time" else f"top-1 {value:.4f}"


def closing(search: Any, values: dict[str, Any], verification: dict[str, Any]) -> str:
    tuned, default, ratio = verification["tuned"], verification["default"], verification["speedup"]
    recipe = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in values.items())
    interval = (f" (95% interval {ratio['ci95'][0]:.2f}x to {ratio['ci95'][1]:.2f}x over {ratio['pairs']} seeds)"
                if ratio["ci95"] else f" (no interval: {ratio['pairs']} seeds where both reached the target)")
    speed = f"{ratio['ratio']:.2f}x{interval}" if ratio["ratio"] else "none measured (a side never reached the target)"
    return (f"tuned recipe: {recipe}\nverified on the test split, seeds {tuned['seeds']}: tuned {tuned['verdict']} "
            f"(mean top-1 {_acc(tuned)}), median {_time(tuned)}; default {default['verdict']} (mean top-1 "
            f"{_acc(default)}), median {_time(default)}\nspeed-up over the default: {speed}")


def _acc(side: dict[str, Any]) -> str:
    if side["mean_accuracy"] is None:
        return "n/a"
    ci = side.get("accuracy_ci95")
    return f"{side['mean_accuracy']:.4f}" + (f" (95% CI {ci[0]:.4f}–{ci[1]:.4f})" if ci else "")


def _time(side: dict[str, Any]) -> str:
    return f"{side['median_time_s']:.2f} s to target" if side["median_time_s"] is not None else "target not reached"


def report_only(search: Any, console: Console) -> int:
    """Rewrites the report from the stored study, its latest verification and the tuned suite's
    tuned_from (after a change to the report's code, say); runs nothing."""
    import tomllib
    from pathlib import Path

    from bench.errors import BenchError
    from bench.tune.report import write_tune_report

    from bench.tune.target import ATTR

    if ATTR in search.study.user_attrs:
        search.base_target = search.study.user_attrs[ATTR]["target"]
    if not search.study.trials:
        raise BenchError(f"--storage {search.storage_text}: the study {search.study.study_name} has no trial yet; "
                         "run the search first")
    attrs = search.study.user_attrs
    verification = attrs.get("verification") or next(
        (attrs[k] for k in sorted(attrs, reverse=True) if k.startswith("verification_")), None)
    origin = None
    if verification is not None and Path(verification["tuned_suite"]).is_file():
        origin = tomllib.loads(Path(verification["tuned_suite"]).read_text(encoding="utf-8")).get("tuned_from")
    page, markdown = write_tune_report(search, verification, origin)
    console.print(escape(f"wrote {markdown} and {page} ({len(search.study.trials)} trials)"))
    return EXIT_OK
