"""Image-folder data sets as files on disk, for loaders that read and decode files themselves (DALI).

    train_dir, test_dir, classes = imagefolder_files("cifar10-jpeg")      # or a folder / tar path

The array path (`load_dataset`) decodes every image once into memory; a file loader instead
needs a folder tree it can read at training time. A folder is used where it is. An archive
(the cifar10-jpeg tarball, or any .tar/.tar.gz/.tar.xz ImageFolder) is extracted once into
the cache folder: into a temporary folder first, renamed into place when complete, so a
reader never sees a half-extracted tree and two processes extracting at once do not collide.
The extracted folder's name carries a hash of the archive's location, size and mtime, so a
changed archive is extracted afresh rather than read stale.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from bench.datasets.cache import cache_dir
from bench.datasets.imagefolder import SPLITS
from bench.datasets.registry import CIFAR10_JPEG_ARCHIVE, DATASET_NAMES, SHARED_DATA_DIR
from bench.datasets.tarballs import iter_tar_files, looks_like_tar
from bench.errors import BenchError
from bench.progress import NullReporter, Reporter

_LAYOUT = "an ImageFolder needs train/<class>/<image> and test/<class>/<image>"


def imagefolder_files(name_or_path: str | os.PathLike, reporter: Reporter | None = None
                      ) -> tuple[Path, Path, tuple[str, ...]]:
    """(train folder, test folder, sorted class names) of an ImageFolder data set on disk.

    `name_or_path` is "cifar10-jpeg" (its archive is looked up as load_dataset does), or the path
    of an ImageFolder folder or tar archive. Labels are the classes' indices in sorted order, as
    in the array data set made from the same images.
    """
    reporter = reporter or NullReporter()
    text = str(name_or_path)
    if text == "cifar10-jpeg":
        root = _extracted(_cifar10_jpeg_archive(), reporter)
    elif text in DATASET_NAMES:
        raise BenchError(f"dataset '{text}' is not stored as image files: file loaders read cifar10-jpeg or an "
                         f"ImageFolder path")
    else:
        path = Path(name_or_path).expanduser().resolve()
        if path.is_dir():
            root = path
        elif path.is_file() and looks_like_tar(path):
            root = _extracted(path, reporter)
        elif path.exists():
            raise BenchError(f"{path} is neither a folder nor a .tar, .tar.gz or .tar.xz archive: give an "
                             f"ImageFolder (train/<class>/, test/<class>/) in one of those forms")
        else:
            raise BenchError(f"dataset path {path} does not exist: check the path in the suite's [dataset] table")
    train_dir, test_dir = _split_dirs(root)
    return train_dir, test_dir, _classes(train_dir, test_dir)


def _cifar10_jpeg_archive() -> Path:
    candidates = [cache_dir() / CIFAR10_JPEG_ARCHIVE, SHARED_DATA_DIR / CIFAR10_JPEG_ARCHIVE]
    archive = next((c for c in candidates if c.is_file()), None)
    if archive is None:
        raise BenchError(f"{CIFAR10_JPEG_ARCHIVE} not found (looked in {', '.join(str(c.parent) for c in candidates)}) "
                         f"and it has no download URL: put it at {candidates[0]}")
    return archive


def _extracted(archive: Path, reporter: Reporter) -> Path:
    """The folder holding the archive's files, extracting it on first use."""
    stat = archive.stat()
    key = hashlib.sha256(f"{archive.resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = archive.name.split(".", 1)[0]
    target = cache_dir() / "files" / f"{stem}-{key}"
    if target.is_dir():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part"))
    except OSError as error:
        raise _cannot_extract(archive, target, error) from None
    try:
        for name, data in iter_tar_files(archive, reporter, f"Extracting {archive.name}"):
            destination = temp.joinpath(*_safe_parts(name, archive))
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(data)
        os.chmod(temp, 0o755)  # mkdtemp makes it 0700; a shared BENCH_DATA needs others to read it
        try:
            os.rename(temp, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another process finished the same extraction first; its tree is as good as ours.
    except OSError as error:
        raise _cannot_extract(archive, target, error) from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # a failed or lost-race extraction leaves nothing behind
    return target


def _cannot_extract(archive: Path, target: Path, error: OSError) -> BenchError:
    return BenchError(f"cannot extract {archive} into {target.parent}: {error.strerror or error}; "
                      f"set BENCH_DATA to a writable folder with room for it")


def _safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    # A member may not write outside the extraction folder (absolute paths, '..').
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise BenchError(f"{archive} holds a member named {name!r} that points outside the archive's folder: "
                         f"refusing to extract it")
    return parts


def _split_dirs(root: Path) -> tuple[Path, Path]:
    """train/ and test/ at the root, or in its one top-level folder (as in cifar10-jpeg.tar.xz)."""
    base = root
    if not all((root / split).is_dir() for split in SPLITS):
        tops = [child for child in root.iterdir()
                if child.is_dir() and not child.name.startswith(".") and child.name != "__MACOSX"]
        if len(tops) != 1 or not all((tops[0] / split).is_dir() for split in SPLITS):
            raise BenchError(f"{root} has no train/ and test/ folders (at its root or in one top-level folder): "
                             f"{_LAYOUT}")
        base = tops[0]
    return base / SPLITS[0], base / SPLITS[1]


def _classes(train_dir: Path, test_dir: Path) -> tuple[str, ...]:
    def names(split: Path) -> list[str]:
        return sorted(child.name for child in split.iterdir() if child.is_dir() and not child.name.startswith("."))

    train, test = names(train_dir), names(test_dir)
    if not train:
        raise BenchError(f"{train_dir} has no class folders: {_LAYOUT}")
    if train != test:
        only_one = ", ".join(sorted(set(train) ^ set(test)))
        raise BenchError(f"{train_dir.parent}: train/ and test/ have different class folders ({only_one} in only "
                         f"one): give both splits the same classes")
    return tuple(train)
