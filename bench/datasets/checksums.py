"""Checksums of source files: md5 to verify downloads, sha256 to record where pixels came from."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from bench.errors import BenchError

_CHUNK = 1 << 20


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError as error:
        raise BenchError(f"cannot read {path}: {error.strerror or error}") from None
    return digest.hexdigest()


def manifest_sha256(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 of a set of files: the sha256 of their `sha256sum`-style manifest, sorted by name.

    A folder or a group of files has no single archive to hash; this stands in for one and
    is reproducible with `sha256sum <files> | sort -k2 | sha256sum` from the same folder.
    """
    lines = "".join(f"{digest}  {name}\n" for name, digest in sorted(entries))
    return hashlib.sha256(lines.encode()).hexdigest()


def set_aside(path: Path, named_after: Path | None = None) -> Path | None:
    """Renames a bad file to `<name>.bad` (or `<name>.N.bad` if taken) so it is never used again.

    `named_after` names the result after another path (a download's temp file is set aside
    under the name it was meant to have). Never deletes: a user may want to inspect what came
    down. Returns the new path, or None when the file could not be moved (read-only folder).
    """
    like = named_after or path
    candidates = [like.with_name(like.name + ".bad")]
    candidates += [like.with_name(f"{like.name}.{i}.bad") for i in range(1, 1000)]
    for target in candidates:
        if target.exists():
            continue
        try:
            path.rename(target)
        except OSError:
            return None
        return target
    return None


def md5_mismatch_error(path: Path, actual: str, expected: str, what_to_do: str, *,
                       named_after: Path | None = None, what: str | None = None) -> BenchError:
    """Sets the file aside and builds the one-line error that says where it went."""
    moved = set_aside(path, named_after)
    where = f"moved it aside to {moved}" if moved else f"could not move it aside (read-only?); do not use {path}"
    return BenchError(f"{what or path} has md5 {actual}, expected {expected}: the file is corrupt or not the "
                      f"published one; {where}. {what_to_do}")


def verify_md5(path: Path, expected: str, what_to_do: str) -> None:
    actual = file_digest(path, "md5")
    if actual != expected:
        raise md5_mismatch_error(path, actual, expected, what_to_do)
