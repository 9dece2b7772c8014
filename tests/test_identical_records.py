"""The result records of fixed runs, timings aside, equal those recorded before the redesign
(issue 22): moving the trainer, the record and the specs into their own packages changed no
number a run produces. The goldens in tests/fixtures/identical_records/ were written by this
file's `record_goldens` at commit 03e7091, the commit before the move.

Three fixed seeds of fashion-mnist-smoke, one sparse suite (magnitude pruning to an exact
target, with retraining) and one BPTT suite (truncated windows), each on a synthetic
set of overlapping classes on one CPU thread in fp32, so the arithmetic is the same on every run.

Regenerate (only when a change of numbers is intended, and say why in the commit):
    python -c "import tests.test_identical_records as t; t.record_goldens()"
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.datasets import ArrayDataset

GOLDENS = Path(__file__).parent / "fixtures" / "identical_records"

# suite, extra `bench run` arguments: short enough for CI, long enough to exercise each feature
CASES = {
    "smoke": ["fashion-mnist-smoke", "--runs", "3", "--seed", "0", "--set", "recipe.epochs=2",
              "--set", "recipe.batch_size=32", "--set", "recipe.eval_batch_size=64"],
    "sparse": ["fashion-mnist-mlp-pruned", "--runs", "1", "--set", "recipe.epochs=4",
               "--set", "recipe.sparsity.prune_epochs=[2]", "--set", "recipe.batch_size=32",
               "--set", "recipe.eval_batch_size=64", "--set", "model.args={hidden=[32]}"],
    "bptt": ["fashion-mnist-lstm-truncated", "--runs", "1", "--set", "recipe.epochs=1",
             "--set", "recipe.batch_size=32", "--set", "recipe.eval_batch_size=64",
             "--set", "recipe.bptt.length=4", "--set", "recipe.bptt.step=4",
             "--set", "model.args={hidden=16}"],
}

# Clock readings, rates, memory, the machine and the code: they differ on every run.
_VOLATILE_KEYS = {"id", "started_at", "finished_at", "env", "code", "command", "path", "weights_file",
                  "matmul_flops_per_s", "matmul_dtype", "train_images_per_s", "median_train_images_per_s",
                  "mfu", "median_mfu", "note",
                  # the policy trial's timings and probe; the choice it made stays pinned (precision, ...)
                  "policy_trial",
                  # the load the timed region met (bench.load): other processes' share of the CPU
                  "load"}
_VOLATILE_SUFFIXES = ("_s", "_mb", "_unix_s", "_w", "_pct", "_j", "_method", "_reason", "_source")


def _stable(value, key: str = ""):
    """The record without what depends on the clock or the machine."""
    if isinstance(value, dict):
        return {k: _stable(v, k) for k, v in value.items()
                if k not in _VOLATILE_KEYS and not k.endswith(_VOLATILE_SUFFIXES)}
    if isinstance(value, list):
        return [_stable(v, key) for v in value]
    return value


def _overlapping_dataset(n_train: int = 320, n_test: int = 128, size: int = 8) -> ArrayDataset:
    """Four classes by brightness with overlapping noise: no run reaches 100%, so the
    accuracies and losses differ from seed to seed and pin the arithmetic."""
    rng = np.random.default_rng(7)

    def split(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 4, n)
        base = 70 + 40 * labels[:, None, None, None]
        images = np.clip(base + rng.normal(0, 60, (n, size, size, 1)), 0, 255).astype(np.uint8)
        return images, labels.astype(np.int64)

    (train_x, train_y), (test_x, test_y) = split(n_train), split(n_test)
    return ArrayDataset(name="overlapping", train_images=train_x, train_labels=train_y, test_images=test_x,
                        test_labels=test_y, classes=("a", "b", "c", "d"), source="synthetic", sha256=None)


def _run_case(name: str, results: Path) -> dict:
    from bench.cli import main

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        data = _overlapping_dataset()
        patch.setattr("bench.runner.load_dataset", lambda *a, **k: data)
        patch.setattr("bench.datasets.load_dataset", lambda *a, **k: data)
        # The sparse case's precision is auto: its trial timed fp32 against bf16 and, on a loaded
        # machine, once chose bf16, another arithmetic. The probe is pinned to fp32 (bf16 called
        # hopeless), the choice the golden was recorded with; the other keys are explicit or have
        # one candidate (an MLP: NCHW only; compile's estimate never pays on a 40-step run).
        patch.setattr("bench.train.policy.bf16_probe", lambda device: {"hopeless": True, "why": "pinned by the test"})
        torch.set_num_threads(1)
        try:
            code = main(["run", *CASES[name], "--device", "cpu", "--results", str(results / name)])
        finally:
            torch.set_num_threads(threads)
    assert code in (0, 1), f"bench run {name} exited {code}"
    (path,) = sorted((results / name).glob("*.json"))
    return _stable(json.loads(path.read_text()))


def _assert_same(got, want, where: str = "record") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), \
            f"{where}: keys differ: only now {sorted(set(got) - set(want))}, only before {sorted(set(want) - set(got))}"
        for k in want:
            _assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: length {len(got)} != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and isinstance(got, float) and math.isfinite(want):
        assert got == want, f"{where}: {got!r} != {want!r}"
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_records_identical_to_before_the_redesign(name, tmp_path):
    want = json.loads((GOLDENS / f"{name}.json").read_text())
    _assert_same(_run_case(name, tmp_path), want)


def test_the_comparison_sees_a_changed_number():
    """The golden comparison fails on a one-ulp change of an accuracy (so it can fail)."""
    want = json.loads((GOLDENS / "smoke.json").read_text())
    changed = json.loads(json.dumps(want))
    changed["runs"][0]["accuracy"] = math.nextafter(changed["runs"][0]["accuracy"], 2.0)
    with pytest.raises(AssertionError, match=re.escape("runs[0].accuracy")):
        _assert_same(changed, want)


def record_goldens() -> None:
    import tempfile

    GOLDENS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in CASES:
            record = _run_case(name, Path(folder))
            (GOLDENS / f"{name}.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
