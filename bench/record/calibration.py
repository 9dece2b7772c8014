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
from typing import Any, Callable

import numpy as np

from bench.errors import BenchError
from bench.record.files import link_new, new_run_id, staged_file
from bench.suites import Suite, shipped_calibration_dir, shipped_suites_dir

KIND = "bench-calibration"
FORMAT = 1
CALIBRATION_PREFIX = "calibration:"
REFERENCE_PREFIX = "reference:"
# a target named as a goal, citing a calibration ("... evidence calibration:PATH") that shows it reachable
GOAL_PREFIX = "goal:"
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


def cited_file(source: str | None) -> str | None:
    """The calibration file a target_source cites as written: the whole of a "calibration:" source,
    the evidence of a "goal:" one; None for a reference or no source."""
    if not source:
        return None
    if source.startswith(CALIBRATION_PREFIX):
        return source[len(CALIBRATION_PREFIX):].strip()
    if source.startswith(GOAL_PREFIX) and CALIBRATION_PREFIX in source:
        return source.split(CALIBRATION_PREFIX, 1)[1].split()[0].rstrip(";,.)") or None
    return None


def cited_path(suite: Suite) -> Path | None:
    """The calibration file a suite cites (its source, or a goal's evidence), or None when its
    target has another source (or none). A shipped suite's results/calibration/ path is the
    installed package's copy where bench is installed from a wheel (no repository around it)."""
    cited = cited_file(suite.target_source)
    if cited is None:
        return None
    path = Path(cited).expanduser()
    if path.is_absolute():
        return path
    shipped, calibrations = shipped_suites_dir(), shipped_calibration_dir()
    if shipped is not None and calibrations is not None and path.parts[:2] == ("results", "calibration") \
            and Path(suite.path).resolve().parent == shipped.resolve():
        return calibrations.joinpath(*path.parts[2:])
    return repository_root(suite.path) / path


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
    calibration, unsourced = calibration_of(suite)
    if unsourced is not None:
        raise BenchError(f"{suite.path}: 'target_source' {unsourced}; fix the path, or run 'bench calibrate "
                         f"{suite.name} --runs 5' and cite the file it writes")
    return calibration


def calibration_of(suite: Suite) -> tuple[dict[str, Any] | None, str | None]:
    """(the calibration the suite cites, checked, or None), and why a citation sources nothing:
    the file is not there (a suite copied away from its repository cites its original's path) or
    calibrates another suite (a copy renamed). Such a target is unsourced until the suite is
    calibrated itself, which a notice says; a file that is there but invalid is a BenchError."""
    path = cited_path(suite)
    if path is None:
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"cites the calibration file {path}, which does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        why = f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    except json.JSONDecodeError as exc:
        why = f"is not JSON ({exc.msg}, line {exc.lineno})"
    except RecursionError:
        why = "is not JSON bench reads (nested too deeply)"
    else:
        why = problem(data)
        calibrated = (data.get("suite") or {}).get("name") if why is None else None
        if isinstance(calibrated, str) and calibrated != suite.name and not _sibling(suite, calibrated) \
                and calibrated != _tuned_from(suite):
            return None, f"cites the calibration file {path}, which calibrated suite {calibrated!r}, not {suite.name!r}"
        if why is None:
            return {**data, "path": str(path)}, None
    raise BenchError(f"{suite.path}: 'target_source' cites the calibration file {path}, which {why}; fix the "
                     f"path, or run 'bench calibrate {suite.name} --runs 5' and cite the file it writes")


def _sibling(suite: Suite, name: str) -> bool:
    """A suite beside this one's file is called `name`: citing its calibration is deliberate (a
    pruned variant keeps its dense parent's target), not a copy carrying its original's citation."""
    return (Path(suite.path).parent / f"{name}.toml").is_file()


def _tuned_from(suite: Suite) -> str | None:
    """The suite a tuned suite was searched from (its `tuned_from.suite`): a tuned suite keeps its
    base's target and cites the base's calibration, deliberately, wherever its file lives."""
    origin = (getattr(suite, "resolved", None) or {}).get("tuned_from")
    return origin.get("suite") if isinstance(origin, dict) else None


def unsourced_notice(suite: Suite, why: str) -> str:
    return (f"{suite.name}: target {suite.target:g} is unsourced: target_source {why} (a copied suite cites its "
            f"original's); run 'bench calibrate {suite.path} --runs 5' and cite the file it writes")


def seed_span(seeds: list[int]) -> str:
    """1000–1004 for a run of consecutive seeds, else the list."""
    ordered = sorted(seeds)
    if ordered == list(range(ordered[0], ordered[-1] + 1)) and len(ordered) > 2:
        return f"{ordered[0]}–{ordered[-1]}"
    return ", ".join(map(str, ordered))


def refuse_calibrated_seeds(suite: Suite, seeds: list[int],
                            notice: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """Before any training: the calibration the suite cites (as the result records it), or a
    BenchError when a seed to judge is one the calibration trained on. A citation that sources
    nothing (a copied suite's) is told to `notice`; the result then records no calibration."""
    calibration, unsourced = calibration_of(suite)
    if unsourced is not None and notice is not None:
        notice(unsourced_notice(suite, unsourced))
    if calibration is None:
        return None
    used = sorted(set(seeds) & set(calibration["seeds"]))
    if used:
        raise BenchError(f"{suite.name}: seed {used[0]} is one of the seeds that set its target (calibration "
                         f"{calibration['path']}, seeds {seed_span(calibration['seeds'])}); a verdict on them "
                         "would judge the runs that chose the target: pick --seed outside that range (e.g. --seed 0)")
    return {"file": cited_file(suite.target_source), "id": calibration.get("id"),
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


def target_kind(source: str | None) -> str:
    """How a target was set: "derived" (from a calibration by its rule), "goal", "reference" or "none"."""
    if not source:
        return "none"
    return {CALIBRATION_PREFIX: "derived", GOAL_PREFIX: "goal", REFERENCE_PREFIX: "reference"}.get(
        next((p for p in (CALIBRATION_PREFIX, GOAL_PREFIX, REFERENCE_PREFIX) if source.startswith(p)), ""), "none")


def target_problem(suite: Suite, calibration: dict[str, Any] | None) -> str | None:
    """Why the suite's target does not follow from its source, in words; None when it does. A
    derived target is the calibration's; a goal's evidence must reach it."""
    if calibration is None:
        return None
    kind, target, derived = target_kind(suite.target_source), suite.target, calibration["target"]
    if kind == "derived" and abs(target - derived) > 1e-9:
        return (f"the target {target:g} is not the calibration's {derived:g} (its rule's): set target = {derived:g}, "
                f'or name it a goal (target_source = "goal: <why>; evidence calibration:PATH")')
    if kind == "goal" and target > derived + 1e-9:
        return (f"the goal {target:g} lies above what its evidence reaches ({derived:g}): the calibration does not "
                "show it reachable")
    return None


def source_text(suite: Suite) -> str:
    """The target's source in words, for `bench list`: the reference, the goal and its evidence,
    or the cited calibration and its rule; 'no source' for a user suite that names none. An
    invalid citation raises; a target that does not follow from its source is said so."""
    source = suite.target_source
    if not source:
        return NO_SOURCE
    if source.startswith(REFERENCE_PREFIX):
        return source[len(REFERENCE_PREFIX):].strip()
    calibration, unsourced = calibration_of(suite)
    if unsourced is not None:
        return f"{NO_SOURCE}: it {unsourced}"
    if calibration is None:  # a goal without evidence
        return f"goal: {source[len(GOAL_PREFIX):].strip()} (no calibration cited as evidence it is reachable)"
    rule = (f"calibration {os.path.basename(cited_file(source) or '')}: {calibration['rule']['text']}, seeds "
            f"{seed_span(calibration['seeds'])} -> {calibration['target']:g}")
    goal = source[len(GOAL_PREFIX):].split(CALIBRATION_PREFIX)[0].strip().removesuffix("evidence").strip(" ;,")
    words = (f"goal: {goal} (evidence: {rule})"
             if source.startswith(GOAL_PREFIX) else f"derived from {rule}")
    problem_words = target_problem(suite, calibration)
    return words + ("" if problem_words is None else f" — NOT AS STATED: {problem_words}")


def record_source_text(record: dict[str, Any]) -> str:
    """The target's source as a result file records it (for the leaderboard, which reads only
    result files): the suite's target_source, with the calibration's rule when recorded."""
    resolved = (record.get("suite") or {}).get("resolved") or {}
    source = resolved.get("target_source")
    if not isinstance(source, str) or not source:
        return NO_SOURCE
    if source.startswith(REFERENCE_PREFIX):
        return source[len(REFERENCE_PREFIX):].strip()
    if source.startswith(GOAL_PREFIX):
        return source
    facts = (record.get("invocation") or {}).get("calibration")
    if not isinstance(facts, dict):  # the run found the cited file missing or another suite's (a copy)
        return f"{NO_SOURCE}: cites {source[len(CALIBRATION_PREFIX):].strip()}, which was not this suite's " \
               "calibration where it ran"
    return f"calibration {os.path.basename(str(facts.get('file')))}: {facts.get('rule')}, seeds " \
           f"{seed_span(facts.get('seeds') or [0])} -> {facts.get('target')}"
