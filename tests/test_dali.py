"""The DALI loaders: the array loader serves the resident loader's batches; the file loader reads an
ImageFolder with the right labels, once per file per pass, augmented as the reference augments.

Needs NVIDIA DALI (pip install nvidia-dali-cuda130, the [dali] extra); without it the DALI tests
skip and say so. The CUDA cases run only where torch sees a GPU.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bench.datasets import imagefolder_files, load_dataset
from bench.errors import BenchError
from bench.loaders import Augment, dali_available, make_loader
from bench.suites import load_suite
from bench.train import PreparedData, train_run
from tests.helpers import separable_dataset, suite_text

if dali_available():
    from bench.loaders.dali import DaliFileLoader
needs_dali = pytest.mark.skipif(not dali_available(), reason="NVIDIA DALI is not installed: "
                                "pip install nvidia-dali-cuda130 (pip install '.[dali]')")

CPU = torch.device("cpu")
DEVICES = [CPU] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
AUGMENTS = [Augment(), Augment(flip=True, translate=2),
            Augment(flip=True, alternating_flip=True, translate=1, cutout=3)]
IDENTITY = dict(mean=torch.zeros(3), std=torch.ones(3))  # normalization that leaves the pixel values as they are


def _arrays(n: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), rng.integers(0, 10, n)


def _pair(images, labels, device=CPU, **options):
    """The resident loader (the reference, on CPU) and the DALI loader, with the same options."""
    common = dict(batch_size=16, shuffle=True, seed=3, **options)
    return make_loader("resident", images, labels, device=CPU, **common), \
        make_loader("dali", images, labels, device=device, **common)


# ---------------------------------------------------------------- arrays ----

@needs_dali
@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("augment", AUGMENTS, ids=["none", "flip-translate", "alternating-translate-cutout"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels-last"])
def test_batches_are_the_resident_loaders_exactly(device, augment, channels_last):
    # identity normalization: every value is a pixel, so flip, translate and cutout must match exactly
    resident, dali = _pair(*_arrays(), device=device, augment=augment, channels_last=channels_last, **IDENTITY)
    assert dali.name == "dali" and len(dali) == len(resident) == 4 and dali.count == 50
    for epoch in range(3):  # alternating flips differ between epochs; the last batch is short (50 = 3 * 16 + 2)
        for (a, ya), (b, yb) in zip(resident.epoch(epoch), dali.epoch(epoch), strict=True):
            assert b.device.type == device.type and yb.device.type == device.type
            assert torch.equal(a, b.cpu()) and torch.equal(ya, yb.cpu())
            assert b.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


@needs_dali
def test_normalization_and_dtype_within_rounding_of_the_reference():
    images, labels = _arrays()
    stats = dict(mean=torch.tensor([120.0, 110.0, 100.0]), std=torch.tensor([60.0, 61.0, 62.0]))
    for dtype in (torch.float32, torch.bfloat16):
        resident, dali = _pair(images, labels, augment=AUGMENTS[2], dtype=dtype, drop_last=True, **stats)
        for (a, _), (b, _) in zip(resident.epoch(0), dali.epoch(0), strict=True):
            assert b.dtype == dtype
            # DALI multiplies by 1/std, the reference divides: one float32 ulp apart at most
            torch.testing.assert_close(b, a, rtol=2e-7 if dtype == torch.float32 else 1e-2, atol=1e-6)
    torch.testing.assert_close(dali.images(20), resident.images(20))


@needs_dali
def test_each_epoch_serves_every_image_once():
    count = 45
    images = np.repeat(np.arange(count, dtype=np.uint8), 8 * 8 * 3).reshape(count, 8, 8, 3)  # image i is all i
    _, dali = _pair(images, np.arange(count), augment=AUGMENTS[2], drop_last=False, **IDENTITY)
    for epoch in range(2):
        served, labels = [], []
        for batch, label in dali.epoch(epoch):
            # cutout zeroes a corner at most; the largest value is the image's own
            served += batch.amax(dim=(1, 2, 3)).long().tolist()
            labels += label.tolist()
        assert sorted(served) == list(range(count)) and served == labels


@needs_dali
def test_a_seed_repeats_its_epochs_and_another_seed_differs():
    images, labels = _arrays()

    def epochs(seed):
        loader = make_loader("dali", images, labels, device=CPU, batch_size=16, shuffle=True, seed=seed,
                             augment=AUGMENTS[1], **IDENTITY)
        return [torch.cat([batch for batch, _ in loader.epoch(epoch)]) for epoch in range(2)]

    first, again, other = epochs(5), epochs(5), epochs(6)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[0], first[1])  # a new order and new draws every epoch


@needs_dali
def test_stopping_mid_epoch_leaves_the_next_epoch_whole():
    resident, dali = _pair(*_arrays(), augment=AUGMENTS[2], drop_last=True, **IDENTITY)
    for epoch in range(3):
        expected = [batch for batch, _ in resident.epoch(epoch)]
        served = dali.epoch(epoch)
        assert torch.equal(next(served)[0], expected[0])
        served.close()  # a fractional epoch budget ends here; the batch DALI had in flight is collected


@needs_dali
def test_a_short_suite_trains_through_dali_like_through_resident(tmp_path):
    data = PreparedData.from_dataset(separable_dataset(channels=3))
    path = tmp_path / "tiny.toml"
    path.write_text(suite_text(epochs=2))
    suite = load_suite(str(path)).resolved
    runs = {kind: train_run(suite, data, seed=0, device=CPU, loader=kind) for kind in ("resident", "dali")}
    assert runs["dali"]["loader"] == "dali" and runs["dali"]["status"] == "complete"
    assert runs["dali"]["accuracy"] >= 0.9
    # the same batches to within float rounding: the same accuracy, give or take an image or two
    assert abs(runs["dali"]["accuracy"] - runs["resident"]["accuracy"]) <= 2 / len(data.dataset.test_labels)


# ---------------------------------------------------------------- files ----

CLASSES = ("zebra", "ant", "moose")  # made in this order, labelled in sorted order: ant 0, moose 1, zebra 2
PER_CLASS = {"zebra": 7, "ant": 5, "moose": 7}


@pytest.fixture(scope="module")
def jpeg_folder(tmp_path_factory):
    """A tiny JPEG ImageFolder (train/ and test/, 19 images of 8x10 a split) and its images decoded by Pillow."""
    root = tmp_path_factory.mktemp("jpegs") / "tiny"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in CLASSES:
            (root / split / cls).mkdir(parents=True)
            for i in range(PER_CLASS[cls]):
                pixels = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(root / split / cls / f"{i:03d}.jpg", quality=90)
    files = sorted((root / "train").glob("*/*.jpg"))
    decoded = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])  # sorted = class, then name
    labels = np.array([sorted(CLASSES).index(f.parent.name) for f in files])
    return root, torch.from_numpy(decoded).permute(0, 3, 1, 2).float(), torch.from_numpy(labels)


def _file_loader(root, device=CPU, **options):
    defaults = dict(batch_size=4, shuffle=True, seed=1, **IDENTITY)
    return DaliFileLoader(root / "train", device=device, **{**defaults, **options})


def _pass(loader, epoch):
    """(file indices, images, labels) of one pass, in the order served."""
    indices, images, labels = [], [], []
    for batch, label in loader.epoch(epoch):
        indices.append(loader.last_indices)
        images.append(batch.float().cpu())
        labels.append(label.cpu())
    return torch.cat(indices), torch.cat(images), torch.cat(labels)


@needs_dali
@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_file_loader_reads_every_file_once_per_pass_with_sorted_class_labels(jpeg_folder, device):
    root, pillow, labels = jpeg_folder
    loader = _file_loader(root, device=device)
    assert loader.classes == ("ant", "moose", "zebra") and loader.count == 19 and len(loader) == 5
    orders = []
    for epoch in range(3):
        indices, images, served_labels = _pass(loader, epoch)
        assert sorted(indices.tolist()) == list(range(19))
        assert torch.equal(served_labels, labels[indices])
        if device.type == "cpu":  # DALI's CPU decoder (libjpeg-turbo) gives Pillow's pixels
            assert torch.equal(images, pillow[indices])
        else:  # nvJPEG may round differently
            assert (images - pillow[indices]).abs().mean() < 2
        orders.append(indices.tolist())
    assert orders[0] != orders[1] != orders[2]  # reshuffled every pass
    assert _pass(_file_loader(root, device=device), 0)[0].tolist() == orders[0]  # the seed fixes the order
    assert _pass(_file_loader(root, device=device, seed=2), 0)[0].tolist() != orders[0]


@needs_dali
def test_file_loader_drop_last_serves_full_batches_and_keeps_passes_aligned(jpeg_folder):
    root, _, _ = jpeg_folder
    loader = _file_loader(root, drop_last=True)
    whole = _file_loader(root)
    assert len(loader) == 4
    for epoch in range(2):
        indices = _pass(loader, epoch)[0]
        assert len(indices) == 16 and len(set(indices.tolist())) == 16
        assert indices.tolist() == _pass(whole, epoch)[0][:16].tolist()  # pass e starts where pass e starts


@needs_dali
def test_file_loader_translate_and_flip_are_reflect_padded_crops(jpeg_folder):
    root, pillow, _ = jpeg_folder
    pad = 2
    loader = _file_loader(root, augment=Augment(flip=True, translate=pad))
    padded = F.pad(pillow, (pad,) * 4, mode="reflect")
    height, width = pillow.shape[-2:]
    draws = []
    for epoch in range(3):
        indices, images, _ = _pass(loader, epoch)
        for index, image in zip(indices.tolist(), images):
            views = {(dy, dx, flip): view
                     for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                     for crop in [padded[index, :, dy:dy + height, dx:dx + width]]
                     for flip, view in ((False, crop), (True, crop.flip(-1)))}
            match = next((key for key, view in views.items() if torch.equal(view, image)), None)
            assert match is not None, f"image {index} is no reflect-padded crop of the source"
            draws.append(match)
    rows, cols, flips = zip(*draws)
    # every offset in [0, 2 * pad] is drawn on both axes, and both flips
    assert set(rows) == set(cols) == set(range(2 * pad + 1)) and set(flips) == {False, True}


@needs_dali
def test_file_loader_alternating_flip_mirrors_every_image_each_pass(jpeg_folder):
    root, pillow, _ = jpeg_folder
    loader = _file_loader(root, augment=Augment(flip=True, alternating_flip=True))
    by_index = []
    for epoch in range(3):
        indices, images, _ = _pass(loader, epoch)
        by_index.append(images[indices.argsort()])
    assert torch.equal(by_index[1], by_index[0].flip(-1)) and torch.equal(by_index[2], by_index[0])
    mirrored = [torch.equal(image, pillow[i].flip(-1)) for i, image in enumerate(by_index[0])]
    assert any(mirrored) and not all(mirrored)


@needs_dali
def test_file_loader_cutout_zeroes_a_square_within_the_image(jpeg_folder):
    root, pillow, _ = jpeg_folder
    indices, images, _ = _pass(_file_loader(root, augment=Augment(cutout=3)), 0)
    changed = images != pillow[indices]
    assert changed.any(dim=(1, 2, 3)).all() and (images[changed] == 0).all()
    assert changed.sum(dim=(1, 2, 3)).max() <= 3 * 3 * 3


@needs_dali
def test_file_loader_shards_split_each_pass(jpeg_folder):
    root, _, _ = jpeg_folder
    shards = [_file_loader(root, shard_id=shard, num_shards=2) for shard in range(2)]
    assert [s.count for s in shards] == [9, 10]
    for epoch in range(2):
        served = torch.cat([_pass(shard, epoch)[0] for shard in shards])
        assert sorted(served.tolist()) == list(range(19))
    with pytest.raises(BenchError, match="shard_id"):
        _file_loader(root, shard_id=2, num_shards=2)


FILE_SUITE = """
name = "tiny-jpeg"
mode = "budget"
target = 0.9
devices = ["cpu"]
[dataset]
name = "imagefolder"
path = "{path}"
[model]
name = "mlp"
args = {{ hidden = [32] }}
[recipe]
epochs = 2.5
batch_size = 32
eval_batch_size = 50
lr = 0.05
warmup_steps = 1
[recipe.augment]
flip = true
alternating_flip = true
translate = 1
"""


@needs_dali
def test_a_file_dataset_trains_through_the_dali_file_loader(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    for split, count in (("train", 96), ("test", 50)):
        for cls, level in (("bright", 170), ("dark", 70)):  # told apart by brightness, as in tests.helpers
            (tmp_path / "set" / split / cls).mkdir(parents=True)
            for i in range(count):
                pixels = np.clip(level + rng.normal(0, 25, (8, 8, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / "set" / split / cls / f"{i:03d}.jpg", quality=95)
    suite_file = tmp_path / "tiny-jpeg.toml"
    suite_file.write_text(FILE_SUITE.format(path=tmp_path / "set"))
    suite = load_suite(str(suite_file)).resolved
    data = PreparedData.from_dataset(load_dataset("imagefolder", path=tmp_path / "set"))
    read, real_init = [], DaliFileLoader.__init__

    def spy(self, root, **options):
        read.append(Path(root).name)
        real_init(self, root, **options)

    monkeypatch.setattr(DaliFileLoader, "__init__", spy)
    run = train_run(suite, data, seed=0, device=CPU, loader="dali")
    assert read == ["train", "test"]  # the trainer read the files, not the arrays
    assert run["loader"] == "dali" and run["status"] == "complete" and run["accuracy"] >= 0.9
    assert run["steps"] == int(2.5 * (192 // 32))  # a fractional last epoch stops mid-pass


@needs_dali
def test_file_loader_images_are_the_first_files_unaugmented(jpeg_folder):
    root, pillow, _ = jpeg_folder
    loader = _file_loader(root, augment=AUGMENTS[2])
    assert torch.equal(loader.images(6), pillow[:6])


def test_imagefolder_files_extracts_an_archive_once(jpeg_folder, tmp_path, monkeypatch):
    root, _, _ = jpeg_folder
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "cache"))
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root, arcname="tiny")  # train/ and test/ inside one top-level folder
    train, test, classes = imagefolder_files(archive)
    assert classes == ("ant", "moose", "zebra")
    assert sorted(p.name for p in train.iterdir()) == list(classes) and len(list(test.glob("*/*.jpg"))) == 19
    assert str(train).startswith(str(tmp_path / "cache"))
    stamp = train.stat().st_mtime_ns
    assert imagefolder_files(archive)[0] == train and train.stat().st_mtime_ns == stamp  # not extracted again
    assert not list((tmp_path / "cache" / "files").glob(".*"))  # no temporary folder left behind
    assert imagefolder_files(root) == (root / "train", root / "test", classes)  # a folder is used where it is


def test_imagefolder_files_says_what_is_wrong(tmp_path):
    with pytest.raises(BenchError, match="not stored as image files"):
        imagefolder_files("fashion-mnist")
    with pytest.raises(BenchError, match="does not exist"):
        imagefolder_files(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(BenchError, match="no train/ and test/"):
        imagefolder_files(tmp_path / "flat")


@needs_dali
@pytest.mark.parametrize("augment", AUGMENTS[1:], ids=["flip-translate", "alternating-translate-cutout"])
def test_array_loader_sample_batch_is_the_first_batch_and_leaves_the_passes_as_they_were(augment):
    images, labels = _arrays()
    loader = make_loader("dali", images, labels, device=CPU, batch_size=16, shuffle=True, seed=3, augment=augment,
                         dtype=torch.bfloat16, **IDENTITY)
    twin = make_loader("dali", images, labels, device=CPU, batch_size=16, shuffle=True, seed=3, augment=augment,
                       dtype=torch.bfloat16, **IDENTITY)
    sample, sample_labels = loader.sample_batch()
    assert sample.dtype == torch.bfloat16
    for epoch in range(2):  # the sampled loader serves exactly what an untouched one does
        for (a, ya), (b, yb) in zip(loader.epoch(epoch), twin.epoch(epoch), strict=True):
            if epoch == 0 and ya is not None and sample is not None:
                assert torch.equal(sample, a) and torch.equal(sample_labels, ya)
                sample = None
            assert torch.equal(a, b) and torch.equal(ya, yb)


@needs_dali
def test_file_loader_sample_batch_leaves_the_reader_where_it_was(jpeg_folder):
    root, pillow, labels = jpeg_folder
    loader = _file_loader(root, augment=Augment(flip=True, alternating_flip=True, translate=1), dtype=torch.bfloat16)
    images, sample_labels = loader.sample_batch()
    assert images.shape == (4, 3, *loader.size) and images.dtype == torch.bfloat16
    assert torch.equal(sample_labels, labels[:4])  # the first files, in sorted order
    indices = _pass(loader, 0)[0]  # the training pipeline still starts its first pass whole
    assert sorted(indices.tolist()) == list(range(19))
    untouched = _file_loader(root, augment=Augment(flip=True, alternating_flip=True, translate=1))
    assert indices.tolist() == _pass(untouched, 0)[0].tolist()
