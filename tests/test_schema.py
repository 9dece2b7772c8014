"""The result schema: what the harness writes fits it, what is committed fits it, and a file
that does not is named with its field by every reader, in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from bench.cli import main
from bench.record.files import InvalidRecord, ResultWriter
from bench.record.schema import SCHEMA_PATH, SCHEMA_VERSION, migrate, result_schema
from bench.reports.frame import read_results
from bench.runner import run_invocation
from bench.suites import load_suite
from tests.helpers import separable_dataset, suite_text

REPO = Path(__file__).resolve().parent.parent
COMMITTED = sorted((REPO / "results" / "runs").glob("*.json")) + sorted((REPO / "results" / "baselines").glob("*.json"))
FIXTURES = sorted((REPO / "tests" / "fixtures" / "results" / "runs").glob("*.json"))


def _properties(schema: dict, where: str = ""):
    """Every (path, subschema) that names a field."""
    for name, sub in (schema.get("properties") or {}).items():
        yield f"{where}.{name}", sub
        yield from _properties(sub, f"{where}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _properties(schema["items"], f"{where}[]")
    for name, sub in (schema.get("$defs") or {}).items():
        yield from _properties(sub, f"#{name}")


def test_the_schema_is_valid_and_documents_every_field():
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    fields = list(_properties(schema))
    assert len(fields) > 100
    undocumented = [path for path, sub in fields if len(sub.get("description", "")) < 8]
    assert not undocumented
    numeric = [path for path, sub in fields
               if {"number", "integer"} & set(sub.get("type") if isinstance(sub.get("type"), list) else [sub.get("type")])]
    assert ".runs" not in numeric and "#run.time_to_target_s" in numeric
    assert not [path for path in numeric if "x-unit" not in dict(fields)[path]]
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION


@pytest.mark.parametrize("path", COMMITTED + FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_committed_result_file_validates(path):
    record = json.loads(path.read_text())
    jsonschema.validate(migrate(record), result_schema())


def test_a_file_the_harness_writes_validates(tmp_path, monkeypatch):
    monkeypatch.setattr("bench.runner.load_dataset", lambda *a, **k: separable_dataset())
    suite_file = tmp_path / "tiny.toml"
    suite_file.write_text(suite_text(mode="reach", target=0.8, epochs=4))
    _, path = run_invocation(load_suite(str(suite_file)), runs=2, device_choice="cpu", results_dir=tmp_path / "runs")
    record = json.loads(path.read_text())
    jsonschema.validate(record, result_schema())  # jsonschema itself, not bench's wrapper
    assert record["schema_version"] == SCHEMA_VERSION
    for run in record["runs"]:
        # the anchors: set-up starts before the clock does, and both are this run's wall-clock times
        assert record["started_at"] <= _iso(run["init_start_unix_s"]) and \
            run["init_start_unix_s"] <= run["clock_start_unix_s"]
        previous_end = 0.0
        for point in run["curve"]:
            assert previous_end <= point["start_s"] <= point["train_end_s"] <= point["time_s"]
            if point["eval_start_s"] is not None:
                assert point["train_end_s"] <= point["eval_start_s"] <= point["time_s"]
            previous_end = point["time_s"]
        assert run["time_to_target_s"] == run["curve"][-1]["time_s"]  # reach mode: the deciding evaluation's end


def _iso(unix_s: float) -> str:
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix_s))


def test_an_older_schema_version_still_loads_and_its_file_is_not_rewritten(tmp_path):
    old = next(p for p in COMMITTED if json.loads(p.read_text())["schema_version"] < SCHEMA_VERSION)
    copy = tmp_path / old.name
    shutil.copy(old, copy)
    before = copy.read_bytes()
    found = read_results(copy)
    assert len(found.invocations) == 1 and len(found.runs) == len(json.loads(before)["runs"])
    assert copy.read_bytes() == before
    migrated = migrate(json.loads(before))
    assert migrated["schema_version"] == SCHEMA_VERSION
    assert all(run["clock_start_unix_s"] is None for run in migrated["runs"])  # not recorded then: null, not made up


def test_the_writer_refuses_a_record_its_schema_refuses(tmp_path):
    record = json.loads(COMMITTED[0].read_text())
    record = migrate(record)
    record["runs"][0]["accuracy"] = "high"
    with pytest.raises(InvalidRecord, match=r"runs\[0\]\.accuracy"):
        ResultWriter(tmp_path).write(record)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- readers name a bad file ----

def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def corrupted(tmp_path):
    """A copy of the committed results/ with one result file corrupted by hand."""
    folder = tmp_path / "results"
    shutil.copytree(REPO / "results", folder)
    victim = sorted((folder / "runs").glob("*.json"))[-1]
    record = json.loads(victim.read_text())
    record["runs"][1]["time_to_target_s"] = "fast"
    victim.write_text(json.dumps(record, indent=1))
    return folder, victim


@pytest.mark.parametrize("command", ["leaderboard", "compare", "check", "export"])
def test_every_reader_names_the_corrupted_file_and_field(capsys, corrupted, command):
    folder, victim = corrupted
    before = snapshot(folder)
    args = {"check": ["check", str(next((folder / "baselines").glob("*.json"))), "--results", str(folder)]}.get(
        command, [command, "--results", str(folder)])
    code = main(args)
    _, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert str(victim) in lines[0] and "runs[1].time_to_target_s" in lines[0] and "'fast'" in lines[0]
    assert snapshot(folder) == before


def test_a_result_of_an_unknown_future_version_is_one_line(capsys, corrupted):
    folder, victim = corrupted
    record = json.loads(victim.read_text())
    record["schema_version"] = SCHEMA_VERSION + 1
    victim.write_text(json.dumps(record))
    assert main(["leaderboard", "--results", str(folder)]) == 2
    assert f"schema_version {SCHEMA_VERSION + 1} is not one this bench reads" in capsys.readouterr().err

