"""The one progress/reporting layer: everything below the CLI talks through a Reporter.

Layers that do long work (downloads, decoding, training) take a Reporter and open
tasks on it; they never print. The CLI passes a RichReporter; tests pass a
NullReporter (or a RecordingReporter to look at what would have been shown).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


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
        self._progress.update(self._id, advance=amount, info=_format_fields(fields) or None)

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
        return [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[info]}")]

    @contextmanager
    def task(self, description: str, total: float | None = None, kind: str = "steps") -> Iterator[Task]:
        if not self.console.is_terminal:
            # Without a terminal (CI logs, pipes) live bars are noise: one plain line per step.
            yield _PlainTask(self.console, description, total, kind)
            return
        with Progress(*self._columns(kind), console=self.console, transient=False) as progress:
            task_id = progress.add_task(description, total=total, info="")
            yield _RichTask(progress, task_id)

    def notice(self, message: str) -> None:
        self.console.print(f"[dim]{message}[/dim]")


class _PlainTask(Task):
    """For logs: a line when live figures change (an epoch ends) and when the task completes,
    never one per step."""

    def __init__(self, console: Console, description: str, total: float | None, kind: str):
        self._console, self._description, self._total, self._kind = console, description, total, kind
        self._completed = 0.0

    def _line(self, fields: dict[str, Any]) -> None:
        if self._kind == "bytes":
            self._console.print(f"{self._description}: {self._completed / 1e6:.1f} MB")
            return
        of = f"/{self._total:g}" if self._total is not None else ""
        self._console.print(f"{self._description} {self._completed:g}{of}  {_format_fields(fields)}".rstrip())

    def advance(self, amount: float = 1, **fields: Any) -> None:
        was_done = self._total is not None and self._completed >= self._total
        self._completed += amount
        now_done = self._total is not None and self._completed >= self._total
        if fields or (now_done and not was_done):  # the end is said once, however it is reached
            self._line(fields)

    def update(self, **fields: Any) -> None:
        self._line(fields)
