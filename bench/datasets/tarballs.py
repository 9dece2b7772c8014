"""Reading tar archives (plain, .gz, .xz) in one forward pass, with progress and one-line errors.

Compressed tars cannot seek cheaply (going back in a .gz or .xz means decompressing again
from the start), so members are read in archive order in tarfile's stream mode and the
caller picks what it needs.
"""

from __future__ import annotations

import lzma
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from bench.datasets.errors import corrupt_file_error
from bench.errors import BenchError
from bench.progress import Reporter, Task

# What a truncated or damaged archive raises from tarfile, gzip (BadGzipFile is an OSError)
# and lzma while it is being read.
ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError)

_READ_SIZE = 1 << 16


def looks_like_tar(path: Path) -> bool:
    return path.name.endswith((".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz"))


class _CountingFile:
    """A read-only file that advances a progress task by the (compressed) bytes read."""

    def __init__(self, handle, task: Task):
        self._handle, self._task = handle, task
        self.name = handle.name

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._task.advance(len(data))
        return data


def iter_tar_files(path: Path, reporter: Reporter, description: str) -> Iterator[tuple[str, bytes]]:
    """Yields (member name without a leading './', contents) for each regular file, in archive order."""
    try:
        handle = open(path, "rb")
        size = path.stat().st_size
    except OSError as error:
        raise BenchError(f"cannot read {path}: {error.strerror or error}") from None
    with handle, reporter.task(description, total=size, kind="bytes") as task:
        try:
            archive = tarfile.open(fileobj=_CountingFile(handle, task), mode="r|*", bufsize=_READ_SIZE)
        except ARCHIVE_ERRORS as error:
            raise corrupt_file_error(path, f"not a readable tar archive: {error}") from None
        with archive:
            members = iter(archive)
            while True:
                try:
                    member = next(members, None)
                    if member is None:
                        break
                    if not member.isfile():
                        continue
                    extracted = archive.extractfile(member)
                    data = extracted.read() if extracted is not None else b""
                except ARCHIVE_ERRORS as error:
                    raise corrupt_file_error(path, error) from None
                if len(data) != member.size:  # tarfile pads a cut-off last member silently in some versions
                    raise corrupt_file_error(path, f"{member.name} is cut off")
                name = member.name[2:] if member.name.startswith("./") else member.name
                yield name, data
