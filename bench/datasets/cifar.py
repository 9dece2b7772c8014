"""The canonical CIFAR-10 "python version": pickled batches, read without trusting pickle.

The archive `cifar-10-python.tar.gz` holds `cifar-10-batches-py/` with `data_batch_1..5`,
`test_batch` and `batches.meta`, each a dict pickled by Python 2 (protocol 2). A batch
dict holds b'data' (a uint8 numpy array, one 3072-byte row per image, planes R, G, B of
32x32 each) and b'labels' (a list of ints); the meta dict holds b'label_names'.

Unpickling can run any callable the file names, so the unpickler here resolves only the
three globals a numpy array needs and refuses every other: a tampered or wrong file is
an error, never code that runs.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from bench.datasets.arrays import Splits
from bench.datasets.errors import corrupt_file_error
from bench.datasets.tarballs import iter_tar_files
from bench.errors import BenchError
from bench.progress import Reporter

BATCH_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
ALL_FILES = (*TRAIN_BATCHES, TEST_BATCH, META)

_ROW_BYTES = 3 * 32 * 32

# numpy's own reconstructor, found through ndarray's pickle support rather than by module
# path: it lives in numpy.core.multiarray (numpy 1) or numpy._core.multiarray (numpy 2).
_RECONSTRUCT = np.zeros(0).__reduce__()[0]

# Exactly the globals a numpy 1.x-era pickle of a uint8 array refers to, as written by
# Python 2 into the published files: `_reconstruct(ndarray, (0,), 'b')` then
# `dtype('u1', 0, 1)`. Nothing else is ever resolved.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a CIFAR-10 batch never does") from None


# Where a batch came from, for messages: (file, member inside it or None).
Where = tuple[Path, str | None]


def _corrupt(where: Where, reason: str) -> BenchError:
    return corrupt_file_error(where[0], reason, member=where[1])


def _unpickle(data: bytes, where: Where) -> object:
    try:
        # encoding="bytes": Python 2 str values (keys, label names) come back as bytes, as
        # the data set's own instructions load them.
        return _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # any failure inside a hostile or damaged pickle is "corrupt"
        raise _corrupt(where, f"not a CIFAR-10 pickle: {error}") from None


def _batch(data: bytes, where: Where, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(data, where)
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise _corrupt(where, "not a CIFAR-10 batch: no b'data' and b'labels' entries")
    pixels, labels = batch[b"data"], batch[b"labels"]
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 2
            and pixels.shape[1] == _ROW_BYTES):
        shape = getattr(pixels, "shape", type(pixels).__name__)
        raise _corrupt(where, f"b'data' is {shape}, expected uint8 rows of {_ROW_BYTES} bytes")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise _corrupt(where, "b'labels' is not a list of integers") from None
    if labels.shape != (len(pixels),):
        raise _corrupt(where, f"{len(pixels)} images but {labels.size} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise _corrupt(where, f"labels outside 0..{num_classes - 1}")
    # Rows are channel-major (CHW); the harness wants NHWC.
    images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def _classes(data: bytes, where: Where) -> tuple[str, ...]:
    meta = _unpickle(data, where)
    names = meta.get(b"label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, bytes) for n in names):
        raise _corrupt(where, "no b'label_names' list")
    return tuple(n.decode("utf-8", "replace") for n in names)


def _parse(read: Callable[[str], bytes], where: Callable[[str], Where], reporter: Reporter) -> Splits:
    classes = _classes(read(META), where(META))
    with reporter.task("Parsing CIFAR-10 batches", total=len(TRAIN_BATCHES) + 1) as task:
        train = []
        for name in TRAIN_BATCHES:
            train.append(_batch(read(name), where(name), len(classes)))
            task.advance(1)
        test_images, test_labels = _batch(read(TEST_BATCH), where(TEST_BATCH), len(classes))
        task.advance(1)
    return Splits(
        train_images=np.ascontiguousarray(np.concatenate([images for images, _ in train])),
        train_labels=np.concatenate([labels for _, labels in train]),
        test_images=np.ascontiguousarray(test_images),
        test_labels=test_labels,
        classes=classes,
    )


def batch_folder(path: Path) -> Path | None:
    """The folder holding the batch files: `path` itself or its `cifar-10-batches-py/`."""
    for folder in (path, path / BATCH_FOLDER):
        if (folder / META).is_file():
            return folder
    return None


def read_folder(folder: Path, reporter: Reporter) -> Splits:
    """Parses an extracted `cifar-10-batches-py` folder."""
    missing = [name for name in ALL_FILES if not (folder / name).is_file()]
    if missing:
        raise BenchError(f"{folder} lacks {', '.join(missing)}: it is not a complete cifar-10-batches-py "
                         f"folder; extract the whole archive again or pass the .tar.gz")

    def read(name: str) -> bytes:
        try:
            return (folder / name).read_bytes()
        except OSError as error:
            raise BenchError(f"cannot read {folder / name}: {error.strerror or error}") from None

    return _parse(read, lambda name: (folder / name, None), reporter)


def read_tarball(path: Path, reporter: Reporter) -> Splits:
    """Parses `cifar-10-python.tar.gz` straight from the archive, without extracting it."""
    members: dict[str, bytes] = {}
    for name, data in iter_tar_files(path, reporter, f"Reading {path.name}"):
        member = PurePosixPath(name)
        if member.parent.name == BATCH_FOLDER and member.name in ALL_FILES:
            members[member.name] = data
    missing = [name for name in ALL_FILES if name not in members]
    if missing:
        raise corrupt_file_error(path, f"no {BATCH_FOLDER}/{missing[0]} in the archive")
    return _parse(members.__getitem__, lambda name: (path, f"{BATCH_FOLDER}/{name}"), reporter)
