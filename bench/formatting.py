"""How numbers read everywhere the harness prints them: reports, `bench run`'s summary and the
spec table. One place, so a leaderboard, a comparison, a run's summary and a spec table agree.

The one form of a figure is `si`: three significant figures, an SI prefix (k, M, G, T) from a
thousand up, a space before the prefix and unit ("11.7 M", "1.82 GFLOP/s", "27.7"), and never
an exponent. Exact integers a reader may want whole (a parameter count in a spec, a run's
seed) use `count` ("11,689,512"). A missing figure (None, or NaN after pandas) always reads as
an em dash, never as 0.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"


def missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return math.isnan(value)
    except TypeError:
        return False


def seconds(value: Any) -> str:
    if missing(value):
        return MISSING
    if value < 10:
        return f"{value:.2f} s"
    if value < 100:
        return f"{value:.1f} s"
    return f"{value:.0f} s"


def time_with_iqr(median: Any, iqr: Any) -> str:
    if missing(median):
        return MISSING
    return seconds(median) + ("" if missing(iqr) else f" (IQR {seconds(iqr)})")


def reached_count(reached: Any, complete: Any) -> str:
    """How many complete runs reached the target: "3 of 5 reached"."""
    return MISSING if missing(complete) else f"{int(reached or 0)} of {int(complete)} reached"


def time_to_target(median: Any, iqr: Any, reached: Any, complete: Any) -> str:
    """The median time to target over the runs that reached it; when not every complete run did,
    the count says so ("— (0 of 5 reached)", "3.21 s (3 of 5 reached)"), never a time of runs
    that did not reach it."""
    if missing(complete) or int(complete) == 0:
        return MISSING
    shown = time_with_iqr(median, iqr) if not missing(reached) and int(reached) > 0 else MISSING
    return shown if int(reached or 0) == int(complete) else f"{shown} ({reached_count(reached, complete)})"


def verdict(verdict: Any, pass_fraction: Any, pass_rule: Any) -> str:
    """The verdict beside the fraction of runs at or above the target and the rule that judged:
    "PASS (80% ≥ target, rule mean)"."""
    if missing(verdict):
        return MISSING
    rule = "mean" if missing(pass_rule) else str(pass_rule)
    shown = MISSING if missing(pass_fraction) else f"{100 * pass_fraction:.0f}%"
    return f"{verdict} ({shown} ≥ target, rule {rule})"


def percent(fraction: Any, digits: int = 2) -> str:
    return MISSING if missing(fraction) else f"{100 * fraction:.{digits}f}%"


def accuracy_with_ci(mean: Any, half_width: Any) -> str:
    """Mean top-1 in percent, ± the 95% CI half-width in percentage points (or 'one run')."""
    if missing(mean):
        return MISSING
    return percent(mean) + (" (no CI)" if missing(half_width) else f" ± {100 * half_width:.2f}")


_PREFIXES = (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0))


def _significant(value: float, digits: int) -> str:
    """`digits` significant figures in fixed-point notation, trailing zeros dropped (0.000846, 15.5, 120)."""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def si(value: Any, unit: str = "", digits: int = 3) -> str:
    """The one number form: `digits` significant figures with an SI prefix from 1,000 up, no exponent."""
    if missing(value):
        return MISSING
    for prefix, scale in _PREFIXES:
        # the prefix is chosen after rounding, so 999,960 reads "1 M", not "1000 k"
        scaled = float(f"{value / scale:.{digits}g}")
        if abs(scaled) >= 1 or scale == 1.0:
            return f"{_significant(scaled, digits)} {prefix}{unit}".rstrip()
    raise AssertionError("unreachable: the last prefix has scale 1")


def count(value: Any) -> str:
    """A whole number in full with thousands separators (11,689,512): for exact counts."""
    return MISSING if missing(value) else f"{int(value):,}"


def fixed(value: Any, spec: str) -> str:
    """`value` in a format spec (".2f", ".0%"), or the dash when it is missing."""
    return MISSING if missing(value) else format(value, spec)


def energy(joules: Any) -> str:
    return MISSING if missing(joules) else si(joules, "J")


def rate(images_per_s: Any) -> str:
    return MISSING if missing(images_per_s) else si(images_per_s, "img/s")


def ratio(value: Any) -> str:
    if missing(value):
        return MISSING
    return f"{value:.2f}×" if value >= 0.1 else f"{value:.2g}×"


def signed_percent(fraction: Any) -> str:
    return MISSING if missing(fraction) else f"{100 * fraction:+.1f}%"


def runs_count(complete: Any, total: Any) -> str:
    if missing(total):
        return MISSING
    return f"{int(total)}" if complete == total else f"{int(complete or 0)}/{int(total)}"


def integer(value: Any) -> str:
    return MISSING if missing(value) else f"{int(value)}"


def text(value: Any) -> str:
    return MISSING if missing(value) else str(value)


def megabytes(value: Any) -> str:
    """A memory figure in MB, one decimal, thousands separated ("3.2 MB", "1,204.5 MB")."""
    return MISSING if missing(value) else f"{value:,.1f} MB"
