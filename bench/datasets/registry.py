"""The supported data sets: where each is found or downloaded from, and the cache in front of them.

Search order, first hit wins:
- cifar10:       path= (tarball or extracted folder), cache_dir()/cifar-10-python.tar.gz,
                 cache_dir()/cifar-10-batches-py/, else download ($BENCH_URL_CIFAR10).
- cifar10-jpeg:  path=, cache_dir()/cifar10-jpeg.tar.xz, <repo>/../shared/data/cifar10-jpeg.tar.xz.
- fashion-mnist: path= (folder of the 4 IDX files), /usr/share/datasets/fashion-mnist/ (Debian's
                 dataset-fashion-mnist), cache_dir()/fashion-mnist/, else download
                 ($BENCH_URL_FASHION_MNIST).
- mnist:         path=, cache_dir()/mnist/, else download ($BENCH_URL_MNIST, else torchvision's mirrors).
- imagefolder:   path= only (a folder, .tar, .tar.gz or .tar.xz).
Downloads are md5-verified against the published checksums. Files found locally are checked
by parsing; only archives with a single published md5 (the CIFAR-10 tarball) are also
md5-checked, because Debian recompresses the IDX .gz files (same pixels, other md5).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.datasets import cifar, idx, imagefolder
from bench.datasets.arrays import ArrayDataset, Splits
from bench.datasets.cache import cache_dir, load_prepared, prepared_path, save_prepared
from bench.datasets.checksums import file_digest, manifest_sha256, verify_md5
from bench.datasets.download import fetch, join_url, offline_requested, url_from_env
from bench.datasets.tarballs import looks_like_tar
from bench.errors import BenchError
from bench.progress import NullReporter, Reporter

DATASET_NAMES = ("cifar10", "cifar10-jpeg", "fashion-mnist", "mnist", "imagefolder")
# The ones whose source is a folder or archive of image files (a file-reading loader can use them).
FILE_DATASETS = ("cifar10-jpeg", "imagefolder")

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_TARBALL = "cifar-10-python.tar.gz"

CIFAR10_JPEG_ARCHIVE = "cifar10-jpeg.tar.xz"
CIFAR10_JPEG_SHA256 = "800436a78764c8ee7ee12e61b519fdd7dd20ceb878bc34f7b766ec00a5839758"  # the archive bench was built against
# The checkout's sibling shared/ folder: <repo>/../shared/data, with <repo> the parent of bench/.
SHARED_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# md5 of the published .gz files, as listed by torchvision.datasets.FashionMNIST / MNIST.
FASHION_MNIST_MD5 = {
    idx.TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    idx.TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
    idx.TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
    idx.TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_MD5 = {
    idx.TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    idx.TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
    idx.TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
    idx.TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
}
MNIST_CLASSES = tuple(str(digit) for digit in range(10))


@dataclass(frozen=True)
class _Located:
    """A data set's source on disk, and how to turn it into arrays when the cache has none."""

    files: tuple[Path, ...]  # the cache key is taken from these (size and mtime of every file)
    source: str  # recorded as ArrayDataset.source
    prepare: Callable[[Reporter], tuple[Splits, str | None]]  # verify + parse -> arrays, sha256


def load_dataset(name: str, *, path: str | os.PathLike | None = None, reporter: Reporter | None = None,
                 offline: bool = False) -> ArrayDataset:
    """The named data set as arrays: from the prepared cache, else found or downloaded and prepared once."""
    locate = _LOCATORS.get(name)
    if locate is None:
        raise BenchError(f"unknown dataset '{name}': known datasets are {', '.join(DATASET_NAMES)}")
    reporter = reporter or NullReporter()
    located = locate(_existing_path(path), reporter, offline_requested(offline))
    cache_file = prepared_path(name, located.files)
    cached = load_prepared(cache_file)
    if cached is not None:
        splits, meta = cached
        return ArrayDataset.from_splits(name, splits, source=meta["source"], sha256=meta["sha256"])
    splits, sha256 = located.prepare(reporter)
    save_prepared(cache_file, splits, {"source": located.source, "sha256": sha256}, reporter)
    return ArrayDataset.from_splits(name, splits, source=located.source, sha256=sha256)


def _existing_path(path: str | os.PathLike | None) -> Path | None:
    if path is None or str(path) == "":
        return None
    resolved = Path(path).expanduser().resolve()
    if not resolved.exists():
        raise BenchError(f"dataset path {resolved} does not exist: check the path in the suite's [dataset] table")
    return resolved


# ---------------------------------------------------------------- cifar10 ----

def _cifar10(path: Path | None, reporter: Reporter, offline: bool) -> _Located:
    if path is not None:
        if path.is_dir():
            folder = cifar.batch_folder(path)
            if folder is None:
                raise BenchError(f"{path} holds no {cifar.META}: give the extracted {cifar.BATCH_FOLDER} folder or "
                                 f"the {CIFAR10_TARBALL} tarball as the dataset path")
            return _cifar10_folder(folder)
        if not looks_like_tar(path):
            raise BenchError(f"{path} is neither a folder nor a tar archive: give the {CIFAR10_TARBALL} tarball "
                             f"or the extracted {cifar.BATCH_FOLDER} folder as the dataset path")
        return _cifar10_tarball(path, source=str(path), verified=False)
    tarball = cache_dir() / CIFAR10_TARBALL
    if tarball.is_file():
        return _cifar10_tarball(tarball, source=str(tarball), verified=False)
    folder = cifar.batch_folder(cache_dir() / cifar.BATCH_FOLDER)
    if folder is not None:
        return _cifar10_folder(folder)
    url = url_from_env("BENCH_URL_CIFAR10", CIFAR10_URL)
    used = fetch([url], tarball, md5=CIFAR10_MD5, reporter=reporter, offline=offline,
                 hint=f"or set BENCH_URL_CIFAR10 to a mirror, or give a tarball or an extracted "
                      f"{cifar.BATCH_FOLDER} folder as the dataset path")
    return _cifar10_tarball(tarball, source=used, verified=True)


def _cifar10_tarball(tarball: Path, *, source: str, verified: bool) -> _Located:
    def prepare(reporter: Reporter) -> tuple[Splits, str | None]:
        if not verified:  # a download was verified as it came in; a file we found was not
            verify_md5(tarball, CIFAR10_MD5, f"Download it again from {CIFAR10_URL} (bench does this itself "
                                             f"into {cache_dir() / CIFAR10_TARBALL} when it finds no tarball).")
        return cifar.read_tarball(tarball, reporter), file_digest(tarball, "sha256")

    return _Located((tarball,), source, prepare)


def _cifar10_folder(folder: Path) -> _Located:
    def prepare(reporter: Reporter) -> tuple[Splits, str | None]:
        splits = cifar.read_folder(folder, reporter)
        return splits, manifest_sha256((name, file_digest(folder / name, "sha256")) for name in cifar.ALL_FILES)

    return _Located((folder,), str(folder), prepare)


# ----------------------------------------------------------- cifar10-jpeg ----

def _cifar10_jpeg(path: Path | None, reporter: Reporter, offline: bool) -> _Located:
    if path is not None:
        return _imagefolder(path, reporter, offline)
    candidates = [cache_dir() / CIFAR10_JPEG_ARCHIVE, SHARED_DATA_DIR / CIFAR10_JPEG_ARCHIVE]
    archive = next((c for c in candidates if c.is_file()), None)
    if archive is None:
        raise BenchError(f"{CIFAR10_JPEG_ARCHIVE} not found (looked in {', '.join(str(c.parent) for c in candidates)}) "
                         f"and it has no download URL: put it at {candidates[0]} or give its path as the dataset path")

    def prepare(reporter: Reporter) -> tuple[Splits, str | None]:
        splits = imagefolder.read_archive(archive, reporter)
        sha256 = file_digest(archive, "sha256")
        if sha256 != CIFAR10_JPEG_SHA256:
            reporter.notice(f"{archive} is not the published cifar10-jpeg archive (sha256 {sha256[:12]}...); "
                            f"using it anyway, its sha256 goes into the results")
        return splits, sha256

    return _Located((archive,), str(archive), prepare)


# ------------------------------------------------------------ imagefolder ----

def _imagefolder(path: Path | None, reporter: Reporter, offline: bool) -> _Located:
    if path is None:
        raise BenchError("dataset 'imagefolder' needs a path (a folder, .tar, .tar.gz or .tar.xz with train/<class>/ "
                         "and test/<class>/): set path in the suite's [dataset] table")
    if path.is_dir():
        return _Located((path,), str(path), lambda reporter: imagefolder.read_folder(path, reporter))
    if not looks_like_tar(path):
        raise BenchError(f"{path} is neither a folder nor a .tar, .tar.gz or .tar.xz archive: give an ImageFolder "
                         f"(train/<class>/, test/<class>/) in one of those forms")
    return _Located((path,), str(path),
                    lambda reporter: (imagefolder.read_archive(path, reporter), file_digest(path, "sha256")))


# ----------------------------------------------------- mnist, fashion-mnist ----

def _fashion_mnist(path: Path | None, reporter: Reporter, offline: bool) -> _Located:
    system = FASHION_MNIST_SYSTEM_DIR if FASHION_MNIST_SYSTEM_DIR.is_dir() else None
    return _idx_dataset(path, reporter, offline, cache_subdir="fashion-mnist", classes=FASHION_MNIST_CLASSES,
                        md5=FASHION_MNIST_MD5, env_var="BENCH_URL_FASHION_MNIST",
                        mirrors=_mirrors("BENCH_URL_FASHION_MNIST", (FASHION_MNIST_URL,)), system_dir=system)


def _mnist(path: Path | None, reporter: Reporter, offline: bool) -> _Located:
    return _idx_dataset(path, reporter, offline, cache_subdir="mnist", classes=MNIST_CLASSES, md5=MNIST_MD5,
                        env_var="BENCH_URL_MNIST", mirrors=_mirrors("BENCH_URL_MNIST", MNIST_MIRRORS),
                        system_dir=None)


def _mirrors(env_var: str, defaults: tuple[str, ...]) -> list[str]:
    override = os.environ.get(env_var, "").strip()
    return [override] if override else list(defaults)


def _idx_dataset(path: Path | None, reporter: Reporter, offline: bool, *, cache_subdir: str,
                 classes: tuple[str, ...], md5: dict[str, str], env_var: str, mirrors: list[str],
                 system_dir: Path | None) -> _Located:
    if path is not None:
        if not path.is_dir():
            raise BenchError(f"{path} is not a folder: give the folder holding {', '.join(idx.FILES)}")
        return _idx_located(path, {name: _idx_file(path, name) for name in idx.FILES}, str(path), classes)
    if system_dir is not None:
        found = {name: _idx_file(system_dir, name) for name in idx.FILES}
        if all(found.values()):
            return _idx_located(system_dir, found, str(system_dir), classes)
    folder = cache_dir() / cache_subdir
    found = {name: _idx_file(folder, name) for name in idx.FILES}
    source = str(folder)
    for name, file in found.items():
        if file is None:
            used = fetch([join_url(base, name) for base in mirrors], folder / name, md5=md5[name],
                         reporter=reporter, offline=offline, hint=f"or set {env_var} to a mirror's base URL")
            found[name] = folder / name
            source = used.rsplit("/", 1)[0] + "/"  # the base URL the files came from
    return _idx_located(folder, found, source, classes)


def _idx_file(folder: Path, name: str) -> Path | None:
    """The .gz file, or the same file already gunzipped (users often unpack them)."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _idx_located(folder: Path, found: dict[str, Path | None], source: str, classes: tuple[str, ...]) -> _Located:
    missing = [name for name, file in found.items() if file is None]
    if missing:
        raise BenchError(f"{folder} lacks {', '.join(missing)}: put all four IDX files there")
    files = {name: file for name, file in found.items() if file is not None}

    def prepare(reporter: Reporter) -> tuple[Splits, str | None]:
        splits = idx.read_idx_set(files, classes, reporter)
        return splits, manifest_sha256((file.name, file_digest(file, "sha256")) for file in files.values())

    return _Located(tuple(files[name] for name in idx.FILES), source, prepare)


_LOCATORS: dict[str, Callable[[Path | None, Reporter, bool], _Located]] = {
    "cifar10": _cifar10,
    "cifar10-jpeg": _cifar10_jpeg,
    "imagefolder": _imagefolder,
    "fashion-mnist": _fashion_mnist,
    "mnist": _mnist,
}
assert tuple(sorted(_LOCATORS)) == tuple(sorted(DATASET_NAMES))
