"""Faults after and during writing: a view of a run (weights, MLPerf log) that cannot be saved
keeps the run; a full disk or a process killed mid-write leaves no partial result file and
every earlier file intact."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import bench.record.files
from bench.cli import main
from bench.record.files import ResultWriter
from tests.helpers import separable_dataset, suite_text

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())
    suite = tmp_path / "tiny.toml"
    suite.write_text(suite_text(epochs=1))
    results = tmp_path / "results"
    results.mkdir()
    (results / "earlier.json").write_text('{"kept": true}')
    return suite, results


def result_files(results: Path) -> list[Path]:
    return sorted(p for p in results.iterdir() if p.name != "earlier.json")


def test_weights_that_cannot_be_saved_keep_the_run(setup, tmp_path, monkeypatch, capsys):
    suite, results = setup

    def full_disk(*args, **kwargs):
        raise FULL
    monkeypatch.setattr("bench.finetune.torch.save", full_disk)
    code = main(["run", str(suite), "--runs", "2", "--device", "cpu", "--results", str(results),
                 "--save-weights", str(tmp_path / "weights")])
    out, err = capsys.readouterr()
    assert code == 4, out + err
    assert "not saved" in out and "seed 0" in out and "No space left on device" in out and "Traceback" not in err
    [path] = result_files(results)
    record = json.loads(path.read_text())
    # the runs and their verdict stand; the file says where no weights went
    assert record["status"] == "complete" and len(record["runs"]) == 2 and record["aggregate"]["verdict"] == "PASS"
    assert [run["weights_file"] for run in record["runs"]] == [None, None]
    assert not any((tmp_path / "weights").iterdir())  # no partial weights file either


def test_an_mllog_that_cannot_be_written_after_training_is_said(setup, tmp_path, monkeypatch, capsys):
    suite, results = setup

    def full_disk(path, text):
        raise FULL
    monkeypatch.setattr("bench.reports.mlperf.write_log", full_disk)
    code = main(["run", str(suite), "--runs", "1", "--device", "cpu", "--results", str(results),
                 "--mllog", str(tmp_path / "run.log")])
    out, err = capsys.readouterr()
    assert code == 4 and "MLPerf log not written" in err and f"--mllog {tmp_path / 'run.log'}" in out
    [path] = result_files(results)
    assert json.loads(path.read_text())["status"] == "complete"


def test_a_full_disk_keeps_the_earlier_result_whole(setup, monkeypatch, capsys):
    """The second run's save hits a full disk: the file keeps the first run (as interrupted),
    whole, and no temp file stays."""
    suite, results = setup
    real, calls = os.fsync, []

    def full_on_the_second(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise FULL
        return real(fd)
    monkeypatch.setattr(bench.record.files.os, "fsync", full_on_the_second)
    code = main(["run", str(suite), "--runs", "2", "--device", "cpu", "--results", str(results)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 3 and len(lines) == 1 and "No space left on device" in lines[0] and "Traceback" not in err
    [path] = result_files(results)
    record = json.loads(path.read_text())
    assert record["status"] == "interrupted" and len(record["runs"]) == 1
    assert (results / "earlier.json").read_text() == '{"kept": true}'


WRITER = """
import json, sys
from pathlib import Path
from bench.record.files import ResultWriter
folder, mode, record = Path(sys.argv[1]), sys.argv[2], json.loads(Path(sys.argv[3]).read_text())
record["runs"] = record["runs"] * 40  # a large file: the kill lands inside a write more often
writer = ResultWriter(folder)
print("ready", flush=True)
while True:  # `run`: one invocation's file rewritten after each run; `sweep`: a new file per cell
    if mode == "sweep":
        writer = ResultWriter(folder, prefix="cell-")
    writer.write(record)
    print("wrote", flush=True)  # what the test waits for: a file published, the next write under way
"""


def valid_record() -> Path:
    """A result file of this schema version from the repository (the writer validates)."""
    from bench.record.schema import problem

    for path in sorted(Path(__file__).parent.parent.glob("results/runs/*.json")):
        if not problem(json.loads(path.read_text())):
            return path
    pytest.skip("no result file of this schema version in results/runs")


@pytest.mark.parametrize("mode", ["run", "sweep"])
def test_a_writer_killed_mid_write_leaves_only_whole_files(tmp_path, mode):
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "earlier.json").write_text('{"kept": true}')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), mode, str(valid_record())],
                              stdout=subprocess.PIPE, env=env)
    assert writer.stdout.readline().strip() == b"ready"
    # an observable event, not a fixed sleep (1.5 s under load had written nothing yet): the kill comes
    # after three published writes, while the writer is inside its next one
    for _ in range(3):
        assert writer.stdout.readline().strip() == b"wrote", "the writer ended before writing"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    names = sorted(p.name for p in folder.iterdir())
    published = [n for n in names if not n.startswith(".")]
    assert len(published) >= 2 and (mode == "sweep" or len(published) == 2)
    for name in published:  # every published file is whole
        json.loads((folder / name).read_text())
    assert (folder / "earlier.json").read_text() == '{"kept": true}'
    ResultWriter(folder)  # the next writer clears what the killed one left half written
    assert sorted(p.name for p in folder.iterdir()) == published
