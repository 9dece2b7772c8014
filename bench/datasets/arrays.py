"""The in-memory form every data set takes: uint8 NHWC images and int64 labels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Splits:
    """What a format parser returns: the pixels and labels, before we know where they came from."""

    train_images: np.ndarray  # uint8 (N, H, W, C), C-contiguous
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray  # uint8 (M, H, W, C)
    test_labels: np.ndarray  # int64 (M,)
    classes: tuple[str, ...]


@dataclass(frozen=True)
class ArrayDataset:
    """A whole data set in memory, with a record of its origin for result files."""

    name: str
    train_images: np.ndarray  # uint8, shape (N, H, W, C), C=3 for colour, C=1 for grayscale; C-contiguous
    train_labels: np.ndarray  # int64, shape (N,)
    test_images: np.ndarray  # uint8 (M, H, W, C)
    test_labels: np.ndarray  # int64 (M,)
    classes: tuple[str, ...]
    source: str  # where the pixels came from (file path or URL), recorded in result files
    sha256: str | None  # of the source archive/file(s) when known, else None
    # A validation split carved out of the training set (bench.runner.subset), for choices made
    # on data the test split never sees; None without one. `validation_split` says how it was drawn.
    validation_images: np.ndarray | None = None  # uint8 (V, H, W, C)
    validation_labels: np.ndarray | None = None  # int64 (V,)
    validation_split: dict | None = None
    # "validation": the test arrays above are the validation split's, the real test split dropped
    # unread (dataset.judged_on, bench.runner.subset)
    judged_on: str = "test"

    @classmethod
    def from_splits(cls, name: str, splits: Splits, *, source: str, sha256: str | None) -> "ArrayDataset":
        return cls(name=name, train_images=splits.train_images, train_labels=splits.train_labels,
                   test_images=splits.test_images, test_labels=splits.test_labels, classes=tuple(splits.classes),
                   source=source, sha256=sha256)
