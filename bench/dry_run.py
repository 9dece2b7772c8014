"""`bench run --dry-run`: everything a run checks before it trains, and nothing after.

The suite (loaded and validated already), its seeds against the calibration that chose its
target, the data (found, read, subset as the suite asks), the model (built on the data's shape,
counted), and the destinations (the results folder made and written to; --save-weights and
--mllog were checked by the caller). A problem is the run's own one line; none is one line a
suite saying what the run would use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.progress import Reporter
from bench.runner import Invocation
from bench.suites import Suite


def dry_run(suites: list[Suite], *, runs: int | None, seed: int, device_choice: str, results_dir: Path,
            reporter: Reporter, offline: bool, loader: str) -> list[dict[str, Any]]:
    """What each suite's run would use, checked as the run checks it, without training."""
    import torch

    from bench.loaders import choose_loader
    from bench.train import resolve_device

    device = resolve_device(device_choice)
    choose_loader(loader, 0, device)  # an unknown or uninstalled loader
    checked = []
    for suite in suites:
        entrant = Invocation(suite, runs=runs, seed=seed, device=device, results_dir=results_dir, reporter=reporter,
                             offline=offline, command=None, loader=loader)
        # the matmul rate is the MFU's denominator, measured for seconds: not needed to check anything
        entrant.prepare(peak=(0.0, torch.float32))
        record = entrant.record
        checked.append({"suite": suite.name, "file": str(suite.path), "device": device.type,
                        "seeds": entrant.seeds, "results": str(results_dir),
                        "dataset": {k: record["dataset"].get(k) for k in ("name", "train_size", "test_size",
                                                                         "validation_size", "shape")},
                        "model": {"name": suite.model["name"], "params": record["model"].get("params")},
                        "calibration": record["invocation"]["calibration"] is not None})
    return checked


def describe(check: dict[str, Any]) -> str:
    """One line: what the run would train on, where it would write."""
    data, seeds = check["dataset"], check["seeds"]
    shape = "x".join(map(str, data["shape"])) if data.get("shape") else "?"
    span = f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    params = f"{check['model']['params']:,} params" if isinstance(check["model"]["params"], int) else "params ?"
    return (f"{check['suite']}: ready — {data['name']} {data['train_size']} train / {data['test_size']} test "
            f"images ({shape}), model {check['model']['name']} ({params}), seeds {span} on {check['device']}, "
            f"result file in {check['results']}")
