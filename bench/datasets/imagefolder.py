"""ImageFolder layout, from a folder or a tar archive: `train/<class>/<image>`, `test/<class>/<image>`.

One optional top-level folder may sit above train/ and test/ (as in cifar10-jpeg.tar.xz).
Classes are the sorted names of the class folders; images are ordered by class, then by
path, so labels and order are the same on every machine. All images must share one size;
they are stored as grayscale (C=1) when every image is grayscale, else as RGB (C=3).
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from bench.datasets.arrays import Splits
from bench.datasets.checksums import manifest_sha256
from bench.datasets.errors import corrupt_file_error
from bench.datasets.tarballs import iter_tar_files
from bench.errors import BenchError
from bench.progress import Reporter

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
SPLITS = ("train", "test")
_GRAYSCALE_MODES = frozenset({"1", "L", "LA"})
_LAYOUT = "an ImageFolder needs train/<class>/<image> and test/<class>/<image>"
_PROGRESS_EVERY = 500  # images per progress update: per-image updates would cost more than decoding


@dataclass(frozen=True)
class _Entry:
    parts: tuple[str, ...]  # path relative to the data set root, split first
    content: bytes | Path  # the bytes (from an archive) or the file to read them from
    archive: Path | None  # the archive it is a member of, for messages

    @property
    def relpath(self) -> str:
        return "/".join(self.parts)


def _ignored(parts: tuple[str, ...]) -> bool:
    # Hidden files and macOS archive litter (._name, __MACOSX/) are never images of the set.
    return parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts)


def _is_image(parts: tuple[str, ...]) -> bool:
    return PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES


def read_folder(root: Path, reporter: Reporter) -> tuple[Splits, str]:
    """Decodes an ImageFolder tree; returns the arrays and the sha256 of its images' manifest."""
    entries = []
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        relative = Path(folder).relative_to(root).parts
        for name in sorted(files):
            parts = (*relative, name)
            if not _ignored(parts) and _is_image(parts):
                entries.append(_Entry(parts, Path(folder) / name, None))
    return _decode_layout(entries, root, reporter)


def read_archive(path: Path, reporter: Reporter) -> Splits:
    """Decodes an ImageFolder tar (.tar, .tar.gz, .tar.xz) straight from the archive."""
    entries = []
    for name, data in iter_tar_files(path, reporter, f"Reading {path.name}"):
        parts = PurePosixPath(name).parts
        if parts and not _ignored(parts) and _is_image(parts):
            entries.append(_Entry(parts, data, path))
    splits, _ = _decode_layout(entries, path, reporter)
    return splits


def _decode_layout(entries: list[_Entry], origin: Path, reporter: Reporter) -> tuple[Splits, str]:
    if not entries:
        raise BenchError(f"no images found in {origin} (looked for {', '.join(sorted(IMAGE_SUFFIXES))}): {_LAYOUT}")
    depth = _split_depth(entries, origin)
    by_split: dict[str, list[tuple[str, tuple[str, ...], _Entry]]] = {split: [] for split in SPLITS}
    for entry in entries:
        inner = entry.parts[depth:]
        if len(inner) < 1 or inner[0] not in SPLITS:
            continue  # files beside train/ and test/ (a README image, samples) are not part of the set
        if len(inner) < 3:
            raise BenchError(f"{_where(entry)} lies directly in {inner[0]}/, not in a class folder: {_LAYOUT}")
        by_split[inner[0]].append((inner[1], inner[2:], entry))
    for split in SPLITS:
        if not by_split[split]:
            raise BenchError(f"{origin} has no images under {split}/: {_LAYOUT}")

    train_classes = sorted({cls for cls, _, _ in by_split["train"]})
    test_classes = sorted({cls for cls, _, _ in by_split["test"]})
    if train_classes != test_classes:
        only_train = sorted(set(train_classes) - set(test_classes))
        only_test = sorted(set(test_classes) - set(train_classes))
        differences = "; ".join(part for part in (
            f"only in train/: {', '.join(only_train)}" if only_train else "",
            f"only in test/: {', '.join(only_test)}" if only_test else "") if part)
        raise BenchError(f"{origin}: train/ and test/ have different class folders ({differences}): "
                         f"give both splits the same classes")
    label_of = {cls: index for index, cls in enumerate(train_classes)}

    ordered = {split: sorted(by_split[split], key=lambda item: (item[0], item[1])) for split in SPLITS}
    sequence = ordered["train"] + ordered["test"]
    images, digests = _decode_all([entry for _, _, entry in sequence], reporter)
    labels = np.array([label_of[cls] for cls, _, _ in sequence], dtype=np.int64)
    n_train = len(ordered["train"])
    splits = Splits(
        train_images=np.ascontiguousarray(images[:n_train]),
        train_labels=labels[:n_train],
        test_images=np.ascontiguousarray(images[n_train:]),
        test_labels=labels[n_train:],
        classes=tuple(train_classes),
    )
    return splits, manifest_sha256(zip((entry.relpath for _, _, entry in sequence), digests))


def _split_depth(entries: list[_Entry], origin: Path) -> int:
    """0 when train/ and test/ are at the root, 1 when they sit in one top-level folder."""
    tops = {entry.parts[0] for entry in entries if len(entry.parts) > 1}
    if tops & set(SPLITS):
        return 0
    if len(tops) == 1 and any(len(e.parts) > 2 and e.parts[1] in SPLITS for e in entries):
        return 1
    missing = "/ and ".join(SPLITS)
    raise BenchError(f"{origin} has no {missing}/ folders (at its root or in one top-level folder): {_LAYOUT}")


def _where(entry: _Entry) -> str:
    return f"{entry.archive}:{entry.relpath}" if entry.archive else str(entry.content)


def _decode_all(entries: list[_Entry], reporter: Reporter) -> tuple[np.ndarray, list[str]]:
    """Decodes into one (N, H, W, C) uint8 buffer; returns it and each image's sha256."""
    images: np.ndarray | None = None
    first: _Entry | None = None
    digests = []
    with reporter.task(f"Decoding {len(entries)} images", total=len(entries)) as task:
        for index, entry in enumerate(entries):
            data = _read(entry)
            digests.append(hashlib.sha256(data).hexdigest())
            pixels = _decode(data, entry)
            if images is None:
                first = entry
                channels = 1 if pixels.ndim == 2 else 3
                images = np.empty((len(entries), *pixels.shape[:2], channels), dtype=np.uint8)
            if pixels.shape[:2] != images.shape[1:3]:
                (h, w), (fh, fw) = pixels.shape[:2], images.shape[1:3]
                raise BenchError(f"{_where(entry)} is {w}x{h} but {_where(first)} is {fw}x{fh}: all images "
                                 f"must have the same size; resize them first")
            if pixels.ndim == 3 and images.shape[3] == 1:
                # First colour image after grayscale ones: store everything as RGB. Repeating the
                # gray plane is exactly what PIL's L->RGB conversion does.
                images = np.repeat(images, 3, axis=3)
            images[index] = pixels[..., None] if pixels.ndim == 2 else pixels
            if (index + 1) % _PROGRESS_EVERY == 0:
                task.advance(_PROGRESS_EVERY)
        task.advance(len(entries) % _PROGRESS_EVERY)
    assert images is not None  # entries is never empty here
    return images, digests


def _read(entry: _Entry) -> bytes:
    if isinstance(entry.content, bytes):
        return entry.content
    try:
        return entry.content.read_bytes()
    except OSError as error:
        raise BenchError(f"cannot read {entry.content}: {error.strerror or error}") from None


def _decode(data: bytes, entry: _Entry) -> np.ndarray:
    """(H, W) for a grayscale image, (H, W, 3) for any other."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode in _GRAYSCALE_MODES:
                return np.asarray(image if image.mode == "L" else image.convert("L"))
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except Exception as error:  # Pillow raises many types for damaged files; all mean "cannot decode"
        file = entry.archive or entry.content
        raise corrupt_file_error(file, f"cannot decode image: {error}",
                                 member=entry.relpath if entry.archive else None) from None
