"""One-line errors shared by the format readers."""

from __future__ import annotations

from pathlib import Path

from bench.errors import BenchError


def corrupt_file_error(file: Path | str, reason: BaseException | str, member: str | None = None) -> BenchError:
    """`file` (or `member` inside the archive `file`) cannot be read as what it should be."""
    if isinstance(reason, BaseException):
        reason = str(reason) or type(reason).__name__
    where = f"{file}:{member}" if member else f"{file}"
    return BenchError(f"{where} is truncated or corrupt ({reason}): delete {file} and download or copy it again")
