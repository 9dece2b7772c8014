"""The reporting layer in logs: a line per epoch and one at the end, never one per step."""

import io

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
    assert lines == ["run 1/1 3/6  epoch 1  loss 0.5", "run 1/1 6/6", "run 1/1 6/6  epoch 2  loss 0.5"]
