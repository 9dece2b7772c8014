"""The seeds a run may have: 0 .. 2**32 - 1.

A run seeds torch and numpy; numpy takes 32 bits, so above that range two seeds would draw the
same numpy stream (and torch refuses seeds past 2**64 - 1 with a traceback). Negative seeds are
refused rather than wrapped, for the same reason: -1 and 2**32 - 1 would be one run.
"""

from __future__ import annotations

from bench.errors import BenchError

MAX_SEED = 2**32 - 1
# far past any statistic bench reports (a CI narrows as 1/sqrt(n)); a larger count is a slip of the
# keyboard, and it was blamed on the seed option (the seeds it would need leave the range)
MAX_RUNS = 10_000


def check_run_count(count: int, flag: str) -> None:
    """A number of runs bench can make: at most MAX_RUNS, or one line naming `flag`."""
    if count > MAX_RUNS:
        raise BenchError(f"{flag} {count}: at most {MAX_RUNS:,} runs (docs/limits.md); give a smaller number")


def check_seeds(first: int, count: int, flag: str) -> None:
    """Seeds first .. first+count-1 all in range, or one line naming `flag` (the option or key
    that gave them)."""
    last = first + count - 1
    if first < 0 or last > MAX_SEED:
        most = MAX_SEED - count + 1
        span = f"{first}" if count == 1 else f"{first}–{last}"
        raise BenchError(f"{flag} {first}: the seeds {span} leave 0–{MAX_SEED} (numpy's 32-bit seeds); give "
                         f"{flag} from 0 to {most}")

# Where each use draws its seeds, disjoint: `bench run`'s verdicts 0, 1, ... (a suite's runs), a
# study's cells their own short lists (100-104), `bench calibrate` 1000 and up (--seed-base), and
# `bench tune`'s trials from here (trial n: TUNE_SEED_BASE + n; its confirmation runs from 3,000,000,
# bench.tune.confirm), so no trial's run is ever judged.
TUNE_SEED_BASE = 2_000_000
