"""The one progress/reporting layer: everything below the CLI talks through a Reporter.

Layers that do long work (downloads, decoding, training) take a Reporter and open
tasks on it; they never print. The CLI passes a RichReporter; tests pass a
NullReporter (or a RecordingReporter to look at what would have been shown).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text


class Task:
    """A handle on one unit of long work; `advance` moves it, `fields` shows live figures."""

    def advance(self, amount: float = 1, **fields: Any) -> None:  # pragma: no cover - interface
        pass

    def update(self, **fields: Any) -> None:  # pragma: no cover - interface
        pass


class Reporter:
    """Interface: `task(...)` opens a progress task, `notice` says one line."""

    @contextmanager
    def task(self, description: str, total: float | None = None, kind: str = "steps") -> Iterator[Task]:
        yield Task()

    def notice(self, message: str) -> None:
        pass


class NullReporter(Reporter):
    """Shows nothing (tests, library use)."""


class RecordingReporter(Reporter):
    """Keeps what would have been shown, for tests."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.tasks: list[dict[str, Any]] = []

    @contextmanager
    def task(self, description: str, total: float | None = None, kind: str = "steps") -> Iterator[Task]:
        record: dict[str, Any] = {"description": description, "total": total, "completed": 0.0, "fields": {}}
        self.tasks.append(record)

        class _Recorded(Task):
            def advance(self, amount: float = 1, **fields: Any) -> None:
                record["completed"] += amount
                record["fields"].update(fields)

            def update(self, **fields: Any) -> None:
                record["fields"].update(fields)

        yield _Recorded()

    def notice(self, message: str) -> None:
        self.notices.append(message)


class _RichTask(Task):
    def __init__(self, progress: Progress, task_id: Any):
        self._progress = progress
        self._id = task_id

    def advance(self, amount: float = 1, **fields: Any) -> None:
        if fields:
            self._progress.update(self._id, advance=amount, info=_format_fields(fields))
        else:  # the figures of the last epoch stay (info=None was drawn as a literal "None")
            self._progress.update(self._id, advance=amount)

    def update(self, **fields: Any) -> None:
        self._progress.update(self._id, info=_format_fields(fields))


def _format_fields(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        parts.append(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}")
    return "  ".join(parts)


class RichReporter(Reporter):
    """Live rich progress bars on stderr; notices as dim lines."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True, highlight=False)

    def _columns(self, kind: str) -> list[Any]:
        if kind == "bytes":
            return [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TimeRemainingColumn()]
        # the time left at the rate so far: the step budget's, so a reach run may end sooner
        return [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]

    @contextmanager
    def task(self, description: str, total: float | None = None, kind: str = "steps") -> Iterator[Task]:
        if not self.console.is_terminal:
            # Without a terminal (CI logs, pipes) live bars are noise: one plain line per step.
            yield _PlainTask(self.console, description, total, kind)
            return
        with Progress(*self._columns(kind), console=self.console, transient=False) as progress:
            task_id = progress.add_task(escape(description), total=total, info="")  # markup: names are text
            yield _RichTask(progress, task_id)

    def notice(self, message: str) -> None:
        self.console.print(f"[dim]{escape(message)}[/dim]")


class _PlainTask(Task):
    """For logs: a line when live figures change (an epoch ends) and when the task completes,
    never one per step."""

    def __init__(self, console: Console, description: str, total: float | None, kind: str):
        self._console, self._description, self._total, self._kind = console, description, total, kind
        self._completed = 0.0
        self._start = time.monotonic()

    def _eta(self) -> str:
        """The time left at the rate so far (of the step budget: a reach run may end sooner)."""
        if self._total is None or self._completed <= 0 or self._completed >= self._total:
            return ""
        rate = self._completed / (time.monotonic() - self._start)
        return f"  eta {_duration((self._total - self._completed) / rate)}"

    def _line(self, fields: dict[str, Any]) -> None:
        if self._kind == "bytes":
            self._console.print(escape(f"{self._description}: {self._completed / 1e6:.1f} MB"))
            return
        of = f"/{self._total:g}" if self._total is not None else ""
        line = f"{self._description} {self._completed:g}{of}  {_format_fields(fields)}".rstrip() + self._eta()
        self._console.print(escape(line))

    def advance(self, amount: float = 1, **fields: Any) -> None:
        was_done = self._total is not None and self._completed >= self._total
        self._completed += amount
        now_done = self._total is not None and self._completed >= self._total
        if fields or (now_done and not was_done):  # the end is said once, however it is reached
            self._line(fields)

    def update(self, **fields: Any) -> None:
        self._line(fields)


# ---------------------------------------------------------------- many jobs at once ----

class _EtaColumn(ProgressColumn):
    """Time left from the board's estimate, counting down between job ends."""

    def render(self, task: Any) -> Text:
        end = task.fields.get("eta_end")
        if end is None:
            return Text("ETA —", style="progress.remaining")
        return Text(f"ETA {_duration(max(0.0, end - time.monotonic()))}", style="progress.remaining")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class _BoardTask(Task):
    def __init__(self, board: "BoardReporter", task_id: Any):
        self._board, self._id = board, task_id
        self.completed = 0.0

    def advance(self, amount: float = 1, **fields: Any) -> None:
        self.completed += amount
        self._board._update_task(self._id, self.completed, fields)

    def update(self, **fields: Any) -> None:
        self._board._update_task(self._id, self.completed, fields)

    def goto(self, completed: float, fields: dict[str, Any]) -> None:
        """Absolute progress (what a worker's events carry)."""
        self.completed = completed
        self._board._update_task(self._id, completed, fields)


class BoardReporter(Reporter):
    """A live board for a batch of jobs (a study's cells): one overall bar (done / running /
    failed, ETA) above the bars of the running jobs' own tasks, which leave when they end.

    Jobs are announced with `job_started` / `job_finished`; their tasks come through the
    ordinary Reporter face (`task`, `notice`), or as events from other processes (`replay`).
    Without a terminal (logs) it prints one line per job start and end and each notice once.
    """

    def __init__(self, console: Console, title: str, total: int, done: int = 0, parallel: int = 1):
        self.console, self.title, self.total, self.parallel = console, title, total, max(1, parallel)
        self.done, self.failed, self.running = done, 0, 0
        self._durations: list[float] = []
        self._started: dict[str, float] = {}
        self._seen: set[str] = set()
        self._remote: dict[tuple[str, Any], _BoardTask] = {}
        self._live_mode = console.is_terminal
        if self._live_mode:
            self._overall = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), _EtaColumn(),
                                     console=console)
            self._overall_id = self._overall.add_task(escape(title), total=total, completed=done, info="", eta_end=None)
            self._runs = Progress(TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TextColumn("{task.fields[info]}"), console=console)
            self._live = Live(Group(self._overall, self._runs), console=console, refresh_per_second=4)
        self._refresh()

    def __enter__(self) -> "BoardReporter":
        if self._live_mode:
            self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live_mode:
            self._live.stop()

    # -- jobs
    def job_started(self, label: str) -> None:
        self.running += 1
        self._started[label] = time.monotonic()
        if not self._live_mode:
            self.console.print(escape(f"{self.title}: started {label}"), soft_wrap=True)
        self._refresh()

    def job_finished(self, label: str, outcome: str, failed: bool = False) -> None:
        self.running = max(0, self.running - 1)
        self.done += 1
        self.failed += failed
        started = self._started.pop(label, None)
        if started is not None:
            self._durations.append(time.monotonic() - started)
        mark = "[red]failed[/red]" if failed else "done"
        self.console.print(f"{escape(self.title)} {self.done}/{self.total}: {mark} {escape(label)}: {escape(outcome)}",
                           soft_wrap=True)
        self._refresh()

    def _refresh(self) -> None:
        if not self._live_mode:
            return
        info = f"running {self.running}" + (f" · [red]failed {self.failed}[/red]" if self.failed else "")
        eta_end = None
        if self._durations:
            # mean time per job this session, over the jobs left, as many at once as run in parallel
            left = self.total - self.done
            eta_end = time.monotonic() + sum(self._durations) / len(self._durations) * left / self.parallel
        self._overall.update(self._overall_id, completed=self.done, info=info, eta_end=eta_end)

    # -- the tasks of running jobs
    def open_task(self, description: str, total: float | None = None) -> _BoardTask:
        task_id = self._runs.add_task(escape(description), total=total, info="") if self._live_mode else None
        return _BoardTask(self, task_id)

    def close_task(self, task: _BoardTask) -> None:
        if self._live_mode:
            self._runs.remove_task(task._id)

    def _update_task(self, task_id: Any, completed: float, fields: dict[str, Any]) -> None:
        if self._live_mode:
            if fields:
                self._runs.update(task_id, completed=completed, info=_format_fields(fields))
            else:
                self._runs.update(task_id, completed=completed)

    @contextmanager
    def task(self, description: str, total: float | None = None, kind: str = "steps") -> Iterator[Task]:
        handle = self.open_task(description, total)
        try:
            yield handle
        finally:
            self.close_task(handle)

    def notice(self, message: str) -> None:
        if message not in self._seen:  # the same notice from every job is said once
            self._seen.add(message)
            self.console.print(f"[dim]{escape(message)}[/dim]", soft_wrap=True)

    def replay(self, event: tuple, label: str) -> None:
        """Shows an event a QueueReporter sent from another process, under the job's label."""
        kind, job = event[0], event[1]
        if kind == "open":
            _, _, task_id, description, total = event
            self._remote[(job, task_id)] = self.open_task(f"{label}: {description}", total)
        elif kind == "progress" and (job, event[2]) in self._remote:
            self._remote[(job, event[2])].goto(event[3], event[4])
        elif kind == "close" and (job, event[2]) in self._remote:
            self.close_task(self._remote.pop((job, event[2])))
        elif kind == "notice":
            self.notice(event[2])

    def forget(self, job: str) -> None:
        """Closes what is left of a finished job's remote tasks."""
        for key in [k for k in self._remote if k[0] == job]:
            self.close_task(self._remote.pop(key))


class PrefixReporter(Reporter):
    """Passes tasks and notices on, each task's description prefixed (a study cell's label)."""

    def __init__(self, inner: Reporter, prefix: str):
        self.inner, self.prefix = inner, prefix

    @contextmanager
    def task(self, description: str, total: float | None = None, kind: str = "steps") -> Iterator[Task]:
        with self.inner.task(f"{self.prefix}: {description}", total, kind) as handle:
            yield handle

    def notice(self, message: str) -> None:
        self.inner.notice(message)


class QueueReporter(Reporter):
    """A worker process's reporter: its tasks and notices as events for the driver's board,
    through `put` (a multiprocessing or Ray queue). Progress is sent at most every
    `interval_s` per task, and whenever its figures change (an epoch ends), and at the end."""

    def __init__(self, put: Callable[[tuple], Any], job: str, interval_s: float = 0.5):
        self.put, self.job, self.interval_s = put, job, interval_s
        self._next_id = 0

    @contextmanager
    def task(self, description: str, total: float | None = None, kind: str = "steps") -> Iterator[Task]:
        task_id = self._next_id
        self._next_id += 1
        self.put(("open", self.job, task_id, description, total))
        reporter = self

        class _Queued(Task):
            completed, last_sent = 0.0, time.monotonic()  # the open event was the last news

            def advance(self, amount: float = 1, **fields: Any) -> None:
                self.completed += amount
                now = time.monotonic()
                if fields or now - self.last_sent >= reporter.interval_s:
                    self.last_sent = now
                    reporter.put(("progress", reporter.job, task_id, self.completed, fields))

            def update(self, **fields: Any) -> None:
                reporter.put(("progress", reporter.job, task_id, self.completed, fields))

        try:
            yield _Queued()
        finally:
            self.put(("close", self.job, task_id))

    def notice(self, message: str) -> None:
        self.put(("notice", self.job, message))
