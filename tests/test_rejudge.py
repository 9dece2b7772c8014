"""Leaderboards judged against today's targets (bench.reports.rejudge): no row ranked under a
target its suite no longer has; unchanged budget recipes re-judged from their accuracies; the
rest listed apart as superseded."""

from __future__ import annotations

from pathlib import Path

from bench.record.files import load_results
from bench.reports.frame import frames
from bench.reports.leaderboard import build_boards
from bench.reports.rejudge import same_recipe, todays_suites

RESULTS = Path(__file__).resolve().parent.parent / "results" / "runs"


def _boards():
    results = load_results(RESULTS)
    return build_boards(frames(results), {r.record["id"]: r.record for r in results}, todays_suites())


def test_no_committed_row_is_ranked_under_a_target_its_suite_no_longer_has():
    suites = todays_suites()
    boards, superseded = _boards()
    for board in boards:
        if board.suite in suites and len(board.ranked):
            assert board.target == suites[board.suite].target, board.title
    # cifar10-lenet5 at 36% (its recipe changed since) is apart, with why
    old = superseded[superseded["suite"] == "cifar10-lenet5"]
    assert len(old) and set(old["today"]) == {suites["cifar10-lenet5"].target} and old["why"].str.len().min() > 10


def test_an_unchanged_budget_recipe_is_rejudged_from_its_accuracies():
    boards, _ = _boards()
    lenet5 = next(b for b in boards if b.suite == "fashion-mnist-lenet5")
    rejudged = lenet5.ranked[lenet5.ranked["rejudged_from"].notna()]
    assert len(rejudged) and set(rejudged["rejudged_from"]) == {0.5}
    # today's 86.4% judged on the recorded accuracies: each ranked row's mean is at or above it
    assert (lenet5.ranked["mean_accuracy"] >= 0.864).all()
    assert all(b.source.startswith(("derived from", "goal:", "reference:", "none:")) for b in boards)


def test_the_recipe_compared_leaves_out_what_does_not_train():
    old = {"name": "a", "target": 0.5, "target_source": None, "recipe": {"lr": 0.1}, "runs": 2}
    assert same_recipe(old, {**old, "target": 0.9, "target_source": "goal: x", "runs": 5})
    assert not same_recipe(old, {**old, "recipe": {"lr": 0.2}})
    assert same_recipe(old, {**old, "recipe": {"lr": 0.1, "new_key": 1}})  # a key added since, with its default
