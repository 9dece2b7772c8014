"""Every place a command was told to write (`--out`, `--save-weights`, `--mllog`, `--results`),
checked before any work: one line naming the flag and the path, exit 2, nothing written.

Paths are resolved against the working directory first, so `--out results/x.csv` is compared
with the results folder as the folder it is, not as a string. Writability is probed by
creating (and removing) a temporary file where the file would go: permission bits say nothing
to root, and a place like /proc refuses files whatever its bits say.
"""

from __future__ import annotations

import argparse
import os
import stat
import tempfile
from pathlib import Path

from bench.errors import BenchError


# Past the file system's limits (255 bytes a name, 4096 a path on Linux) a path is an OSError deep
# in a write, after the work; these leave room for the names bench adds (ids, _N, .json; docs/limits.md)
MAX_NAME_BYTES = 200
MAX_PATH_BYTES = 3800


def path_length_problem(text: str) -> str | None:
    """Why a path is too long for the file system once bench adds its names, or None."""
    if len(os.fsencode(text)) > MAX_PATH_BYTES:
        return f"a path of {len(os.fsencode(text)):,} bytes is past {MAX_PATH_BYTES:,}"
    longest = max(Path(text).parts, key=lambda part: len(os.fsencode(part)), default="")
    if len(os.fsencode(longest)) > MAX_NAME_BYTES:
        return f"the name {longest[:40]}... ({len(os.fsencode(longest))} bytes) is past {MAX_NAME_BYTES} bytes"
    return None


def path_argument(text: str) -> Path:
    """argparse's type for a path option: an empty one (`--results ""`, an unset shell variable)
    would be Path(""), the working directory, and the files would land there unasked."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder name")
    too_long = path_length_problem(text)
    if too_long:
        raise argparse.ArgumentTypeError(f"{too_long} (the file system's limit); give a shorter path")
    return Path(text)


def resolved(path: Path) -> Path:
    """The absolute path with links and '..' resolved (what is there is followed; what is not yet
    there is kept as given, relative to the working directory)."""
    return Path(os.path.abspath(path)).resolve()


def _probe(folder: Path, flag: str, path: Path) -> None:
    try:
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise BenchError(f"{flag} {path}: cannot write in {folder} ({exc.strerror or exc}); "
                         "choose a place you can write") from None


def _not_a_regular_file(path: Path) -> str:
    """What stands at `path` when it is there and is no regular file ("" otherwise); a link is
    not followed."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return ""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):  # a folder is refused elsewhere, with its own words
        return ""
    return {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket",
            stat.S_IFCHR: "a device", stat.S_IFBLK: "a device"}.get(stat.S_IFMT(mode), "a special file")


def _nearest_existing(path: Path, flag: str, shown: Path) -> Path:
    """The deepest existing folder on the way to `path` (which need not exist); an existing
    file where a folder is needed is refused."""
    for place in [path, *path.parents]:
        if place.exists():
            if not place.is_dir():
                where = "is a file" if place == path else f"has a file on its way ({place})"
                raise BenchError(f"{flag} {shown} {where}, not a folder; give a folder")
            return place
    return Path(path.anchor)


def check_folder(path: Path, flag: str) -> Path:
    """A folder that will be created as needed: every existing part of it a folder, the deepest
    existing one writable. Nothing is created here."""
    target = resolved(path)
    _probe(_nearest_existing(target, flag, path), flag, path)
    return target


def check_file(path: Path, flag: str, *, overwrite: bool, refused_inside: Path | None = None,
               refused_what: str = "") -> Path:
    """A file to write: its folder exists and takes files, it is no folder, it is not inside
    `refused_inside` (and, unless `overwrite`, no file has that name yet)."""
    target = resolved(path)
    if not target.parent.is_dir():
        if target.parent.exists() or any(p.exists() and not p.is_dir() for p in target.parent.parents):
            raise BenchError(f"{flag} {path}: {target.parent} is not a folder; give a file in a folder")
        raise BenchError(f"{flag} {path}: the folder {target.parent} does not exist; create it first")
    if target.is_dir():
        raise BenchError(f"{flag} {path} is a folder; give a file name")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise BenchError(f"{flag} {path} already exists; it is never overwritten: choose another name")
    if overwrite and (kind := _not_a_regular_file(Path(os.path.abspath(path)))):
        # the file is replaced by renaming a new one onto its name: that would put a plain file in
        # place of a device, a pipe or a link (and, run as root, replace /dev/full itself)
        raise BenchError(f"{flag} {path} is {kind}, not a regular file; it is replaced, not written "
                         "through: give a regular file's name")
    if refused_inside is not None and refused_inside.exists():
        inside = resolved(refused_inside)
        if target == inside or inside in target.parents:
            raise BenchError(f"{flag} {path} is inside {refused_what or 'the folder'} {refused_inside}; "
                             "write it elsewhere")
    _probe(target.parent, flag, path)
    return target
