"""An invocation: N runs of one suite, each written to the result file as it finishes.

suite -> dataset (prepared once) -> per seed: train_run -> record -> aggregate -> result file.
Ctrl-C keeps the finished runs (status interrupted); a NaN loss ends the invocation
as diverged; an unexpected error is recorded as failed, with the error, and re-raised.
"""

from __future__ import annotations

import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.datasets import ArrayDataset, load_dataset
from bench.env import code_version, fingerprint
from bench.errors import BenchError
from bench.loaders import choose_loader
from bench.measure import aggregate, count_params, forward_flops_per_image, matmul_flops_per_s
from bench.models import build_model
from bench.progress import NullReporter, Reporter
from bench.results import SCHEMA_VERSION, ResultWriter
from bench.suites import Suite
from bench.train import PreparedData, resolve_device, train_run


class Interrupted(Exception):
    """Ctrl-C during an invocation; the finished runs were written."""

    def __init__(self, path: Path | None):
        super().__init__("interrupted")
        self.path = path


def subset(dataset: ArrayDataset, train_size: int | None, test_size: int | None) -> ArrayDataset:
    """A fixed subset (the same for every seed and run): the first N of a seed-0 permutation."""
    def pick(images: np.ndarray, labels: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
        if size is None or size >= len(labels):
            return images, labels
        order = np.sort(np.random.default_rng(0).permutation(len(labels))[:size])
        return images[order], labels[order]

    if train_size is None and test_size is None:
        return dataset
    train_x, train_y = pick(dataset.train_images, dataset.train_labels, train_size)
    test_x, test_y = pick(dataset.test_images, dataset.test_labels, test_size)
    return ArrayDataset(name=dataset.name, train_images=train_x, train_labels=train_y, test_images=test_x,
                        test_labels=test_y, classes=dataset.classes, source=dataset.source, sha256=dataset.sha256)


def model_figures(suite: Suite, data: PreparedData) -> dict[str, Any]:
    model = build_model(suite.model["name"], data.num_classes, data.in_shape, suite.model["args"], where="model")
    flops = forward_flops_per_image(model, data.in_shape)
    return {"name": suite.model["name"], "args": suite.model["args"], **count_params(model),
            "flops_per_image": flops, "train_flops_per_image": 3 * flops, "input_shape": list(data.in_shape)}


def mfu(run: dict[str, Any], train_flops_per_image: int, peak_flops_per_s: float) -> float | None:
    """Model FLOPs utilization: training FLOPs (3x forward) per second of training time,
    over the dense matmul rate measured on this device in this invocation."""
    if not run.get("train_images_per_s") or not peak_flops_per_s:
        return None
    return train_flops_per_image * run["train_images_per_s"] / peak_flops_per_s


def run_invocation(suite: Suite, *, runs: int | None = None, seed: int = 0, device_choice: str = "auto",
                   results_dir: Path, reporter: Reporter | None = None, offline: bool = False,
                   command: list[str] | None = None, loader: str = "auto") -> tuple[dict[str, Any], Path | None]:
    reporter = reporter or NullReporter()
    device = resolve_device(device_choice)
    choose_loader(loader, 0, device)  # an unknown or uninstalled loader is refused before any work
    writer = ResultWriter(results_dir)  # refuses an unwritable folder before any work
    count = runs if runs is not None else suite.resolved["runs"]
    if count < 1:
        raise BenchError(f"--runs {count}: give at least 1")
    seeds = [seed + i for i in range(count)]

    t0 = time.perf_counter()
    dataset = load_dataset(suite.dataset["name"], path=suite.dataset["path"], reporter=reporter, offline=offline)
    dataset = subset(dataset, suite.dataset["train_size"], suite.dataset["test_size"])
    data = PreparedData.from_dataset(dataset)
    data_prep_s = time.perf_counter() - t0

    matmul_dtype = torch.bfloat16 if device.type == "cuda" or fingerprint(device)["cpu"]["fast_bf16"] else torch.float32
    peak = matmul_flops_per_s(device, matmul_dtype)

    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": writer.run_id,
        "status": "interrupted",  # until the last run is in
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "finished_at": None,
        "suite": {"name": suite.name, "hash": suite.hash, "overrides": suite.overrides,
                  "path": str(suite.path), "resolved": suite.resolved},
        "code": code_version(),
        "env": fingerprint(device),
        "model": model_figures(suite, data),
        "dataset": {"name": dataset.name, "source": dataset.source, "sha256": dataset.sha256,
                    "train_size": len(dataset.train_labels), "test_size": len(dataset.test_labels),
                    "classes": list(dataset.classes), "shape": list(data.in_shape)},
        "invocation": {"device": device.type, "seeds": seeds, "data_prep_s": data_prep_s, "loader": loader,
                       "matmul_flops_per_s": peak, "matmul_dtype": str(matmul_dtype).replace("torch.", ""),
                       "command": command or sys.argv},
        "runs": [],
        "aggregate": aggregate([], suite.target),
        "error": None,
    }
    path: Path | None = None

    def save(status: str) -> Path:
        record["status"] = status
        record["aggregate"] = aggregate(record["runs"], suite.target)
        if status in ("interrupted", "failed"):
            # the figures over the finished runs stay, but a partial invocation earns no verdict
            record["aggregate"]["verdict"] = "INCOMPLETE"
        record["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return writer.write(record)

    try:
        for i, s in enumerate(seeds):
            run = train_run(suite.resolved, data, s, device, reporter, label=f"run {i + 1}/{count} seed {s}",
                            loader=loader)
            run["mfu"] = mfu(run, record["model"]["train_flops_per_image"], peak)
            record["runs"].append(run)
            if run["status"] == "diverged":
                reporter.notice(f"seed {s}: the loss became NaN or infinite; the invocation ends as diverged")
                return record, save("diverged")
            path = save("interrupted" if i + 1 < count else "complete")
        return record, path
    except KeyboardInterrupt:
        path = save("interrupted") if record["runs"] else None
        raise Interrupted(path) from None
    except BenchError as exc:
        if record["runs"]:  # keep what finished; bad input before any run leaves results/ untouched
            record["error"] = {"type": "BenchError", "message": str(exc)}
            save("failed")
        raise
    except Exception as exc:
        record["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": traceback.format_exc()}
        save("failed")
        raise
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
