"""Result files: one JSON per invocation under results/runs/, written atomically, never
colliding, and read back through one reader.

Writing: the first write links a fully written temp file to a fresh name (os.link fails if
the name exists, so nothing already there is overwritten); later writes of the same
invocation replace it atomically. While runs are still going the file says
`interrupted`, so a process killed outright leaves an honest record of what finished.
Every record is validated against the schema (bench/record/schema/result.schema.json)
before it reaches disk.

Reading: a file that cannot be read as a result (bad JSON, not an object, missing keys) is
skipped with a notice through the Reporter. A result of an older schema_version is
migrated to the current one; one of a version this code does not know, and one that
does not fit the result schema, is refused with a BenchError naming the file and the
field, because silently misreading or dropping a result would publish wrong numbers.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

from bench.errors import BenchError
from bench.progress import NullReporter, Reporter
from bench.record.schema import SCHEMA_VERSION, known_version, migrate, problem

STATUSES = ("complete", "interrupted", "diverged", "failed")

# Keys a file must have to be read as a result at all (docs/design.md#4-result-files).
REQUIRED_KEYS = ("schema_version", "id", "status", "suite", "env", "aggregate")


def results_root() -> Path:
    """The results folder: $BENCH_RESULTS or ./results. Invocations go in its runs/."""
    return Path(os.environ.get("BENCH_RESULTS", "results"))


def default_results_dir() -> Path:
    return results_root() / "runs"


def new_run_id() -> str:
    host = re.sub(r"[^A-Za-z0-9]+", "-", socket.gethostname()).strip("-")[:32] or "host"
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{host}-{secrets.token_hex(2)}"


class ResultWriter:
    """Owns one invocation's result file, named `<prefix><run id>.json` (a study puts the cell's
    identity in the prefix, so its files say which cell they hold)."""

    def __init__(self, folder: Path, prefix: str = ""):
        self.folder = Path(folder)
        self.prefix = prefix
        self._check_writable()
        self.path: Path | None = None
        self.run_id = new_run_id()

    def _check_writable(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=self.folder)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            blocker = next((p for p in [self.folder, *self.folder.parents] if p.exists() and not p.is_dir()), None)
            if blocker is not None:  # no permission would help: a file stands where a folder must be
                raise BenchError(f"results folder {self.folder} is not writable: {blocker} is a file, not a folder; "
                                 "choose another with --results DIR") from None
            raise BenchError(f"results folder {self.folder} is not writable ({exc.strerror or exc}); "
                             "fix its permissions or choose another with --results DIR") from None
        remove_orphaned_temps(self.folder)

    def write(self, record: dict[str, Any]) -> Path:
        assert record["status"] in STATUSES, record["status"]
        for _ in range(20):
            record["id"] = self.run_id
            text = json.dumps(_finite(record), indent=1, allow_nan=False, default=_jsonable) + "\n"
            _check_schema(text, self.folder)
            try:
                with staged_file(self.folder, text, ".json") as staged:
                    if self.path is not None:
                        os.replace(staged, self.path)
                        return self.path
                    path = self.folder / f"{self.prefix}{self.run_id}.json"
                    if link_new(staged, path):
                        self.path = path
                        return path
            except OSError as exc:  # a full disk, a folder gone: the temp file is removed, nothing published
                raise ResultNotWritten(f"result file not written in {self.folder} ({exc.strerror or exc}); the "
                                       "files already there are untouched; free some space (or fix the folder) "
                                       "and run again") from None
            self.run_id = new_run_id()  # another invocation has this name: draw again
        raise BenchError(f"could not find a free result name in {self.folder}")


class ResultNotWritten(BenchError):
    """The result file could not be written (a full disk): the runs are lost, which is a failed
    invocation (exit 3), not bad input."""

    exit_code = 3


class InvalidRecord(Exception):
    """bench built a record its own schema refuses: a bug in bench, not the user's input."""


def _check_schema(text: str, folder: Path) -> None:
    """Every writer validates: a file that readers would refuse is never published."""
    invalid = problem(json.loads(text))
    if invalid:
        raise InvalidRecord(f"the result record for {folder} does not fit bench/record/schema/result.schema.json "
                            f"({invalid}); it was not written. This is a bug in bench: the writer and the schema "
                            "disagree, and the schema must describe what the harness writes")


@contextmanager
def staged_file(folder: Path, text: str | bytes, suffix: str) -> Iterator[Path]:
    """A temp file in `folder` holding all of `text`, synced to disk; removed on exit, by
    which time it has been linked or moved to its real name (or given up)."""
    # the prefix names the writer, so that a later writer can remove what a killed one left
    fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix()}{os.getpid()}-", suffix=suffix, dir=folder)
    try:
        # mkstemp's 0600 would make every result private: readable by the group and others where the
        # umask allows, as any file the user writes (a shared cluster's results folder)
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        yield Path(tmp)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def current_umask() -> int:
    """The process's umask, read where Linux shows it (setting it to read it races other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _temp_prefix() -> str:
    return f".tmp-{re.sub(r'[^A-Za-z0-9]+', '-', socket.gethostname()).strip('-')[:32] or 'host'}-"


def remove_orphaned_temps(folder: Path) -> None:
    """Temp files a writer on this machine left when it was killed mid-write (its process is
    gone): never published, never read (readers skip dot files), so they are only clutter."""
    for temp in Path(folder).glob(f"{_temp_prefix()}*"):
        pid = temp.name[len(_temp_prefix()):].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            try:
                temp.unlink()
            except OSError:
                pass  # another writer removed it first


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def link_new(staged: Path, path: Path) -> bool:
    """Gives the staged file the name `path` unless that name is taken: atomic, and it never
    replaces a file (os.link refuses an existing name), so nothing published is overwritten."""
    try:
        os.link(staged, path)
    except FileExistsError:
        return False
    return True


def _finite(value: Any) -> Any:
    """NaN and infinity are not JSON: a diverged loss is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


# ---------------------------------------------------------------- reading ----

def result_files(source: Path) -> list[Path]:
    """A file is itself; a folder holding runs/ means its runs/*.json, any other folder its *.json.

    Dot files are skipped: the result writer's temporary files start with a dot.
    """
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise BenchError(f"{source}: no such file or folder")
    folder = source / "runs" if (source / "runs").is_dir() else source
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


def real_path(path: Path) -> Path:
    """The path with its links followed, or the path itself where they loop (Python's resolve()
    raises RuntimeError on a loop; reading such a file fails, and it is skipped as unreadable)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(path).absolute()


@dataclass(frozen=True)
class LoadedResult:
    path: Path
    record: dict[str, Any]


def load_results(sources: Path | Iterable[Path], reporter: Reporter | None = None) -> list[LoadedResult]:
    """Reads every result file under the given files or folders (each file once).

    A file found in a folder that is not a result is skipped with a notice; a file named
    on its own is the user's choice, so there it is an error."""
    reporter = reporter or NullReporter()
    paths: list[tuple[Path, bool]] = []
    seen: set[Path] = set()
    for source in ([sources] if isinstance(sources, (str, Path)) else sources):
        named = Path(source).is_file()
        for path in result_files(Path(source)):
            if real_path(path) not in seen:
                seen.add(real_path(path))
                paths.append((path, named))
    loaded = []
    first_with_id: dict[str, Path] = {}
    for path, named in paths:
        record, why_not = read_result(path)
        if why_not is None and record["id"] in first_with_id:
            # a copy of a result (ids are unique per invocation): counted twice, it would double its
            # runs in every table and weigh twice in every median
            why_not = f"holds result {record['id']}, as {first_with_id[record['id']]} does (a copy?); counted once"
            named = False
        if why_not is None:
            first_with_id[record["id"]] = path
            loaded.append(LoadedResult(path, record))
        elif named:
            raise BenchError(f"{path}: {why_not}; give a result JSON written by 'bench run'")
        else:
            reporter.notice(f"skipped {path}: {why_not}")
    return loaded


def _not_json(constant: str) -> Any:
    """Python's json reads NaN and Infinity, which are not JSON: bench writes null for them
    (`_finite`), and a NaN accuracy would pass the schema's number type into every median."""
    raise ValueError(f"{constant} is not JSON (bench writes null where a figure is not finite)")


def _finite_float(text: str) -> float:
    """1e999 is a number in JSON and inf in Python: ranked, it beat every finite time."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is past a float's range (bench writes null where a figure is not finite)")
    return value


def _bounded_int(text: str) -> int:
    """No count, seed, size or byte figure bench writes is past 2^63: a longer integer is an
    overflow in every table (export's int64 columns) and no real measurement."""
    value = int(text)
    if abs(value) >= 2**63:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits is past the range of any figure bench writes")
    return value


def _impossible_dates(record: dict[str, Any]) -> str | None:
    """The schema's pattern takes 2026-13-45T99:99:99Z; a reader must not sort by it or export it."""
    for key in ("started_at", "finished_at"):
        try:
            datetime.strptime(record[key], "%Y-%m-%dT%H:%M:%SZ")
        except (TypeError, ValueError):
            return f"its {key} {record[key]!r} is not a date and time"
    return None


def _summary_without_runs(record: dict[str, Any]) -> str | None:
    """The aggregate is a summary of the runs list: a reader that trusted a summary with nothing
    behind it (a complete file with no runs) let `bench check` find no regression in it."""
    runs, counted = record.get("runs") or [], (record.get("aggregate") or {}).get("runs")
    if record["status"] == "complete" and not runs:
        return "it is complete but holds no runs"
    if isinstance(counted, int) and counted != len(runs):
        return f"its aggregate counts {counted} runs but it holds {len(runs)}"
    return None


def read_result(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The record brought to the current schema version, or None and why the file is not a
    result. A result this bench cannot read, or one the schema refuses, is a BenchError."""
    try:
        record = json.loads(path.read_text(), parse_constant=_not_json, parse_float=_finite_float,
                            parse_int=_bounded_int)
    except (OSError, ValueError) as exc:  # ValueError: JSONDecodeError, UnicodeDecodeError, a NaN
        return None, f"not readable as JSON ({type(exc).__name__}: {exc})"
    except RecursionError:  # no result nests that deep: a file made to crash the reader
        return None, "not readable as JSON (nested too deeply)"
    if not isinstance(record, dict):
        return None, "not a result file (the JSON is not an object)"
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        return None, f"not a result file (no {', '.join(repr(k) for k in missing)})"
    if not known_version(record["schema_version"]):
        raise BenchError(f"{path}: schema_version {record['schema_version']!r} is not one this bench reads "
                         f"(it reads 1 to {SCHEMA_VERSION}); upgrade bench or leave the file out")
    record = migrate(record)
    try:
        invalid = problem(record)
    except RecursionError:  # the schema's walk of a value nested deeper than any result's
        invalid = "a value is nested too deeply"
    if invalid:
        raise BenchError(f"{path}: not a valid result file: {invalid} (see bench/record/schema/result.schema.json); "
                         "fix the file or move it out of the results folder")
    impossible = _impossible_dates(record) or _summary_without_runs(record)
    if impossible:
        return None, impossible
    return record, None
