"""One run on many processes (DDP through torch.distributed.run, gloo on CPU).

Fast tests first: the loaders' shards, the launcher's argument handling and exit codes.
Then real processes: two gloo ranks of the trainer on synthetic data against one process,
the README's 2-process smoke run on Fashion-MNIST, and a rank killed mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.distributed import SINGLE, Dist, _exit_code, worker_argv
from bench.errors import BenchError
from bench.loaders import Augment, dali_available, make_loader

CPU = torch.device("cpu")
FASHION = Path("/usr/share/datasets/fashion-mnist")
REPO = Path(__file__).resolve().parent.parent


def _loader(kind: str, batch_size: int, shard=(0, 1), count: int = 100):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, count)
    return make_loader(kind, images, labels, device=CPU, batch_size=batch_size, mean=torch.full((3,), 100.0),
                       std=torch.full((3,), 50.0), augment=Augment(flip=True, alternating_flip=True, translate=2,
                                                                  cutout=3),
                       shuffle=True, drop_last=True, seed=7, shard=shard)


KINDS = ["resident", "torch"] + (["dali"] if dali_available() else [])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("world", [2, 4])
def test_each_ranks_batches_are_its_slice_of_the_one_process_batches(kind, world):
    """The first epochs of a world-size run are the one-process run's batches, each split in world
    consecutive slices, rank r serving slice r: images, augmentation and labels alike."""
    whole = _loader(kind, 16)
    ranks = [_loader(kind, 16 // world, shard=(r, world)) for r in range(world)]
    assert all(len(r) == len(whole) == 6 for r in ranks)
    for epoch in range(2):  # the alternating flip's second pass too
        passes = [list(r.epoch(epoch)) for r in ranks]
        for step, (images, labels) in enumerate(whole.epoch(epoch)):
            parts = [p[step] for p in passes]
            assert all(len(y) == 16 // world for _, y in parts)
            assert torch.equal(torch.cat([x for x, _ in parts]), images)
            assert torch.equal(torch.cat([y for _, y in parts]), labels)


def test_the_ranks_of_an_epoch_cover_the_served_images_once():
    ranks = [_loader("resident", 8, shard=(r, 2)) for r in range(2)]
    served = torch.cat([idx for r in ranks for idx in r.plan(0).batches])
    whole = torch.cat(_loader("resident", 16).plan(0).batches)
    assert sorted(served.tolist()) == sorted(whole.tolist()) and len(set(served.tolist())) == len(served) == 96


def test_a_shard_needs_drop_last_and_a_rank_inside_the_world():
    with pytest.raises(ValueError, match="rank must be"):
        _loader("resident", 8, shard=(2, 2))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="drop_last"):
        make_loader("resident", rng.integers(0, 256, (10, 4, 4, 1), dtype=np.uint8), np.zeros(10, dtype=np.int64),
                    device=CPU, batch_size=2, mean=torch.zeros(1), std=torch.ones(1), shard=(0, 2))


def test_the_global_batch_splits_evenly_or_is_refused():
    two = Dist(rank=1, world_size=2, backend="gloo")
    assert two.rank_batch(128) == 64 and SINGLE.rank_batch(127) == 127
    with pytest.raises(BenchError, match="does not split over world size 2"):
        two.rank_batch(127)


def test_test_shards_partition_the_test_set():
    images, labels = np.arange(11) * 10, np.arange(11)
    shards = [Dist(rank=r, world_size=3, backend="gloo").test_shard(images, labels) for r in range(3)]
    assert sorted(np.concatenate([y for _, y in shards]).tolist()) == list(range(11))
    assert SINGLE.test_shard(images, labels)[1] is labels


def test_the_workers_never_see_the_launcher_flags():
    argv = ["run", "smoke", "--nproc-per-node", "2", "--nnodes=2", "--node-rank", "1", "--rdzv-endpoint",
            "h:29500", "--dist-timeout", "60", "--device", "cpu", "--runs", "1"]
    assert worker_argv(argv) == ["run", "smoke", "--device", "cpu", "--runs", "1"]


def _failure(code):
    return SimpleNamespace(exitcode=code, signal_name=lambda: signal.Signals(-code).name if code < 0 else "")


def test_exit_code_is_rank_zeros_unless_a_rank_died():
    said = []
    assert _exit_code({0: _failure(1), 1: _failure(1)}, said.append) == 1  # verdict FAIL on every rank
    assert _exit_code({0: _failure(3), 1: _failure(-9)}, said.append) == 3
    assert said == ["rank 1 died (SIGKILL)"]
    assert _exit_code({1: _failure(-9)}, said.append) == 3  # rank 0 was stopped cleanly by the launcher
    assert _exit_code({1: _failure(2)}, said.append) == 2
    said.clear()
    assert _exit_code({0: _failure(-15), 1: _failure(-9)}, said.append) == 3
    assert said == ["rank 0 was stopped by the launcher (SIGTERM)", "rank 1 died (SIGKILL)"]


# ---------------------------------------------------------------- real processes ----

def _bench(*args: str, **kw) -> list[str]:
    return [sys.executable, "-m", "bench", *args]


WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
import torch
from helpers import separable_dataset, suite_text
from bench import distributed
from bench.suites import load_suite
from bench.train import PreparedData, train_run

dist = distributed.join(torch.device("cpu"))
suite = load_suite({suite!r})
ds = separable_dataset(n_test=101)
ds.test_labels[:7] ^= 1  # seven wrong labels: the accuracy is k/101 with k < 101
data = PreparedData.from_dataset(ds)
run = train_run(suite.resolved, data, seed=5, device=torch.device("cpu"), dist=dist)
if dist.is_main:
    open({out!r}, "w").write(json.dumps(run, default=str))
distributed.leave(dist)
distributed.exit_rank(0)  # as `python -m bench` ends a rank
"""


def test_two_gloo_ranks_train_the_one_process_run(tmp_path):
    """torchrun with two ranks, each on half of every batch, DDP averaging the gradients: the same
    losses and the same exact accuracy (over a test set of 101, padded shards of 51 and 50) as one
    process on the whole batches. The MLP has no batch norm, so only float summation order differs."""
    from helpers import separable_dataset, suite_text
    from bench.suites import load_suite
    from bench.train import PreparedData, train_run

    suite = str(tmp_path / "tiny.toml")
    # fp32: bf16 autocast (this CPU's auto precision) would round the half and the whole batch apart
    Path(suite).write_text(suite_text(epochs=3, tta=2).replace("tta = 2", 'tta = 2\nprecision = "fp32"'))
    script = tmp_path / "worker.py"
    out = tmp_path / "run.json"
    script.write_text(WORKER.format(tests=str(REPO / "tests"), suite=suite, out=str(out)))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(script)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads(out.read_text())
    ds = separable_dataset(n_test=101)
    ds.test_labels[:7] ^= 1
    one = train_run(load_suite(suite).resolved, PreparedData.from_dataset(ds), seed=5, device=CPU)
    assert two["steps"] == one["steps"] == 3 * (256 // 32) and two["train_images"] == one["train_images"]
    assert [p["loss"] for p in two["curve"]] == pytest.approx([p["loss"] for p in one["curve"]], rel=1e-4)
    assert two["accuracy"] == one["accuracy"] and 0.85 <= one["accuracy"] <= 94 / 101  # counts over all 101
    assert [p["accuracy"] for p in two["curve"]] == [p["accuracy"] for p in one["curve"]]
    assert [r["rank"] for r in two["ranks"]] == [0, 1] and "ranks" not in one


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed (make data)")
def test_fashion_mnist_smoke_on_two_gloo_ranks_writes_one_result(tmp_path):
    """The README's command on CPU: torch.distributed.run starts two gloo ranks; one result file,
    world size 2, the target reached by every run (the suite's five seeds: the seed loop re-wraps DDP)."""
    done = subprocess.run(_bench("run", "fashion-mnist-smoke", "--nproc-per-node", "2", "--device", "cpu",
                                 "--results", str(tmp_path)), capture_output=True, text=True,
                          timeout=900, cwd=tmp_path, env={**os.environ, "BENCH_DATA": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    [path] = list(tmp_path.glob("*.json"))
    record = json.loads(path.read_text())
    scale = record["env"]["distributed"]
    assert record["status"] == "complete" and record["aggregate"]["verdict"] == "PASS"
    assert scale["world_size"] == 2 and scale["nproc_per_node"] == 2 and scale["nnodes"] == 1
    assert scale["backend"] == "gloo" and [r["rank"] for r in scale["ranks"]] == [0, 1]
    assert len(record["runs"]) == 5
    assert all(run["accuracy"] >= 0.80 and len(run["ranks"]) == 2 for run in record["runs"])
    assert done.stdout.count("PASS") >= 1 and "2 ranks" in done.stdout


def _rank_pids(path: Path) -> dict[int, int]:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return {r["rank"]: r["pid"] for r in record["env"]["distributed"]["ranks"]}


LONG_SUITE = ('name = "long"\ntarget = 0.5\nruns = 3\n[dataset]\nname = "fashion-mnist"\ntrain_size = 4000\n'
              'test_size = 1000\n[model]\nname = "mlp"\nargs = { hidden = [64] }\n[recipe]\nepochs = 10\n'
              'batch_size = 64\nlr = 0.05\nprecision = "fp32"\ncurve_eval = false\n')


def _stop_after_the_first_run(tmp_path: Path, stop) -> tuple[int, str, dict]:
    """Starts three runs on two gloo ranks, calls stop(launcher, rank pids) once the first run is in
    the result file, and returns the exit code, stderr and the final record. The wait's limit only
    guards the test; the bound itself comes from gloo's closed connection, the launcher stopping
    the ranks, and the collectives' --dist-timeout."""
    suite = tmp_path / "long.toml"
    suite.write_text(LONG_SUITE)
    results = tmp_path / "results"
    launcher = subprocess.Popen(_bench("run", str(suite), "--nproc-per-node", "2", "--device", "cpu",
                                       "--results", str(results), "--dist-timeout", "60"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                start_new_session=True, env={**os.environ, "BENCH_DATA": str(tmp_path / "cache")})
    try:
        pids: dict[int, int] = {}
        while not pids and launcher.poll() is None:  # the file appears when the first run is saved
            time.sleep(0.2)
            pids = next((_rank_pids(p) for p in results.glob("*.json")), {})
        assert pids, launcher.communicate()[1][-3000:]
        stop(launcher, pids)
        _, err = launcher.communicate(timeout=300)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    [path] = list(results.glob("*.json"))
    return launcher.returncode, err, json.loads(path.read_text())


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed (make data)")
def test_a_killed_rank_ends_the_invocation_as_failed_with_the_finished_runs_kept(tmp_path):
    """Rank 1 is killed (SIGKILL) while the second of three runs trains: rank 0 records the
    invocation as failed with the first run kept, and the launcher exits 3 instead of hanging."""
    code, err, record = _stop_after_the_first_run(tmp_path, lambda launcher, pids: os.kill(pids[1], signal.SIGKILL))
    assert code == 3, err[-3000:]
    assert record["status"] == "failed" and record["aggregate"]["verdict"] == "INCOMPLETE"
    assert 1 <= len(record["runs"]) < 3 and all(r["status"] == "complete" for r in record["runs"])
    assert record["error"]["message"]
    assert "rank 1 died (SIGKILL)" in err


@pytest.mark.slow
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed (make data)")
def test_ctrl_c_ends_the_ranks_as_interrupted_with_the_finished_runs_kept(tmp_path):
    """Ctrl-C in a terminal reaches the launcher and every rank (one process group): exit 130,
    status interrupted, the first run kept."""
    code, err, record = _stop_after_the_first_run(tmp_path, lambda launcher, pids: os.killpg(launcher.pid,
                                                                                            signal.SIGINT))
    assert code == 130, err[-3000:]
    assert record["status"] == "interrupted" and record["aggregate"]["verdict"] == "INCOMPLETE", \
        (record["error"], err[-3000:])
    assert 1 <= len(record["runs"]) < 3 and record["error"] is None


def test_a_rank_whose_collective_failed_on_a_peers_ctrl_c_records_its_own_ctrl_c():
    """With Ctrl-C every rank is signalled, but one blocked in a collective can see the faster
    peer's exit first: its own SIGINT, arriving within the grace, is what ended it. Without one,
    the failure stands. Either way the launcher's SIGTERM can no longer cut the save short."""
    import threading

    from bench.distributed import Terminated, settle

    saved, saved_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    # Python's own Ctrl-C handler, as in a rank (an earlier test in this process may have left another)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        peer_gone = RuntimeError("Connection closed by peer")
        timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        assert isinstance(settle(peer_gone), KeyboardInterrupt)
        timer.join()
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
        assert settle(peer_gone) is peer_gone
        interrupt = KeyboardInterrupt()
        assert settle(interrupt) is interrupt
        # the launcher's SIGTERM raised while this rank's own Ctrl-C was being handled: the Ctrl-C
        try:
            try:
                raise interrupt
            except KeyboardInterrupt:
                raise Terminated("stopped by the launcher (SIGTERM)")
        except Terminated as stopped:
            assert settle(stopped) is interrupt
        alone = Terminated("stopped by the launcher (SIGTERM): another rank ended")
        assert settle(alone) is alone  # a SIGTERM of its own (a peer died) stays a failure
    finally:
        signal.signal(signal.SIGTERM, saved)
        signal.signal(signal.SIGINT, saved_int)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the dropped Ctrl-C, as intended
def test_a_ctrl_c_dropped_in_a_finalizer_is_still_the_ranks_cause(monkeypatch):
    """Python drops a KeyboardInterrupt raised inside a finalizer ("Exception ignored"): the rank
    trains on until its next collective fails on the peers' exit. The Ctrl-C noted by the rank's
    handler is still the cause, and at once (no grace to wait for a signal that already came)."""
    from bench import distributed
    from bench.distributed import settle

    saved, saved_int = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):  # the handler runs at one of the interpreter's checks in here
                pass

    try:
        distributed._remember_ctrl_c()
        peer_gone = RuntimeError("Connection closed by peer")
        assert settle(peer_gone) is peer_gone  # no Ctrl-C came: the failure stands
        signal.signal(signal.SIGTERM, saved)
        # a grace far past any descheduling on a busy machine: waiting it (the fault) is told from not
        # waiting (the fix) by minutes, not by the real 0.5 s
        monkeypatch.setattr(distributed, "SIGNAL_GRACE_S", 120.0)
        obj = Finalized()
        del obj  # the KeyboardInterrupt is raised and dropped here
        start = time.monotonic()
        cause = settle(peer_gone)
        assert isinstance(cause, KeyboardInterrupt) and cause.__context__ is peer_gone
        assert time.monotonic() - start < distributed.SIGNAL_GRACE_S / 2
    finally:
        distributed._ctrl_c.seen = False
        signal.signal(signal.SIGTERM, saved)
        signal.signal(signal.SIGINT, saved_int)
