"""Where data lives on disk, and the prepared-array cache that makes a second load fast.

A prepared data set is one uncompressed .npz of uint8/int64 arrays plus a JSON `meta`
entry (classes, source, sha256). Its file name carries two hashes: one of the source's
location, one of the source's size and mtime. Change the source and the name changes,
so a stale cache is never read; the superseded file for the same location is removed
when the new one is written (it is derived data, rebuilt on demand).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.datasets.arrays import Splits
from bench.errors import BenchError
from bench.progress import Reporter

# Bump when the way arrays are prepared changes, so old caches are not reused.
PREPARED_FORMAT = 1
_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


def cache_dir() -> Path:
    """$BENCH_DATA if set, else $XDG_CACHE_HOME/bench (default ~/.cache/bench); created on demand."""
    explicit = os.environ.get("BENCH_DATA", "").strip()
    if explicit:
        folder = Path(explicit).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        folder = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "bench"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BenchError(f"cannot create the data folder {folder}: {error.strerror or error}; "
                         f"set BENCH_DATA to a writable folder") from None
    return folder


def _files_under(path: Path) -> Iterator[Path]:
    if not path.is_dir():
        yield path
        return
    with os.scandir(path) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.is_dir(follow_symlinks=True):
                yield from _files_under(Path(entry.path))
            else:
                yield Path(entry.path)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def prepared_path(name: str, sources: Sequence[Path]) -> Path:
    """The cache file for `name` prepared from `sources` (files or folders) as they are now."""
    located = [str(Path(s).resolve()) for s in sources]
    state = [f"format {PREPARED_FORMAT}"]
    for source in sources:
        for file in _files_under(Path(source).resolve()):
            stat = file.stat()
            state.append(f"{file}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return cache_dir() / "prepared" / f"{name}-{_short_hash(chr(10).join(located))}-{_short_hash(chr(10).join(state))}.npz"


def load_prepared(path: Path) -> tuple[Splits, dict[str, Any]] | None:
    """The cached arrays and meta, or None when absent or unreadable (then it is rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in _ARRAYS}
            meta = json.loads(str(archive["meta"]))
    except Exception:  # a damaged cache file is only a cache miss: rebuild it from the source
        return None
    if meta.get("format") != PREPARED_FORMAT:
        return None
    splits = Splits(**arrays, classes=tuple(meta["classes"]))
    return splits, meta


def save_prepared(path: Path, splits: Splits, meta: dict[str, Any], reporter: Reporter) -> None:
    """Writes atomically (temp file + rename); a failure only costs the next load a rebuild."""
    meta = {**meta, "format": PREPARED_FORMAT, "classes": list(splits.classes)}
    temp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".part")
        temp = Path(temp_name)
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **{key: getattr(splits, key) for key in _ARRAYS}, meta=np.array(json.dumps(meta)))
        os.chmod(temp, 0o644)  # mkstemp makes it 0600; a shared BENCH_DATA needs others to read it
        os.replace(temp, path)
        temp = None
    except OSError as error:
        reporter.notice(f"could not cache the prepared data in {path.parent} ({error.strerror or error}); "
                        f"the next load will prepare it again")
        return
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)
    _remove_superseded(path)


def _remove_superseded(path: Path) -> None:
    """Drops older caches of the same source location (same name and location hash)."""
    stem_prefix = path.stem.rsplit("-", 1)[0] + "-"
    for other in path.parent.glob(f"{stem_prefix}*.npz"):
        if other != path and other.stem.rsplit("-", 1)[0] + "-" == stem_prefix:
            other.unlink(missing_ok=True)
