"""bench.datasets: downloads, verification, the three formats, the cache, and every bad input.

All data here is synthetic and made by the tests (a few images each), served from an HTTP
server on 127.0.0.1; BENCH_DATA points at a temp folder so the real cache is never touched.
The two tests at the end read the real Fashion-MNIST and cifar10-jpeg when present.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import pickletools
import struct
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.datasets import DATASET_NAMES, ArrayDataset, cache_dir, load_dataset
from bench.datasets import registry
from bench.errors import BenchError
from bench.progress import RecordingReporter

CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ------------------------------------------------------------------ fixtures ----

@pytest.fixture(autouse=True)
def dataset_env(tmp_path, monkeypatch):
    """A private cache, no offline switch or URL overrides from the caller's shell, no proxy for loopback."""
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "cache"))
    for name in ("BENCH_OFFLINE", "BENCH_URL_CIFAR10", "BENCH_URL_MNIST", "BENCH_URL_FASHION_MNIST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return tmp_path / "cache"


class _Served:
    """What the test server serves (path -> bytes) and every path it was asked for."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.cut_short: set[str] = set()  # paths whose Content-Length promises more than is sent
        self.base = ""

    def url(self, path: str) -> str:
        return f"{self.base}/{path}"


@pytest.fixture
def http_server():
    served = _Served()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            path = self.path.lstrip("/")
            served.requests.append(path)
            body = served.files.get(path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body) + (1000 if path in served.cut_short else 0)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    served.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield served
    server.shutdown()
    server.server_close()


class KindRecorder(RecordingReporter):
    """A RecordingReporter that also keeps each task's kind ("bytes" for downloads)."""

    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []

    def task(self, description, total=None, kind="steps"):
        self.kinds.append(kind)
        return super().task(description, total, kind)


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and message.strip() == message
    return message


# ------------------------------------------------- synthetic CIFAR-10 files ----

_RECONSTRUCT = np.zeros(0).__reduce__()[0]


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's `cPickle.dump(batch, f, 2)` wrote into the published CIFAR-10 files.

    Python 3 pickles bytes at protocol 2 through `_codecs.encode`, a global the real files never
    use; Python 2 wrote its str as BINSTRING, and numpy of the time lived at numpy.core.
    """

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str

    def save_global(self, obj, name=None):
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def py2_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def fake_cifar_batches(per_batch: int = 4, seed: int = 0):
    """The seven files of cifar-10-batches-py, and the NHWC arrays they must load as."""
    rng = np.random.default_rng(seed)
    files, train_x, train_y = {}, [], []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        rows = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        files[name] = py2_pickle({"batch_label": f"{name} of fake", "labels": labels, "data": rows,
                                  "filenames": [f"img_{i}.png" for i in range(per_batch)]})
        nhwc = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        if name == "test_batch":
            test = (nhwc, np.array(labels))
        else:
            train_x.append(nhwc)
            train_y.extend(labels)
    files["batches.meta"] = py2_pickle({"label_names": list(CIFAR_CLASSES), "num_cases_per_batch": per_batch,
                                        "num_vis": 3072})
    return files, (np.concatenate(train_x), np.array(train_y), *test)


def tar_bytes(members: dict[str, bytes], compression: str = "gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fake_cifar_tarball(**kwargs):
    files, expected = fake_cifar_batches(**kwargs)
    return tar_bytes({f"cifar-10-batches-py/{name}": data for name, data in files.items()}), expected


def assert_arrays(dataset: ArrayDataset, expected) -> None:
    train_x, train_y, test_x, test_y = expected
    np.testing.assert_array_equal(dataset.train_images, train_x)
    np.testing.assert_array_equal(dataset.train_labels, train_y)
    np.testing.assert_array_equal(dataset.test_images, test_x)
    np.testing.assert_array_equal(dataset.test_labels, test_y)
    for images in (dataset.train_images, dataset.test_images):
        assert images.dtype == np.uint8 and images.ndim == 4 and images.flags["C_CONTIGUOUS"]
    for labels in (dataset.train_labels, dataset.test_labels):
        assert labels.dtype == np.int64


# --------------------------------------------------------------- CIFAR-10 ----

def test_fake_batches_use_exactly_the_globals_of_the_published_files():
    """Guards the fixture: a py2 protocol-2 batch names numpy.core's reconstructor, ndarray, dtype."""
    files, _ = fake_cifar_batches(per_batch=2)
    globals_used = {arg for op, arg, _ in pickletools.genops(files["data_batch_1"]) if op.name == "GLOBAL"}
    assert globals_used == {"numpy.core.multiarray _reconstruct", "numpy ndarray", "numpy dtype"}
    assert {op.name for op, _, _ in pickletools.genops(files["batches.meta"])} >= {"SHORT_BINSTRING"}


def test_cifar10_downloads_with_progress_then_loads_from_cache(http_server, monkeypatch, dataset_env):
    tarball, expected = fake_cifar_tarball()
    http_server.files["cifar-10-python.tar.gz"] = tarball
    monkeypatch.setenv("BENCH_URL_CIFAR10", http_server.url("cifar-10-python.tar.gz"))
    monkeypatch.setattr(registry, "CIFAR10_MD5", md5(tarball))

    reporter = KindRecorder()
    dataset = load_dataset("cifar10", reporter=reporter)

    assert_arrays(dataset, expected)
    assert dataset.name == "cifar10" and dataset.classes == CIFAR_CLASSES
    assert dataset.train_images.shape == (20, 32, 32, 3) and dataset.test_images.shape == (4, 32, 32, 3)
    assert dataset.source == http_server.url("cifar-10-python.tar.gz")
    assert dataset.sha256 == hashlib.sha256(tarball).hexdigest()
    download = reporter.tasks[0]
    assert reporter.kinds[0] == "bytes" and "cifar-10-python.tar.gz" in download["description"]
    assert download["total"] == len(tarball) and download["completed"] == len(tarball)
    assert (dataset_env / "cifar-10-python.tar.gz").read_bytes() == tarball
    assert not list(dataset_env.glob(".*.part")) and not list(dataset_env.glob("*.bad"))

    again = KindRecorder()
    cached = load_dataset("cifar10", reporter=again)
    assert http_server.requests == ["cifar-10-python.tar.gz"]  # the second load never asked the server
    assert again.tasks == []  # nor parsed anything: it came from the prepared cache
    assert_arrays(cached, expected)
    assert (cached.source, cached.sha256, cached.classes) == (dataset.source, dataset.sha256, dataset.classes)


def test_cifar10_download_with_wrong_md5_is_set_aside(http_server, monkeypatch, dataset_env):
    tarball, _ = fake_cifar_tarball()  # its md5 is not the published one: the real constant stays
    http_server.files["c.tar.gz"] = tarball
    monkeypatch.setenv("BENCH_URL_CIFAR10", http_server.url("c.tar.gz"))

    with pytest.raises(BenchError) as error:
        load_dataset("cifar10")
    message = one_line(error)
    bad = dataset_env / "cifar-10-python.tar.gz.bad"
    assert bad.read_bytes() == tarball  # kept for inspection, not deleted
    assert not (dataset_env / "cifar-10-python.tar.gz").exists()  # and never used
    assert str(bad) in message and md5(tarball) in message and registry.CIFAR10_MD5 in message

    with pytest.raises(BenchError) as error:  # the next try downloads again; the old .bad stays
        load_dataset("cifar10")
    assert str(dataset_env / "cifar-10-python.tar.gz.1.bad") in one_line(error)
    assert bad.read_bytes() == tarball


def test_cifar10_user_tarball_with_wrong_md5_is_set_aside(tmp_path):
    tarball, _ = fake_cifar_tarball()
    user_file = tmp_path / "my-cifar.tar.gz"
    user_file.write_bytes(tarball)
    with pytest.raises(BenchError) as error:
        load_dataset("cifar10", path=str(user_file))
    assert f"{user_file}.bad" in one_line(error) and "md5" in str(error.value)
    assert not user_file.exists() and Path(f"{user_file}.bad").read_bytes() == tarball


def test_cifar10_from_user_tarball_and_extracted_folder(tmp_path, monkeypatch):
    tarball, expected = fake_cifar_tarball(per_batch=3, seed=1)
    monkeypatch.setattr(registry, "CIFAR10_MD5", md5(tarball))
    user_file = tmp_path / "cifar-10-python.tar.gz"
    user_file.write_bytes(tarball)
    from_tar = load_dataset("cifar10", path=user_file)
    assert_arrays(from_tar, expected)
    assert from_tar.source == str(user_file)

    with tarfile.open(user_file) as archive:
        archive.extractall(tmp_path / "extracted", filter="data")
    for folder in (tmp_path / "extracted", tmp_path / "extracted" / "cifar-10-batches-py"):
        from_folder = load_dataset("cifar10", path=folder)
        assert_arrays(from_folder, expected)
        assert from_folder.sha256 is not None and from_folder.classes == CIFAR_CLASSES


def test_offline_without_data_names_url_and_path(http_server, monkeypatch, dataset_env):
    monkeypatch.setenv("BENCH_URL_CIFAR10", http_server.url("cifar-10-python.tar.gz"))
    with pytest.raises(BenchError) as error:
        load_dataset("cifar10", offline=True)
    message = one_line(error)
    assert http_server.url("cifar-10-python.tar.gz") in message
    assert str(dataset_env / "cifar-10-python.tar.gz") in message

    monkeypatch.setenv("BENCH_OFFLINE", "1")
    with pytest.raises(BenchError) as error:
        load_dataset("mnist")
    message = one_line(error)
    assert registry.MNIST_MIRRORS[0] + "train-images-idx3-ubyte.gz" in message
    assert str(dataset_env / "mnist" / "train-images-idx3-ubyte.gz") in message
    assert http_server.requests == []


def test_unreachable_server_and_http_errors_name_urls_and_path(http_server, monkeypatch, dataset_env):
    monkeypatch.setenv("BENCH_URL_CIFAR10", http_server.url("missing.tar.gz"))
    with pytest.raises(BenchError) as error:
        load_dataset("cifar10")
    message = one_line(error)
    assert http_server.url("missing.tar.gz") in message and "HTTP 404" in message
    assert str(dataset_env / "cifar-10-python.tar.gz") in message and "BENCH_URL_CIFAR10" in message

    monkeypatch.setenv("BENCH_URL_CIFAR10", "http://127.0.0.1:1/cifar.tar.gz")  # nothing listens there
    with pytest.raises(BenchError) as error:
        load_dataset("cifar10")
    assert "http://127.0.0.1:1/cifar.tar.gz" in one_line(error)
    assert not any(dataset_env.iterdir())  # no partial file left behind


def test_download_cut_short_leaves_nothing(http_server, monkeypatch, dataset_env):
    tarball, _ = fake_cifar_tarball()
    http_server.files["c.tar.gz"] = tarball
    http_server.cut_short.add("c.tar.gz")
    monkeypatch.setenv("BENCH_URL_CIFAR10", http_server.url("c.tar.gz"))
    monkeypatch.setattr(registry, "CIFAR10_MD5", md5(tarball))
    with pytest.raises(BenchError) as error:
        load_dataset("cifar10")
    assert "connection closed after" in one_line(error)
    assert not any(dataset_env.iterdir())


def test_truncated_cifar_tarball_names_the_file(tmp_path, monkeypatch):
    tarball, _ = fake_cifar_tarball()
    truncated = tarball[: len(tarball) // 2]
    user_file = tmp_path / "cifar-10-python.tar.gz"
    user_file.write_bytes(truncated)
    monkeypatch.setattr(registry, "CIFAR10_MD5", md5(truncated))  # past the md5 check, into the reader
    with pytest.raises(BenchError) as error:
        load_dataset("cifar10", path=user_file)
    message = one_line(error)
    assert str(user_file) in message and "truncated or corrupt" in message and "delete" in message


def write_batches(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_corrupt_pickle_names_the_batch(tmp_path):
    files, _ = fake_cifar_batches()
    files["data_batch_3"] = files["data_batch_3"][:100]
    folder = write_batches(tmp_path / "cifar-10-batches-py", files)
    with pytest.raises(BenchError) as error:
        load_dataset("cifar10", path=folder)
    message = one_line(error)
    assert str(folder / "data_batch_3") in message and "corrupt" in message


def test_wrong_pickle_structure_is_refused(tmp_path):
    files, _ = fake_cifar_batches()
    files["test_batch"] = py2_pickle({"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]})
    folder = write_batches(tmp_path / "cifar-10-batches-py", files)
    with pytest.raises(BenchError) as error:
        load_dataset("cifar10", path=folder)
    assert "test_batch" in one_line(error) and "3072" in str(error.value)


def test_pickle_naming_a_forbidden_global_is_refused_without_running_it(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    calls = []
    monkeypatch.setattr(os, "system", lambda command: calls.append(command))
    files, _ = fake_cifar_batches()
    # What a tampered batch would hold: call os.system("touch <marker>") on load.
    files["data_batch_1"] = b"\x80\x02cos\nsystem\nq\x00X" + struct.pack("<I", len(f"touch {marker}")) + \
        f"touch {marker}".encode() + b"\x85R."
    folder = write_batches(tmp_path / "cifar-10-batches-py", files)
    with pytest.raises(BenchError) as error:
        load_dataset("cifar10", path=folder)
    message = one_line(error)
    assert "os.system" in message and str(folder / "data_batch_1") in message
    assert calls == [] and not marker.exists()


# ----------------------------------------------------------------- IDX ----

def idx_gz(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def fake_idx_files(n_train: int = 12, n_test: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    files = {name: idx_gz(array) for name, array in arrays.items()}
    expected = (arrays["train-images-idx3-ubyte.gz"][..., None], arrays["train-labels-idx1-ubyte.gz"],
                arrays["t10k-images-idx3-ubyte.gz"][..., None], arrays["t10k-labels-idx1-ubyte.gz"])
    return files, expected


def test_mnist_downloads_four_files_tries_mirrors_in_order_and_caches(http_server, monkeypatch, dataset_env):
    files, expected = fake_idx_files()
    for name, data in files.items():
        http_server.files[f"good/{name}"] = data
    monkeypatch.setattr(registry, "MNIST_MIRRORS", (http_server.url("down/"), http_server.url("good/")))
    monkeypatch.setattr(registry, "MNIST_MD5", {name: md5(data) for name, data in files.items()})

    reporter = KindRecorder()
    dataset = load_dataset("mnist", reporter=reporter)
    assert_arrays(dataset, expected)
    assert dataset.train_images.shape == (12, 28, 28, 1) and dataset.classes == tuple("0123456789")
    assert dataset.source == http_server.url("good/")
    assert reporter.kinds.count("bytes") == 4
    assert sorted(http_server.requests) == sorted([f"down/{n}" for n in files] + [f"good/{n}" for n in files])

    asked = len(http_server.requests)
    assert_arrays(load_dataset("mnist"), expected)
    assert len(http_server.requests) == asked


def test_fashion_mnist_download_via_env_base_url(http_server, monkeypatch, dataset_env, tmp_path):
    files, expected = fake_idx_files(seed=2)
    for name, data in files.items():
        http_server.files[f"fm/{name}"] = data
    monkeypatch.setattr(registry, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "no-such-dir")
    monkeypatch.setenv("BENCH_URL_FASHION_MNIST", http_server.url("fm"))

    with pytest.raises(BenchError) as error:  # the real published md5s: our fake files fail them
        load_dataset("fashion-mnist")
    assert "md5" in one_line(error) and (dataset_env / "fashion-mnist" / "train-images-idx3-ubyte.gz.bad").exists()

    monkeypatch.setattr(registry, "FASHION_MNIST_MD5", {name: md5(data) for name, data in files.items()})
    dataset = load_dataset("fashion-mnist")
    assert_arrays(dataset, expected)
    assert dataset.classes[0] == "T-shirt/top" and len(dataset.classes) == 10


def write_idx_folder(folder: Path, files: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


@pytest.mark.parametrize("breakage, fragment", [
    ("type", "IDX header"),
    ("dims", "IDX header"),
    ("magic", "not an IDX file"),
    ("short", "the file holds"),
    ("gzip", "truncated or corrupt"),
])
def test_bad_idx_files_are_named(tmp_path, breakage, fragment):
    files, _ = fake_idx_files()
    images = np.zeros((12, 28, 28), np.uint8)
    name = "train-images-idx3-ubyte.gz"
    files[name] = {
        "type": idx_gz(images, type_code=0x0D),
        "dims": idx_gz(images[0]),
        "magic": gzip.compress(b"\x01\x02\x08\x03" + bytes(100)),
        "short": gzip.compress(gzip.decompress(idx_gz(images))[:-10]),
        "gzip": files[name][: len(files[name]) // 2],  # random pixels: half the .gz is half the data
    }[breakage]
    folder = write_idx_folder(tmp_path / "idx", files)
    with pytest.raises(BenchError) as error:
        load_dataset("mnist", path=folder)
    message = one_line(error)
    assert str(folder / name) in message and fragment in message


def test_idx_counts_must_agree_and_all_files_be_there(tmp_path):
    files, _ = fake_idx_files()
    files["t10k-labels-idx1-ubyte.gz"] = idx_gz(np.zeros(4, np.uint8))
    folder = write_idx_folder(tmp_path / "idx", files)
    with pytest.raises(BenchError) as error:
        load_dataset("mnist", path=folder)
    assert "5 images" in one_line(error) and "4 labels" in str(error.value)

    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(BenchError) as error:
        load_dataset("fashion-mnist", path=folder)
    assert "t10k-labels-idx1-ubyte.gz" in one_line(error)


# --------------------------------------------------------- ImageFolder ----

def solid_jpeg(colour, size=(8, 8), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


CLASS_COLOURS = {"cat": (200, 30, 30), "ant": (30, 200, 30), "dog": (30, 30, 200)}


def make_imagefolder(root: Path, *, train_per_class: int = 3, test_per_class: int = 2, classes=CLASS_COLOURS):
    """Solid-colour JPEGs (which JPEG keeps within a few levels); file names deliberately unsorted."""
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for cls, colour in classes.items():
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in reversed(range(count)):
                (folder / f"{i:02d}.jpg").write_bytes(solid_jpeg(tuple(c + 5 * i for c in colour)))
    return root


def check_imagefolder(dataset: ArrayDataset, train_per_class: int = 3, test_per_class: int = 2) -> None:
    assert dataset.classes == ("ant", "cat", "dog")
    assert dataset.train_images.shape == (9, 8, 8, 3) and dataset.test_images.shape == (6, 8, 8, 3)
    np.testing.assert_array_equal(dataset.train_labels, np.repeat([0, 1, 2], train_per_class))
    np.testing.assert_array_equal(dataset.test_labels, np.repeat([0, 1, 2], test_per_class))
    # Within a class, images come in file-name order: 00, 01, 02 (brightening by 5 each).
    for index, (cls, i) in enumerate((c, i) for c in ("ant", "cat", "dog") for i in range(train_per_class)):
        wanted = np.array(CLASS_COLOURS[cls]) + 5 * i
        assert np.abs(dataset.train_images[index].astype(int) - wanted).max() <= 4


def test_imagefolder_from_folder_and_tar_xz_agree(tmp_path):
    root = make_imagefolder(tmp_path / "pets")
    (root / "README.txt").write_text("not an image")
    (root / "train" / "cat" / ".hidden.jpg").write_bytes(b"junk")
    from_folder = load_dataset("imagefolder", path=root)
    check_imagefolder(from_folder)
    assert from_folder.source == str(root) and from_folder.sha256 is not None

    archive = tmp_path / "pets.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(root, arcname="pets")  # one top-level folder above train/ and test/
    reporter = RecordingReporter()
    from_archive = load_dataset("imagefolder", path=archive, reporter=reporter)
    check_imagefolder(from_archive)
    np.testing.assert_array_equal(from_archive.train_images, from_folder.train_images)
    assert from_archive.sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert [task["description"] for task in reporter.tasks] == ["Reading pets.tar.xz", "Decoding 15 images"]
    assert reporter.tasks[1]["completed"] == 15

    plain = tmp_path / "flat.tar"
    with tarfile.open(plain, "w") as tar:
        for split in ("train", "test"):
            tar.add(root / split, arcname=split)  # train/ and test/ at the archive's root
    check_imagefolder(load_dataset("imagefolder", path=plain))


def test_imagefolder_grayscale_and_mixed(tmp_path):
    gray = tmp_path / "gray"
    for split in ("train", "test"):
        for cls, level in (("a", 40), ("b", 220)):
            (gray / split / cls).mkdir(parents=True)
            (gray / split / cls / "x.jpg").write_bytes(solid_jpeg(level, mode="L"))
    dataset = load_dataset("imagefolder", path=gray)
    assert dataset.train_images.shape == (2, 8, 8, 1)
    assert abs(int(dataset.train_images[1].mean()) - 220) <= 2

    (gray / "test" / "b" / "y.jpg").write_bytes(solid_jpeg((10, 250, 10)))  # one colour image: all RGB
    mixed = load_dataset("imagefolder", path=gray)
    assert mixed.train_images.shape == (2, 8, 8, 3) and mixed.test_images.shape == (3, 8, 8, 3)
    assert np.ptp(mixed.train_images[1].astype(int), axis=-1).max() == 0  # gray images: R = G = B
    assert mixed.test_images[2, 0, 0, 1] > 240


def test_imagefolder_cache_follows_source_changes(tmp_path, dataset_env):
    root = make_imagefolder(tmp_path / "pets")
    first = load_dataset("imagefolder", path=root)
    image = root / "train" / "ant" / "00.jpg"
    image.write_bytes(solid_jpeg((250, 250, 250)))
    os.utime(image, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    second = load_dataset("imagefolder", path=root)
    assert second.train_images[0].min() > 240 and first.train_images[0].min() < 100
    assert second.sha256 != first.sha256
    assert len(list((dataset_env / "prepared").glob("imagefolder-*.npz"))) == 1  # the stale one is gone


def test_empty_imagefolder(tmp_path):
    for split in ("train", "test"):
        (tmp_path / "empty" / split / "cat").mkdir(parents=True)
    with pytest.raises(BenchError) as error:
        load_dataset("imagefolder", path=tmp_path / "empty")
    assert "no images found" in one_line(error) and str(tmp_path / "empty") in str(error.value)


def test_imagefolder_class_mismatch_names_the_classes(tmp_path):
    root = make_imagefolder(tmp_path / "pets")
    (root / "test" / "dog").rename(root / "test" / "wolf")
    with pytest.raises(BenchError) as error:
        load_dataset("imagefolder", path=root)
    message = one_line(error)
    assert "only in train/: dog" in message and "only in test/: wolf" in message


def test_imagefolder_missing_split(tmp_path):
    root = make_imagefolder(tmp_path / "pets")
    for image in (root / "test").rglob("*.jpg"):
        image.unlink()
    with pytest.raises(BenchError) as error:
        load_dataset("imagefolder", path=root)
    assert "no images under test/" in one_line(error)

    only_classes = tmp_path / "flat"
    (only_classes / "cat").mkdir(parents=True)
    (only_classes / "cat" / "a.jpg").write_bytes(solid_jpeg((1, 2, 3)))
    (only_classes / "dog").mkdir()
    (only_classes / "dog" / "a.jpg").write_bytes(solid_jpeg((1, 2, 3)))
    with pytest.raises(BenchError) as error:
        load_dataset("imagefolder", path=only_classes)
    assert "no train/ and test/ folders" in one_line(error)


def test_imagefolder_bad_images(tmp_path):
    root = make_imagefolder(tmp_path / "pets")
    broken = root / "train" / "cat" / "01.jpg"
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(BenchError) as error:
        load_dataset("imagefolder", path=root)
    assert str(broken) in one_line(error) and "cannot decode" in str(error.value)

    broken.write_bytes(solid_jpeg((1, 2, 3), size=(8, 6)))
    with pytest.raises(BenchError) as error:
        load_dataset("imagefolder", path=root)
    assert str(broken) in one_line(error) and "8x6" in str(error.value) and "same size" in str(error.value)


def test_truncated_tar_xz_names_the_archive(tmp_path):
    root = make_imagefolder(tmp_path / "pets")
    archive = tmp_path / "pets.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(root, arcname="pets")
    archive.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(BenchError) as error:
        load_dataset("imagefolder", path=archive)
    message = one_line(error)
    assert str(archive) in message and "truncated or corrupt" in message and "delete" in message


def test_cifar10_jpeg_looks_in_the_data_folder(tmp_path, dataset_env, monkeypatch):
    monkeypatch.setattr(registry, "SHARED_DATA_DIR", tmp_path / "nowhere")
    with pytest.raises(BenchError) as error:
        load_dataset("cifar10-jpeg")
    assert str(dataset_env / "cifar10-jpeg.tar.xz") in one_line(error)

    root = make_imagefolder(tmp_path / "cifar10-jpeg")
    with tarfile.open(dataset_env / "cifar10-jpeg.tar.xz", "w:xz") as tar:
        tar.add(root, arcname="cifar10-jpeg")
    reporter = RecordingReporter()
    dataset = load_dataset("cifar10-jpeg", reporter=reporter)
    check_imagefolder(dataset)
    assert dataset.name == "cifar10-jpeg" and dataset.source == str(dataset_env / "cifar10-jpeg.tar.xz")
    assert any("not the published" in notice for notice in reporter.notices)


# ------------------------------------------------------------ the registry ----

def test_unknown_name_and_bad_paths():
    with pytest.raises(BenchError) as error:
        load_dataset("cifar100")
    message = one_line(error)
    assert "cifar100" in message and all(name in message for name in DATASET_NAMES)

    with pytest.raises(BenchError) as error:
        load_dataset("imagefolder")
    assert "needs a path" in one_line(error)
    with pytest.raises(BenchError) as error:
        load_dataset("imagefolder", path="/no/such/folder")
    assert "/no/such/folder" in one_line(error)


def test_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "explicit"))
    assert cache_dir() == tmp_path / "explicit" and cache_dir().is_dir()
    monkeypatch.delenv("BENCH_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "bench" and cache_dir().is_dir()


# ------------------------------------------------------------- real data ----

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
CIFAR10_JPEG = registry.SHARED_DATA_DIR / "cifar10-jpeg.tar.xz"


@pytest.mark.skipif(not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    dataset = load_dataset("fashion-mnist", offline=True)
    assert dataset.train_images.shape == (60000, 28, 28, 1) and dataset.test_images.shape == (10000, 28, 28, 1)
    assert set(np.unique(dataset.train_labels)) == set(range(10)) == set(np.unique(dataset.test_labels))
    assert np.bincount(dataset.train_labels).tolist() == [6000] * 10
    assert dataset.source == str(FASHION_MNIST) and len(dataset.sha256) == 64


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR10_JPEG.is_file(), reason="shared/data/cifar10-jpeg.tar.xz is not here")
def test_real_cifar10_jpeg():
    started = time.perf_counter()
    dataset = load_dataset("cifar10-jpeg", offline=True)
    decoded_s = time.perf_counter() - started
    assert dataset.train_images.shape == (50000, 32, 32, 3) and dataset.test_images.shape == (10000, 32, 32, 3)
    assert np.bincount(dataset.train_labels).tolist() == [5000] * 10
    assert np.bincount(dataset.test_labels).tolist() == [1000] * 10
    assert dataset.classes == CIFAR_CLASSES
    assert dataset.sha256 == registry.CIFAR10_JPEG_SHA256

    started = time.perf_counter()
    cached = load_dataset("cifar10-jpeg", offline=True)
    cached_s = time.perf_counter() - started
    np.testing.assert_array_equal(cached.test_images, dataset.test_images)
    print(f"cifar10-jpeg: decoded in {decoded_s:.1f} s, cached load {cached_s:.2f} s")
    assert cached_s < decoded_s / 5  # a ratio measured side by side: a fixed 2 s failed on a busy machine
