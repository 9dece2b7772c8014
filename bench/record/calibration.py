"""Calibration files: where a suite's target comes from when no published result sets it.

`bench calibrate SUITE --runs N` trains N seeds drawn from a range the verdicts never use
(1000 and up by default; `bench run` judges seeds 0, 1, ...), and turns their final accuracies
into a target by a stated rule (the Q-quantile, rounded down to 0.001). The file it writes,
`results/calibration/<suite>-<id>.json`, holds the seeds, each run's accuracy, the suite and its
hash, the machine, the code, the rule and the target. A suite cites it with
`target_source = "calibration:PATH"`, and `bench run` then refuses to judge any seed the
calibration used: a verdict on the runs that chose the target would be a tautology.

Everything here reads or writes files; the training is the runner's (bench/calibrate.py).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BenchError
from bench.record.files import link_new, new_run_id, staged_file
from bench.suites import Suite

KIND = "bench-calibration"
FORMAT = 1
CALIBRATION_PREFIX = "calibration:"
REFERENCE_PREFIX = "reference:"
NO_SOURCE = "no source"
# The rounding of an implied target: down, so the suite's written target is never above the statistic.
TARGET_STEP = 0.001


def repository_root(suite_path: Path) -> Path:
    """The checkout a suite file lives in (the nearest folder above it holding .git, a folder in a
    clone, a file in a worktree); the suite's own folder when it is in none."""
    start = Path(suite_path).resolve().parent
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return start


def cited_path(suite: Suite) -> Path | None:
    """The calibration file a suite cites, or None when its target has another source (or none)."""
    source = suite.target_source
    if not source or not source.startswith(CALIBRATION_PREFIX):
        return None
    path = Path(source[len(CALIBRATION_PREFIX):].strip()).expanduser()
    return path if path.is_absolute() else repository_root(suite.path) / path


def citation(path: Path, suite_path: Path) -> str:
    """What a suite writes to cite `path`: relative to its repository root when inside it."""
    root, path = repository_root(suite_path), Path(path).resolve()
    return CALIBRATION_PREFIX + (str(path.relative_to(root)) if path.is_relative_to(root) else str(path))


def problem(data: Any) -> str | None:
    """Why `data` is not a calibration this code can trust, in words; None when it is one."""
    if not isinstance(data, dict) or data.get("kind") != KIND:
        return f"is not a calibration file (no \"kind\": \"{KIND}\")"
    if data.get("format") != FORMAT:
        return f"has format {data.get('format')!r}, which this bench does not read (it reads {FORMAT})"
    seeds, accuracies, target = data.get("seeds"), data.get("accuracies"), data.get("target")
    if not isinstance(seeds, list) or not seeds or not all(type(s) is int for s in seeds) \
            or len(set(seeds)) != len(seeds):
        return "has no list of distinct integer 'seeds'"
    if not isinstance(accuracies, list) or len(accuracies) != len(seeds) \
            or not all(type(a) in (int, float) and 0 <= a <= 1 for a in accuracies):
        return "has no 'accuracies' in [0, 1], one per seed"
    if type(target) not in (int, float) or not 0 < target <= 1:
        return "has no 'target' in (0, 1]"
    if not isinstance(data.get("rule"), dict) or not isinstance(data["rule"].get("text"), str):
        return "does not say by which 'rule' the accuracies became the target"
    return _target_not_from_rule(data)


def _target_not_from_rule(data: dict[str, Any]) -> str | None:
    """The target recomputed from the accuracies by the file's rule: one edited by hand (no longer
    what the rule gives) was trusted and recorded without a word."""
    rule, quantile = data["rule"], data["rule"].get("quantile")
    if rule.get("kind") != "quantile" or type(quantile) not in (int, float) or not 0 < quantile < 1:
        return f"has a rule this bench cannot recompute ({rule.get('kind')!r} with quantile {quantile!r})"
    recomputed, _ = implied_target(data["accuracies"], quantile)
    if abs(recomputed - data["target"]) > 1e-9:
        return (f"says target {data['target']:g}, but its rule gives {recomputed:g} from its own accuracies "
                "(edited by hand?)")
    return None


def read_calibration(suite: Suite) -> dict[str, Any] | None:
    """The calibration the suite cites, checked; None when it cites none. A missing or invalid
    file is one BenchError line naming the suite file and the key."""
    path = cited_path(suite)
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        why = "does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        why = f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    except json.JSONDecodeError as exc:
        why = f"is not JSON ({exc.msg}, line {exc.lineno})"
    except RecursionError:
        why = "is not JSON bench reads (nested too deeply)"
    else:
        why = problem(data)
        if why is None:
            return {**data, "path": str(path)}
    raise BenchError(f"{suite.path}: 'target_source' cites the calibration file {path}, which {why}; fix the "
                     f"path, or run 'bench calibrate {suite.name} --runs 5' and cite the file it writes")


def seed_span(seeds: list[int]) -> str:
    """1000–1004 for a run of consecutive seeds, else the list."""
    ordered = sorted(seeds)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{ordered[0]}–{ordered[-1]}"
    return ", ".join(map(str, ordered))


def refuse_calibrated_seeds(suite: Suite, seeds: list[int]) -> dict[str, Any] | None:
    """Before any training: the calibration the suite cites (as the result records it), or a
    BenchError when a seed to judge is one the calibration trained on."""
    calibration = read_calibration(suite)
    if calibration is None:
        return None
    used = sorted(set(seeds) & set(calibration["seeds"]))
    if used:
        raise BenchError(f"{suite.name}: seed {used[0]} is one of the seeds that set its target (calibration "
                         f"{calibration['path']}, seeds {seed_span(calibration['seeds'])}); a verdict on them "
                         "would judge the runs that chose the target: pick --seed outside that range (e.g. --seed 0)")
    return {"file": suite.target_source[len(CALIBRATION_PREFIX):].strip(), "id": calibration.get("id"),
            "seeds": calibration["seeds"], "rule": calibration["rule"]["text"], "target": calibration["target"]}


def implied_target(accuracies: list[float], quantile: float) -> tuple[float, dict[str, Any]]:
    """The target the accuracies imply: their Q-quantile (linear interpolation between order
    statistics, numpy's default), rounded down to TARGET_STEP; and the rule in data and words."""
    statistic = float(np.quantile(np.asarray(accuracies, dtype=float), quantile))
    # the small epsilon keeps a statistic that is already on the grid (0.87 as 0.8699999...) on it
    target = math.floor(statistic / TARGET_STEP + 1e-9) * TARGET_STEP
    text = (f"the {quantile:g}-quantile of {len(accuracies)} runs' final accuracies (linear interpolation), "
            f"rounded down to {TARGET_STEP:g}")
    rule = {"kind": "quantile", "quantile": quantile, "statistic": statistic, "rounding": f"down to {TARGET_STEP:g}",
            "text": text}
    return round(target, 6), rule


class CalibrationNotWritten(BenchError):
    """The disk refused the calibration file after the training: exit 3, as a result file's."""

    exit_code = 3


def write_calibration(folder: Path, suite_name: str, record: dict[str, Any]) -> Path:
    """Writes `<suite>-<id>.json` atomically under a name never used before; the id goes in the record."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            record["id"] = new_run_id()
            text = json.dumps(record, indent=1, allow_nan=False) + "\n"
            assert problem(json.loads(text)) is None, problem(json.loads(text))
            with staged_file(folder, text, ".json") as staged:
                path = folder / f"{suite_name}-{record['id']}.json"
                if link_new(staged, path):
                    return path
    except OSError as exc:  # after the training: a fault, not bad input; the figures are in the line
        raise CalibrationNotWritten(
            f"calibration file not written in {folder} ({exc.strerror or exc}): target {record['target']:g} from "
            f"seeds {seed_span(record['seeds'])} with accuracies {', '.join(f'{a:.4f}' for a in record['accuracies'])}; "
            "free some space or choose another folder with --out DIR and run again") from None
    raise BenchError(f"could not find a free calibration file name in {folder}")


def source_text(suite: Suite) -> str:
    """The target's source in words, for `bench list`: the reference, or the cited calibration
    and its rule; 'no source' for a user suite that names none. An invalid citation raises."""
    source = suite.target_source
    if not source:
        return NO_SOURCE
    if source.startswith(REFERENCE_PREFIX):
        return source[len(REFERENCE_PREFIX):].strip()
    calibration = read_calibration(suite)
    relative = source[len(CALIBRATION_PREFIX):].strip()
    return f"calibration {os.path.basename(relative)}: {calibration['rule']['text']}, seeds " \
           f"{seed_span(calibration['seeds'])} -> {calibration['target']:g}"


def record_source_text(record: dict[str, Any]) -> str:
    """The target's source as a result file records it (for the leaderboard, which reads only
    result files): the suite's target_source, with the calibration's rule when recorded."""
    resolved = (record.get("suite") or {}).get("resolved") or {}
    source = resolved.get("target_source")
    if not isinstance(source, str) or not source:
        return NO_SOURCE
    if source.startswith(REFERENCE_PREFIX):
        return source[len(REFERENCE_PREFIX):].strip()
    facts = (record.get("invocation") or {}).get("calibration")
    if not isinstance(facts, dict):
        return source
    return f"calibration {os.path.basename(str(facts.get('file')))}: {facts.get('rule')}, seeds " \
           f"{seed_span(facts.get('seeds') or [0])} -> {facts.get('target')}"
