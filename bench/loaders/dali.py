"""The NVIDIA DALI loaders: augmentation in a DALI pipeline, batches handed over as torch tensors.

Two loaders with the face every loader has (see bench.loaders):

  DaliLoader      uint8 arrays fed through fn.external_source. Its per-sample draws (order, flips,
                  crop offsets, cutout corners) are the resident loader's seeded plan, fed as
                  pipeline inputs, so its batches are the resident loader's batches: pixels placed
                  exactly the same, values within one float32 ulp (DALI multiplies by 1/std where
                  the reference divides by std).
  DaliFileLoader  an ImageFolder split on disk: fn.readers.file (sharded, reshuffled every epoch)
                  and fn.decoders.image ("mixed", i.e. nvJPEG, on CUDA; "cpu" otherwise), with the
                  draws made by DALI's seeded random operators.

Both run one augmentation graph: a crop of the reflect-padded image at per-sample offsets
(translate), a per-sample mirror (flip), normalization and layout, all in one
fn.crop_mirror_normalize, then fn.erase for cutout. Erasing after normalization fills the square
with 0, the mean, as the reference does. DALI pads only with a constant (fn.pad, fn.slice's
out-of-bounds policy), so the array loader crops the resident loader's once-padded copy and the
file loader builds the reflection from mirrored edge strips.

On CUDA the pipeline runs on the torch device's GPU; elsewhere on the CPU (device_id=None).
The pipeline is driven by hand (feed_input / schedule_run / outputs), one batch ahead of the
trainer, rather than by DALIGenericIterator: a trainer may stop mid-epoch (a fractional epoch
budget) and that iterator cannot be reset mid-epoch, while here the batch in flight is simply
collected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import nvidia.dali.fn as fn
import nvidia.dali.types as types
from nvidia.dali import Pipeline
from nvidia.dali.backend import TensorGPU
from nvidia.dali.plugin.pytorch import feed_ndarray, to_torch_type

from bench.datasets.imagefolder import IMAGE_SUFFIXES
from bench.errors import BenchError
from bench.loaders.resident import Augment, EpochPlan, ResidentLoader, first_batch, sample_first_batch


def default_threads() -> int:
    """DALI worker threads: the cores there are, up to 4 (a 32x32 batch gains nothing past that)."""
    return max(1, min(4, os.cpu_count() or 1))


class DaliLoader:
    """uint8 NHWC arrays through a DALI pipeline, batches equal to the resident loader's."""

    name = "dali"

    def __init__(self, images: np.ndarray, labels: np.ndarray, *, device: torch.device, batch_size: int,
                 mean: torch.Tensor, std: torch.Tensor, augment: Augment | None = None, shuffle: bool = False,
                 drop_last: bool = False, seed: int = 0, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False, threads: int | None = None, shard: tuple[int, int] = (0, 1)):
        # The host copy (reflect-padded once) and the seeded epoch plans come from a CPU resident
        # loader, as in the torch loader: the loader chosen does not change the batches.
        self._host = ResidentLoader(images, labels, device=torch.device("cpu"), batch_size=batch_size, mean=mean,
                                    std=std, augment=augment, shuffle=shuffle, drop_last=drop_last, seed=seed,
                                    dtype=dtype, channels_last=channels_last, shard=shard)
        self.device, self.batch_size, self.count = device, batch_size, self._host.count
        self.dtype, self.channels_last = dtype, channels_last
        self.augment = self._host.augment
        self._pad = self.augment.translate
        self.threads = threads or default_threads()
        self._pipe = Pipeline(batch_size=batch_size, num_threads=self.threads,
                              device_id=_device_id(device), seed=_dali_seed(seed), prefetch_queue_depth=1)
        with self._pipe:
            # Per-sample draws come in as pipeline inputs; graph parts an augmentation does not use are left out.
            padded = fn.external_source(name="images", layout="CHW", dtype=types.UINT8)
            if device.type == "cuda":
                padded = padded.gpu()
            mirror = fn.external_source(name="mirror", dtype=types.INT32) if self.augment.flip else None
            crop = ((fn.external_source(name="crop_y", dtype=types.FLOAT),
                     fn.external_source(name="crop_x", dtype=types.FLOAT)) if self._pad else None)
            corners = fn.external_source(name="corners", dtype=types.FLOAT) if self.augment.cutout else None
            self._pipe.set_outputs(_augment_graph(padded, size=self._host.size, crop=crop, mirror=mirror,
                                                  corners=corners, cutout=self.augment.cutout, mean=mean, std=std,
                                                  channels_last=channels_last))
        self._pipe.build()
        self._runner = _AheadRunner(self._pipe, device)

    def __len__(self) -> int:
        return len(self._host)

    def _feed(self, plan: EpochPlan, idx: torch.Tensor) -> None:
        self._pipe.feed_input("images", self._host.padded[idx].numpy())
        if self.augment.flip:
            self._pipe.feed_input("mirror", plan.flips[idx].to(torch.int32).numpy())
        if self._pad:
            # crop_pos is the offset as a fraction of the slack (2 * pad): k / (2p) * 2p rounds back to k exactly
            fraction = (plan.offsets[:, idx].to(torch.float64) / (2 * self._pad)).to(torch.float32).numpy()
            self._pipe.feed_input("crop_y", fraction[0])
            self._pipe.feed_input("crop_x", fraction[1])
        if plan.corners is not None:
            self._pipe.feed_input("corners", plan.corners[:, idx].T.to(torch.float32).contiguous().numpy())

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yields (images, labels) batches for one pass; epoch numbers count from 0."""
        plan = self._host.plan(epoch)
        batches = plan.batches
        with closing(self._runner.iterations(len(batches), lambda k: self._feed(plan, batches[k]))) as outputs:
            for (images,), idx in zip(outputs, batches):
                yield (_finish(images, self.dtype, self.channels_last),
                       self._host.labels[idx].to(self.device, non_blocking=True))

    def images(self, count: int) -> torch.Tensor:
        """The first `count` images, normalized and unaugmented: the reference's own (for data-dependent init)."""
        return self._host.images(count).to(self.device)

    def state(self):
        return self._host.state()  # the pipeline draws nothing itself: every draw is fed from the plan

    def restore(self, state) -> None:
        self._host.restore(state)

    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return sample_first_batch(self)


class DaliFileLoader:
    """An ImageFolder split read, decoded and augmented by DALI; labels are class indices in sorted order.

    `root` is a split folder (train/ or test/ of bench.datasets.imagefolder_files). All images must
    share one size, as in the array data set; `len(mean)` channels are decoded (3: RGB, 1: gray).
    For a multi-GPU run each rank passes its `shard_id` of `num_shards`; every pass reshuffles the
    whole list and gives each rank its slice.
    """

    name = "dali"

    def __init__(self, root: str | os.PathLike, *, device: torch.device, batch_size: int, mean: torch.Tensor,
                 std: torch.Tensor, augment: Augment | None = None, shuffle: bool = False, drop_last: bool = False,
                 seed: int = 0, dtype: torch.dtype = torch.float32, channels_last: bool = False,
                 shard_id: int = 0, num_shards: int = 1, threads: int | None = None):
        if not 0 <= shard_id < num_shards:
            raise BenchError(f"shard_id {shard_id} is not in 0..{num_shards - 1} (num_shards {num_shards})")
        self.files, self.labels_of, self.classes = _list_split(Path(root))
        self.device, self.batch_size, self.dtype, self.channels_last = device, batch_size, dtype, channels_last
        self.augment = augment or Augment()
        self.size = _image_size(self.files[0])
        self._mean, self._std, self.threads = mean, std, threads or default_threads()
        total = len(self.files)
        if total < num_shards:
            raise BenchError(f"{root} has {total} images, fewer than the {num_shards} shards asked for")
        # DALI's shard bounds: shard s holds positions [total * s // n, total * (s + 1) // n).
        self.count = total * (shard_id + 1) // num_shards - total * shard_id // num_shards
        self._reader_batches = -(-self.count // batch_size)  # the reader pads the last batch of a pass
        # With drop_last every rank takes the smallest shard's number of full batches, so ranks step together.
        self._steps = (total // num_shards) // batch_size if drop_last else self._reader_batches

        rng = np.random.default_rng(seed)  # the same on every rank: one global order, one flip per image
        order = rng.permutation(total) if shuffle else np.arange(total)
        alternating = self.augment.flip and self.augment.alternating_flip
        base_flip = rng.integers(0, 2, total) if alternating else np.zeros(total, np.int64)
        # The reader's label is a code, 2 * file index + the image's first-epoch flip: the index gives
        # the class (and lets tests see which files came), the low bit drives the alternating flip.
        codes = 2 * np.arange(total) + base_flip
        self._pipe = _file_pipeline([self.files[i] for i in order], codes[order].tolist(), device=device,
                                    batch_size=batch_size, augment=self.augment, shuffle=shuffle, size=self.size,
                                    mean=mean, std=std, channels_last=channels_last, threads=self.threads,
                                    seed=_dali_seed(seed, shard_id), shard_id=shard_id, num_shards=num_shards)
        self._runner = _AheadRunner(self._pipe, device)
        self._label_table = torch.as_tensor(self.labels_of, dtype=torch.int64)
        self.last_indices: torch.Tensor | None = None  # file indices of the last batch served (for tests)

    def __len__(self) -> int:
        return self._steps

    def _feed_parity(self, parity: int) -> None:
        if self.augment.flip and self.augment.alternating_flip:
            self._pipe.feed_input("parity", np.full(self.batch_size, parity, dtype=np.int32))

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yields (images, labels) batches for one pass; epoch numbers count from 0."""
        # The reader runs in whole passes: finish one a trainer left early (or drop_last skipped)
        # so that this pass starts at the start of the reader's.
        rest_of_reader_pass = -self._runner.scheduled % self._reader_batches
        for _ in self._runner.iterations(rest_of_reader_pass, lambda k: self._feed_parity(0)):
            pass
        with closing(self._runner.iterations(self._steps, lambda k: self._feed_parity(epoch % 2))) as outputs:
            for step, (images, codes) in enumerate(outputs):
                valid = min(self.batch_size, self.count - step * self.batch_size)  # the rest is the reader's padding
                indices = codes.reshape(-1)[:valid].long() // 2
                self.last_indices = indices
                yield (_finish(images[:valid], self.dtype, self.channels_last),
                       self._label_table[indices].to(self.device, non_blocking=True))

    def sample_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch made by a second pipeline of the same graph over the first files (decoder, augmentation,
        copy). The reader's position cannot be put back, so the training pipeline itself is not touched:
        pulling from it would make the next pass start by finishing this one, inside the timed region."""
        count = min(self.batch_size, len(self.files))
        pipe = _file_pipeline(self.files[:count], [2 * i for i in range(count)], device=self.device,
                              batch_size=count, augment=self.augment, shuffle=False, size=self.size, mean=self._mean,
                              std=self._std, channels_last=self.channels_last, threads=self.threads, seed=0,
                              shard_id=0, num_shards=1)
        runner = _AheadRunner(pipe, self.device)
        parity = (lambda k: pipe.feed_input("parity", np.zeros(count, dtype=np.int32))) \
            if self.augment.flip and self.augment.alternating_flip else (lambda k: None)
        images, codes = first_batch(runner.iterations(1, parity))
        labels = self._label_table[codes.reshape(-1).long() // 2].to(self.device, non_blocking=True)
        return _finish(images, self.dtype, self.channels_last), labels

    def images(self, count: int) -> torch.Tensor:
        """The first `count` images in sorted order, normalized and unaugmented (for data-dependent init)."""
        count = min(count, len(self.files))
        pipe = _file_pipeline(self.files[:count], list(range(count)), device=self.device, batch_size=count,
                              augment=Augment(), shuffle=False, size=self.size, mean=self._mean, std=self._std,
                              channels_last=False, threads=self.threads, seed=0, shard_id=0, num_shards=1)
        (images, _), = _AheadRunner(pipe, self.device).iterations(1, lambda k: None)
        return images


def _list_split(root: Path) -> tuple[list[str], list[int], tuple[str, ...]]:
    """(image paths, labels, classes) of one ImageFolder split: classes sorted, images by class then path,
    the order of the array data set made from the same folder."""
    if not root.is_dir():
        raise BenchError(f"{root} is not a folder: give a split folder holding <class>/<image> files")
    classes = tuple(sorted(child.name for child in root.iterdir()
                           if child.is_dir() and not child.name.startswith(".")))
    files, labels = [], []
    for label, cls in enumerate(classes):
        found = []
        for folder, dirs, names in os.walk(root / cls, followlinks=True):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [Path(folder) / n for n in names
                      if not n.startswith(".") and Path(n).suffix.lower() in IMAGE_SUFFIXES]
        found.sort(key=lambda path: path.relative_to(root / cls).parts)
        files += [str(path) for path in found]
        labels += [label] * len(found)
    if not files:
        raise BenchError(f"no images found under {root}/<class>/ (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files, labels, classes


# ---------------------------------------------------------------- pipeline parts ----

def _device_id(device: torch.device) -> int | None:
    if device.type == "cuda":
        return device.index if device.index is not None else torch.cuda.current_device()
    return None  # a CPU-only pipeline


def _dali_seed(seed: int, shard_id: int = 0) -> int:
    # DALI takes a non-negative 31-bit seed; ranks get different augmentation draws.
    return int(np.random.SeedSequence([seed, shard_id]).generate_state(1)[0] & 0x7FFFFFFF)


def _image_size(path: str) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as error:  # Pillow raises many types for unreadable files
        raise BenchError(f"cannot read the image size of {path}: {error}") from None
    return height, width


def _augment_graph(images, *, size: tuple[int, int], crop, mirror, corners, cutout: int, mean: torch.Tensor,
                   std: torch.Tensor, channels_last: bool):
    """Crop (translate), mirror, normalize to float32 and lay out in one operator, then cutout.

    `images` are padded by the translate amount; `crop` is (rows, cols) as fractions of the slack.
    channels_last is produced as an HWC buffer: its NCHW view in torch is channels-last memory.
    """
    options = dict(mean=mean.tolist(), std=std.tolist(), dtype=types.FLOAT,
                   output_layout="HWC" if channels_last else "CHW")
    if crop is not None:
        options.update(crop=size, crop_pos_y=crop[0], crop_pos_x=crop[1])
    if mirror is not None:
        options["mirror"] = mirror
    out = fn.crop_mirror_normalize(images, **options)
    if corners is not None:
        # corners may lie partly outside the image (as the reference draws them); erase clips them
        out = fn.erase(out, anchor=corners, shape=[float(cutout)] * 2, axis_names="HW", fill_value=0.0)
    return out


def _reflect_pad(images, pad: int, size: tuple[int, int]):
    """HWC images reflect-padded by `pad` (the edge row/column not repeated, as torch's 'reflect'):
    mirrored strips of the image glued on each side, columns first, then rows."""
    height, width = size

    def strips(data, axis: str, length: int):
        mirrored = dict(horizontal=1, vertical=0) if axis == "W" else dict(horizontal=0, vertical=1)
        before = fn.flip(fn.slice(data, start=[1], shape=[pad], axis_names=axis), **mirrored)
        after = fn.flip(fn.slice(data, start=[length - 1 - pad], shape=[pad], axis_names=axis), **mirrored)
        return fn.cat(before, data, after, axis_name=axis)

    return strips(strips(images, "W", width), "H", height)


def _file_pipeline(files: list[str], codes: list[int], *, device: torch.device, batch_size: int, augment: Augment,
                   shuffle: bool, size: tuple[int, int], mean: torch.Tensor, std: torch.Tensor,
                   channels_last: bool, threads: int, seed: int, shard_id: int, num_shards: int) -> Pipeline:
    pad = augment.translate
    if pad and pad >= min(size):
        raise BenchError(f"translate {pad} needs images larger than {pad} pixels a side (reflect padding); "
                         f"these are {size[1]}x{size[0]}")
    on_gpu = device.type == "cuda"
    pipe = Pipeline(batch_size=batch_size, num_threads=threads, device_id=_device_id(device), seed=seed,
                    prefetch_queue_depth=1)
    with pipe:
        # shuffle_after_epoch reshuffles the whole list every pass (the same way on every rank) and
        # each rank reads its slice: a true permutation per pass. (random_shuffle draws from a
        # buffer of initial_fill files, so on class-sorted lists early batches would be few classes.)
        # Its shuffle seed is fixed inside DALI; the list arrives already permuted by the run's seed.
        jpegs, code = fn.readers.file(files=files, labels=codes, shuffle_after_epoch=shuffle, pad_last_batch=True,
                                      shard_id=shard_id, num_shards=num_shards, name="reader")
        decoded = fn.decoders.image(jpegs, device="mixed" if on_gpu else "cpu",
                                    output_type=types.GRAY if len(mean) == 1 else types.RGB)
        mirror = None
        if augment.flip and augment.alternating_flip:
            # first-epoch flip (the code's low bit), inverted on odd epochs
            parity = fn.external_source(name="parity", dtype=types.INT32)
            mirror = (code & 1) ^ parity
        elif augment.flip:
            mirror = fn.random.coin_flip(probability=0.5, dtype=types.INT32)
        crop = None
        if pad:
            decoded = _reflect_pad(decoded, pad, size)
            fractions = [k / (2 * pad) for k in range(2 * pad + 1)]  # offsets 0..2p as fractions of the slack
            crop = (fn.random.uniform(values=fractions), fn.random.uniform(values=fractions))
        corners = None
        if augment.cutout:
            corners = fn.stack(fn.random.uniform(values=list(range(-augment.cutout + 1, size[0]))),
                               fn.random.uniform(values=list(range(-augment.cutout + 1, size[1]))))
        images = _augment_graph(decoded, size=size, crop=crop, mirror=mirror, corners=corners, cutout=augment.cutout,
                                mean=mean, std=std, channels_last=channels_last)
        pipe.set_outputs(images, code)
    pipe.build()
    return pipe


# ---------------------------------------------------------------- running ----

class _AheadRunner:
    """Runs a pipeline one iteration ahead of its consumer, handing out torch tensors on the device."""

    def __init__(self, pipe: Pipeline, device: torch.device):
        self.pipe, self.device = pipe, device
        self.scheduled = 0  # iterations scheduled over the pipeline's life (a reader counts its passes by it)

    def _schedule(self, feed: Callable[[int], None], k: int) -> None:
        feed(k)
        self.pipe.schedule_run()
        self.scheduled += 1

    def iterations(self, count: int, feed: Callable[[int], None]) -> Iterator[tuple[torch.Tensor, ...]]:
        """`count` iterations' outputs; `feed(k)` gives iteration k its inputs before it is scheduled."""
        if count == 0:
            return
        stream = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
        self._schedule(feed, 0)
        in_flight = 1
        try:
            for k in range(count):
                in_flight -= 1  # counted first: if DALI fails here, there is nothing left to collect
                outputs = self.pipe.outputs(cuda_stream=stream)
                tensors = tuple(_to_torch(out, stream) for out in outputs)
                if k + 1 < count:  # the next batch is made while the consumer works on this one
                    self._schedule(feed, k + 1)
                    in_flight += 1
                yield tensors
        finally:
            for _ in range(in_flight):  # the consumer stopped early: collect what was scheduled
                self.pipe.outputs()


def _to_torch(output, stream) -> torch.Tensor:
    """A copy of one pipeline output, on the GPU that made it or in host memory."""
    dense = output.as_tensor()
    on_gpu = isinstance(dense, TensorGPU)
    target = torch.empty(dense.shape(), dtype=to_torch_type[dense.dtype],
                         device=torch.device("cuda", dense.device_id()) if on_gpu else torch.device("cpu"))
    feed_ndarray(dense, target, cuda_stream=stream if on_gpu else None)
    return target


def _finish(images: torch.Tensor, dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
    if channels_last:
        images = images.permute(0, 3, 1, 2)  # an NHWC buffer seen as NCHW: channels-last memory, no copy
    # DALI has no bfloat16: cast here, from float32 as the reference does
    return images if dtype == torch.float32 else images.to(dtype)
