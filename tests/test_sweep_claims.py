"""Two `bench sweep` processes of one study into one folder at once: each cell is trained once
(cells are claimed across processes), and no claim outlives the sweeps."""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.helpers import STUDY_BASE

STUDY = """
name = "claims"
description = "two concurrent sweeps share these cells"
suite = "base.toml"
seeds = [0, 1, 2]
[set]
"dataset.path" = "{data}"
"recipe.epochs" = 1
"recipe.train_eval" = 0
[axes]
"recipe.lr" = [0.01, 0.002]
"""


def write_idx(folder: Path, train: int = 128, test: int = 64) -> None:
    """A tiny Fashion-MNIST look-alike: the four gzipped IDX files the loader reads."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for prefix, count in (("train", train), ("t10k", test)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, count, dtype=np.uint8)
        with gzip.open(folder / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBBIII", 0, 0x08, 3, count, 28, 28) + images.tobytes())
        with gzip.open(folder / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">HBBI", 0, 0x08, 1, count) + labels.tobytes())


def test_two_concurrent_sweeps_train_each_cell_once(tmp_path):
    write_idx(tmp_path / "data")
    (tmp_path / "base.toml").write_text(STUDY_BASE)
    study = tmp_path / "claims.toml"
    study.write_text(STUDY.format(data=tmp_path / "data"))
    results = tmp_path / "results"
    env = {**os.environ, "BENCH_DATA": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).parent.parent)}
    command = [sys.executable, "-m", "bench", "sweep", str(study), "--results", str(results), "--device", "cpu"]
    # one in this process, one through two worker processes (each cell claimed as it is handed out)
    sweeps = [subprocess.Popen(command + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
              for extra in ([], ["--workers", "2"])]
    outputs = [sweep.communicate(timeout=300) for sweep in sweeps]
    assert [sweep.returncode for sweep in sweeps] == [0, 0], outputs
    runs = results / "studies" / "claims" / "runs"
    records = [json.loads(path.read_text()) for path in runs.glob("*.json")]
    cells = [record["study"]["cell"] for record in records]
    assert len(cells) == 6 and len(set(cells)) == 6, sorted(cells)  # 2 points x 3 seeds, each once
    assert all(record["status"] == "complete" for record in records)
    assert not list(runs.glob("*.claim"))
