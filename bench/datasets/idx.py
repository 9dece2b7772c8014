"""The IDX format of MNIST and Fashion-MNIST: four gzip files, each a header and raw bytes.

Header (big-endian): two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then one uint32 per dimension; the data follows, exactly prod(dims) items.
Everything is checked against the header so a cut-off or wrong file is caught here.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from bench.datasets.arrays import Splits
from bench.datasets.errors import corrupt_file_error
from bench.errors import BenchError
from bench.progress import Reporter

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

_UNSIGNED_BYTE = 0x08
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A uint8 array of `ndim` dimensions from an IDX file (gzipped or not)."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise BenchError(f"cannot read {path}: {error.strerror or error}") from None
    if raw.startswith(_GZIP_MAGIC):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise corrupt_file_error(path, error) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise corrupt_file_error(path, "not an IDX file: it does not start with two zero bytes")
    type_code, dims = raw[2], raw[3]
    if type_code != _UNSIGNED_BYTE or dims != ndim:
        raise corrupt_file_error(path, f"IDX header says type 0x{type_code:02x} with {dims} dimensions, "
                                       f"expected unsigned bytes (0x08) with {ndim}")
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise corrupt_file_error(path, "IDX header cut off")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header_size != expected:
        raise corrupt_file_error(path, f"IDX header promises {'x'.join(map(str, shape))} = {expected} bytes "
                                       f"of data, the file holds {len(raw) - header_size}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _split(images_path: Path, labels_path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1).astype(np.int64)
    if len(images) != len(labels):
        raise BenchError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
                         f"labels: the files do not belong together; replace them with a matching set")
    if labels.size and labels.max() >= num_classes:
        raise corrupt_file_error(labels_path, f"label {labels.max()} outside 0..{num_classes - 1}")
    # Grayscale: add the channel axis the harness expects (N, H, W, 1); copy out of the read-only buffer.
    return images[..., None].copy(), labels


def read_idx_set(files: dict[str, Path], classes: tuple[str, ...], reporter: Reporter) -> Splits:
    """Parses the four files named in FILES (keys) found at the given paths."""
    with reporter.task("Reading IDX files", total=2) as task:
        train_images, train_labels = _split(files[TRAIN_IMAGES], files[TRAIN_LABELS], len(classes))
        task.advance(1)
        test_images, test_labels = _split(files[TEST_IMAGES], files[TEST_LABELS], len(classes))
        task.advance(1)
    return Splits(train_images, train_labels, test_images, test_labels, classes)
