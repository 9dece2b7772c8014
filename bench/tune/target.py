"""The target trials reach on the validation split: the suite's own target, calibrated on validation.

A suite's calibrated target is a rule (the 0.1-quantile of the default recipe's final test
accuracies on seeds the verdicts never use, bench calibrate). The validation split is not the
test split: on fashion-mnist-smoke its images (drawn from the training set) came out ~0.015-0.02
easier than the test images, so recipes that just reached the stated target on validation fell
short on test. So the same rule is applied to the same default recipe on the same seeds, judged
on validation (the test split unread): that is the target's counterpart on validation. A target
from a reference (no rule to replay) is taken as stated. --margin is added on top. Computed once
per study (its runs in RESULTS/tune/<suite>/calibrate/) and kept in the study, so a resumed
search judges its trials alike.
"""

from __future__ import annotations

from typing import Any

ATTR = "validation_target"


def stated(search: Any) -> dict[str, Any]:
    return {"target": search.suite.target, "source": f"stated: the suite's target ({search.suite.target_source})"}


def validation_target(search: Any, reporter: Any) -> dict[str, Any]:
    """The suite's calibration rule replayed on validation, or the stated target; kept in the study."""
    known = search.study.user_attrs.get(ATTR)
    if known is not None:
        return known
    import optuna

    waiting = optuna.trial.TrialState.WAITING  # the suite's own recipe, queued as the first trial
    if any(t.state != waiting for t in search.study.trials):  # a study from before this step: the stated target
        found = stated(search)
    else:
        found = _calibrated(search, reporter)
    search.study.set_user_attr(ATTR, found)
    return found


def _calibrated(search: Any, reporter: Any) -> dict[str, Any]:
    from bench.calibrate import calibration_run_suite
    from bench.record.calibration import implied_target, read_calibration, seed_span
    from bench.runner import run_invocation
    from bench.suites import suite_with

    calibration = read_calibration(search.suite)
    if calibration is None or calibration["rule"].get("kind") != "quantile":
        return stated(search)
    suite = calibration_run_suite(suite_with(search.suite.path, {**search.suite.overrides, **search.fixed(None)},
                                             f"{search.suite.path} (the target's calibration on validation)"))
    accuracies, files = [], []
    for seed in calibration["seeds"]:  # the calibration's own seeds, whatever their spacing
        record, path = run_invocation(suite, runs=1, seed=seed, device_choice=search.device,
                                      results_dir=search.folder / "calibrate", reporter=reporter,
                                      command=["bench", "tune", search.suite.name, "(target on validation)"])
        files.append(path.name if path else None)
        accuracies += [r["accuracy"] for r in record["runs"] if r["status"] == "complete"]
    if len(accuracies) < 2:
        from bench.errors import EXIT_BROKEN, BenchError

        error = BenchError(f"{search.suite.name}: the default recipe's runs on validation (seeds "
                           f"{seed_span(calibration['seeds'])}) did not complete; see {search.folder / 'calibrate'}")
        error.exit_code = EXIT_BROKEN
        raise error
    target, rule = implied_target(accuracies, calibration["rule"]["quantile"])
    return {"target": target, "accuracies": accuracies, "seeds": calibration["seeds"], "files": files,
            "source": f"calibrated on validation: {rule['text']} (the default recipe, seeds "
                      f"{seed_span(calibration['seeds'])}, as {calibration['path'].rsplit('/', 1)[-1]} on test)"}
