"""The reporting layer in logs: a line per epoch and one at the end, never one per step."""

import io
import re

from rich.console import Console

from bench.progress import RichReporter


def test_plain_progress_says_epochs_and_the_end_once():
    out = io.StringIO()
    reporter = RichReporter(Console(file=out, force_terminal=False, width=120))
    with reporter.task("run 1/1", total=6) as task:
        for step in range(6):
            task.advance(1)
            if step % 3 == 2:
                task.update(epoch=step // 3 + 1, loss=0.5)
        task.advance(0)  # a zero step after the end must not repeat the last line
    lines = out.getvalue().splitlines()
    assert re.search(r"  eta \d+s$", lines[0]), lines[0]  # mid-run lines say what is left (its value is timing)
    lines = [re.sub(r"  eta \S+$", "", line) for line in lines]
    assert lines == ["run 1/1 3/6  epoch 1  loss 0.5", "run 1/1 6/6", "run 1/1 6/6  epoch 2  loss 0.5"]


def test_board_in_logs_says_each_cell_start_and_end_and_a_notice_once():
    from bench.progress import BoardReporter

    out = io.StringIO()
    board = BoardReporter(Console(file=out, force_terminal=False, width=200), "study s", total=3, done=1)
    with board:
        board.job_started("lr=0.1 seed 0")
        with board.task("lr=0.1 seed 0: run", total=4) as task:
            task.advance(4, epoch=1)
        board.notice("no GPU")
        board.notice("no GPU")
        board.job_finished("lr=0.1 seed 0", "top-1 0.9")
        board.job_finished("lr=0.01 seed 0", "boom", failed=True)
    assert out.getvalue().splitlines() == ["study s: started lr=0.1 seed 0", "no GPU",
                                           "study s 2/3: done lr=0.1 seed 0: top-1 0.9",
                                           "study s 3/3: failed lr=0.01 seed 0: boom"]
    assert (board.done, board.failed, board.running) == (3, 1, 0)


def test_live_board_shows_overall_bar_above_the_run_bars():
    from bench.progress import BoardReporter

    console = Console(file=io.StringIO(), force_terminal=True, width=160, record=True)
    board = BoardReporter(console, "study s", total=4, done=1, parallel=2)
    with board:
        board.job_started("a")
        with board.task("a: run", total=10) as task:
            task.advance(5, epoch=1)
            board._live.refresh()
            screen = console.export_text(clear=False)
        board.job_finished("a", "ok")
    lines = [line for line in screen.splitlines() if line.strip()]
    overall = next(i for i, line in enumerate(lines) if line.startswith("study s"))
    run = next(i for i, line in enumerate(lines) if line.strip().startswith("a: run"))
    assert overall < run and "1/4" in lines[overall] and "running 1" in lines[overall]
    assert "5/10" in lines[run] and "epoch 1" in lines[run]


def test_queue_reporter_events_replay_on_the_board_and_are_throttled():
    from bench.progress import BoardReporter, QueueReporter

    events = []
    reporter = QueueReporter(events.append, "cell-1", interval_s=3600)
    with reporter.task("run", total=100) as task:
        for _ in range(100):
            task.advance(1)  # within the interval: nothing sent
        task.advance(0, epoch=1)  # figures changed: sent
        reporter.notice("hello")
    assert [e[0] for e in events] == ["open", "progress", "notice", "close"]
    assert events[1] == ("progress", "cell-1", 0, 100.0, {"epoch": 1})

    console = Console(file=io.StringIO(), force_terminal=True, width=160, record=True)
    board = BoardReporter(console, "study s", total=1)
    with board:
        for event in events[:2]:
            board.replay(event, "lr=0.1 seed 0")
        board._live.refresh()
        shown = console.export_text(clear=False)
        board.replay(events[3], "lr=0.1 seed 0")
    assert "lr=0.1 seed 0: run" in shown and "100/100" in shown
    assert board._remote == {}  # the close event took the bar away


def test_live_bar_shows_no_none_before_the_first_epoch_ends():
    """Steps without figures (every step before an epoch ends) leave the figures column blank, or
    as the last epoch left it; it showed a literal None until the first epoch ended."""
    out = io.StringIO()
    reporter = RichReporter(Console(file=out, force_terminal=True, width=120))
    with reporter.task("run 1/1", total=6) as task:
        for _ in range(3):
            task.advance(1)
        task.advance(0, epoch=1, loss=0.5)
        task.advance(1)
    text = out.getvalue()
    assert "None" not in text and "epoch 1  loss 0.5" in text
