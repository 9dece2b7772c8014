"""The time half of `bench check` on a machine that other processes use: which runs a time
judgement may rest on, given the load each run's timed region met (bench.load), and the rule
for runs measured side by side.

A side (the baseline or the candidate) is the timed runs of one or more result files of one
suite (several with `bench check --rerun`: the candidate's reruns pooled with it).

  interleaved  When the two sides' runs took turns over the same stretch of time (their spans
               overlap by at least half of the shorter, and no run of one side ran while one
               of the other did), whatever load came and went fell on
               both alike: the runs are paired in time order and the slowdown is the median of
               the paired ratios, whatever the load was. Its noise is the rIQR of the ratios
               over sqrt(n), so a steady load that slows both sides cancels out.
  quiet runs   Otherwise only runs measured under low load count (competing_cpu_share at or
               below bench.load.HIGH_LOAD_SHARE). A run whose load was not measured (a result
               file from before bench recorded the load, such as the committed CI baseline) is
               taken as measured alone on the machine, as its author published it; the table
               says so. A side left with no timed run is the cause of an *inconclusive* time:
               the load named, the exit code EXIT_INCONCLUSIVE, never a regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.load import HIGH_LOAD_SHARE, run_is_high, run_load
from bench.record.files import load_results

MIN_OVERLAP = 0.5   # of the shorter span: the two sides ran over the same stretch of time
QUIET_ALL = "every run under low load"


@dataclass(frozen=True)
class TimedRun:
    time_s: float                  # time to target
    start_unix_s: float | None     # the timed region's start
    end_unix_s: float | None
    share: float | None            # competing CPU share; None: not measured
    high: bool | None              # None: not measured


@dataclass
class Side:
    """The timed runs of one side, from one or more result files."""

    name: str                      # baseline | candidate
    runs: list[TimedRun] = field(default_factory=list)
    files: int = 0

    @classmethod
    def from_records(cls, name: str, records: list[dict[str, Any]]) -> "Side":
        side = cls(name, files=len(records))
        for record in records:
            for run in record.get("runs") or []:
                if isinstance(run, dict) and run.get("status") == "complete" and run.get("time_to_target_s") is not None:
                    start = run.get("clock_start_unix_s")
                    load = run_load(run) or {}
                    side.runs.append(TimedRun(float(run["time_to_target_s"]), start,
                                              start + run["timed_s"] if start is not None else None,
                                              load.get("competing_cpu_share"), run_is_high(run)))
        return side

    @classmethod
    def from_files(cls, name: str, paths: list[Path]) -> "Side":
        return cls.from_records(name, [loaded.record for loaded in load_results(paths)])

    @property
    def quiet(self) -> list[TimedRun]:
        return [r for r in self.runs if r.high is not True]

    def load_text(self) -> str:
        """The load its runs met, in words: '3 runs, 45-67% CPU elsewhere (3 high)'."""
        shares = [r.share for r in self.runs if r.share is not None]
        if not shares:
            return f"{len(self.runs)} runs, load not measured"
        high = sum(r.high is True for r in self.runs)
        spread = f"{min(shares):.0%}" if min(shares) == max(shares) else f"{min(shares):.0%}–{max(shares):.0%}"
        unmeasured = len(self.runs) - len(shares)
        return (f"{len(self.runs)} runs, {spread} CPU elsewhere ({high} above {HIGH_LOAD_SHARE:.0%})"
                + (f", {unmeasured} not measured" if unmeasured else ""))


def summary(times: list[float]) -> tuple[float | None, float | None, int]:
    """Median, IQR and count of a list of times."""
    if not times:
        return None, None, 0
    q1, q3 = np.percentile(times, [25, 75])
    return float(np.median(times)), float(q3 - q1), len(times)


def interleaved(a: Side, b: Side) -> bool:
    """The two sides' runs took turns over the same stretch of time (see the module's doc)."""
    spans = []
    for side in (a, b):
        starts = [r.start_unix_s for r in side.runs if r.start_unix_s is not None]
        ends = [r.end_unix_s for r in side.runs if r.end_unix_s is not None]
        if len(starts) < 2 or len(starts) != len(side.runs):
            return False
        spans.append((min(starts), max(ends)))
    overlap = min(spans[0][1], spans[1][1]) - max(spans[0][0], spans[1][0])
    shorter = min(end - start for start, end in spans)
    # taking turns: no run of one side ran while one of the other did (copies of one file, or two
    # invocations at once, are not side by side in this sense)
    apart = all(ra.end_unix_s <= rb.start_unix_s or rb.end_unix_s <= ra.start_unix_s
                for ra in a.runs for rb in b.runs)
    return shorter > 0 and overlap >= MIN_OVERLAP * shorter and apart


def paired_ratios(baseline: Side, candidate: Side) -> list[float]:
    """candidate / baseline time of the runs paired in time order."""
    b = sorted(baseline.runs, key=lambda r: r.start_unix_s)
    c = sorted(candidate.runs, key=lambda r: r.start_unix_s)
    return [rc.time_s / rb.time_s for rb, rc in zip(b, c) if rb.time_s > 0]


@dataclass
class TimeBasis:
    """What a time judgement rests on: the paired ratios, or each side's quiet runs; or why
    there is none (`inconclusive`)."""

    how: str                                 # paired | quiet | inconclusive
    why: str                                 # in words, for the table
    ratios: list[float] = field(default_factory=list)
    baseline_times: list[float] = field(default_factory=list)
    candidate_times: list[float] = field(default_factory=list)

    def slowdown_and_noise(self) -> tuple[float, float | None, str]:
        """The relative slowdown, the relative noise of that figure (None: no spread to go by) and
        the spread in words."""
        if self.how == "paired":
            median, iqr, n = summary(self.ratios)
            noise = iqr / median / math.sqrt(n) if n >= 2 and median else None
            return median - 1, noise, f"rIQR of {n} paired ratios {iqr / median:.1%}"
        (mb, ib, nb), (mc, ic, nc) = summary(self.baseline_times), summary(self.candidate_times)
        if nb < 2 or nc < 2 or not mb or not mc:
            return mc / mb - 1, None, "a side has < 2 timed runs"
        rb, rc = ib / mb, ic / mc
        return mc / mb - 1, math.sqrt(rb ** 2 / nb + rc ** 2 / nc), f"rIQR {rb:.1%} of {nb}, {rc:.1%} of {nc}"


def time_basis(baseline: Side, candidate: Side) -> TimeBasis:
    """The runs a time judgement may rest on (the module's doc says why)."""
    if interleaved(baseline, candidate):
        ratios = paired_ratios(baseline, candidate)
        return TimeBasis("paired", f"interleaved with the baseline: {len(ratios)} runs paired in time order, "
                                   f"load alike on both (candidate {candidate.load_text()})", ratios=ratios)
    loaded = [side for side in (baseline, candidate) if side.runs and not side.quiet]
    if loaded:
        return TimeBasis("inconclusive", "; ".join(f"{side.name}: every timed run under high load "
                                                    f"({side.load_text()})" for side in loaded))
    notes = []
    for side in (baseline, candidate):
        dropped = len(side.runs) - len(side.quiet)
        unmeasured = sum(r.high is None for r in side.quiet)
        if dropped:
            notes.append(f"{side.name}: {dropped} of {len(side.runs)} runs left out, under high load")
        if unmeasured:
            notes.append(f"{side.name}: load of {unmeasured} runs not measured, taken as quiet")
    return TimeBasis("quiet", "; ".join(notes) or QUIET_ALL,
                     baseline_times=[r.time_s for r in baseline.quiet],
                     candidate_times=[r.time_s for r in candidate.quiet])
