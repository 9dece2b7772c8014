"""A tiny stand-in for cifar10-jpeg.tar.xz, for the GPU check's CPU dry run (scripts/gpu_check.sh).

Same layout as the real archive (cifar10-jpeg/train/<class>/NNNN.jpg, .../test/...), 32x32 RGB
JPEGs at quality 75, but few images, each a noisy tint of its class's colour so that a few
epochs learn something. The real archive is 18.6 MB and not in every checkout; this one is
made in a second and needs only Pillow (a bench dependency) beside the standard library.

usage: python3 scripts/make_tiny_jpeg_archive.py OUT.tar.xz [--train N] [--test N]  (per class)
"""

from __future__ import annotations

import argparse
import io
import random
import sys
import tarfile
import time
from pathlib import Path

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SIZE = 32
NOISE = 60  # pixel noise amplitude: classes stay separable, images are not flat


def class_colour(index: int) -> tuple[int, int, int]:
    """Ten distinct colours, each channel at one of three levels (checked distinct below)."""
    levels = (40, 128, 216)
    return levels[index % 3], levels[(index // 3) % 3], levels[(index // 9 + index) % 3]


assert len({class_colour(i) for i in range(len(CLASSES))}) == len(CLASSES)


def jpeg_bytes(colour: tuple[int, int, int], rng: random.Random) -> bytes:
    from PIL import Image

    pixels = bytes(max(0, min(255, c + rng.randint(-NOISE, NOISE)))
                   for _ in range(SIZE * SIZE) for c in colour)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (SIZE, SIZE), pixels).save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()


def write_archive(out: Path, per_class: dict[str, int], seed: int = 0) -> None:
    rng = random.Random(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = out.with_name(out.name + ".part")
    with tarfile.open(temp, "w:xz") as tar:
        for split, count in per_class.items():
            for index, name in enumerate(CLASSES):
                for number in range(count):
                    data = jpeg_bytes(class_colour(index), rng)
                    info = tarfile.TarInfo(f"cifar10-jpeg/{split}/{name}/{number:04d}.jpg")
                    info.size, info.mtime = len(data), int(time.time())
                    tar.addfile(info, io.BytesIO(data))
    temp.replace(out)  # never a half-written archive under the real name


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train", type=int, default=60, help="training images per class (default 60)")
    parser.add_argument("--test", type=int, default=20, help="test images per class (default 20)")
    args = parser.parse_args(argv)
    if args.train < 1 or args.test < 1:
        print("error: --train and --test must be at least 1 image per class", file=sys.stderr)
        return 2
    write_archive(args.out, {"train": args.train, "test": args.test})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
