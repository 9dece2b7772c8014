"""How numbers read in every report: one place, so a leaderboard and a comparison agree.

A missing figure (None, or NaN after pandas) always reads as an em dash, never as 0.
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


def percent(fraction: Any, digits: int = 2) -> str:
    return MISSING if missing(fraction) else f"{100 * fraction:.{digits}f}%"


def accuracy_with_ci(mean: Any, half_width: Any) -> str:
    """Mean top-1 in percent, ± the 95% CI half-width in percentage points (or 'one run')."""
    if missing(mean):
        return MISSING
    return percent(mean) + (" (no CI)" if missing(half_width) else f" ± {100 * half_width:.2f}")


def si(value: Any, unit: str = "") -> str:
    if missing(value):
        return MISSING
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}".rstrip()
    return f"{value:.3g} {unit}".rstrip()


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
