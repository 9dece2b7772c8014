"""Charts for the comparison report, as PNG bytes, and what every chart shares (the palette,
PNG output, label wrapping; a study's charts use them too).

Figures are drawn on matplotlib's Agg canvas directly (no pyplot): no display, no
global figure state, safe in CI and in threads. Every chart colours a machine the
same way, so a reader can follow one machine from chart to chart.
"""

from __future__ import annotations

import io
import textwrap

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import ft2font
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench import formatting as fmt

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def machine_colours(machines: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(machines)}


# What draws the figures, written into each PNG's "Software" text chunk. A PNG holds no time, so
# the same data drawn by the same software is the same bytes; other software may draw other pixels,
# and the check that committed reports are fresh (scripts/regenerate_reports.py) reads this to tell
# a stale figure from one drawn elsewhere.
DRAWN_WITH = f"matplotlib {matplotlib.__version__}, FreeType {ft2font.__freetype_version__}"


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes, naming only the software that drew it (DRAWN_WITH)."""
    FigureCanvasAgg(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": DRAWN_WITH})
    return buffer.getvalue()


def wrapped(label: str, width: int = 34) -> str:
    """A legend or tick label broken into lines of at most `width` characters."""
    return "\n".join(textwrap.wrap(label, width)) or label


def accuracy_curves_png(curves: pd.DataFrame, title: str, target: float | None,
                        colours: dict[str, str]) -> bytes | None:
    """Accuracy against seconds in the timed region, one line per run, coloured by machine.

    Only the points with an accuracy are drawn (budget runs without curve evaluations
    have one, their final evaluation). None when no run has any.
    """
    points = curves.assign(time_s=pd.to_numeric(curves["time_s"], errors="coerce"),
                           accuracy=pd.to_numeric(curves["accuracy"], errors="coerce")).dropna(
        subset=["time_s", "accuracy"])
    if points.empty:
        return None
    figure = Figure(figsize=(10, 4.2))
    axes = figure.add_subplot()
    labelled: set[str] = set()
    for (invocation, run), line in points.groupby(["id", "run"], sort=False):
        machine = line["machine"].iloc[0]
        line = line.sort_values("time_s")
        axes.plot(line["time_s"], 100 * line["accuracy"], marker="o", markersize=3, linewidth=1, alpha=0.8,
                  color=colours.get(machine, "#444"), label=None if machine in labelled else wrapped(machine, 50))
        labelled.add(machine)
    if target is not None:
        axes.axhline(100 * target, color="#333", linestyle="--", linewidth=1, label=f"target {fmt.percent(target)}")
    times = points["time_s"][points["time_s"] > 0]
    if len(times) and times.max() / times.min() > 30:  # machines far apart: a log axis keeps both readable
        axes.set_xscale("log")
    axes.set_xlabel("seconds in the timed region")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    return figure_png(figure)


def machine_bars_png(entries: pd.DataFrame, runs: pd.DataFrame, title: str, colours: dict[str, str]) -> bytes:
    """Per machine: median time to target (bars) with every run's time (dots), energy per run,
    and training throughput. A figure a machine did not measure is written as such, not drawn as 0;
    the times are of the runs that reached the target."""
    machines = list(entries["machine"])
    y = np.arange(len(machines))
    colour = [colours.get(m, "#444") for m in machines]
    specs = [("median_time_s", "time to target (s)", fmt.seconds), ("mean_energy_j", "energy per run (J)", fmt.energy),
             ("median_train_images_per_s", "training images/s", fmt.rate)]
    # a figure no machine measured (energy on CPUs) gets no panel: it was an empty axis with ±0.04 ticks
    specs = [spec for spec in specs if spec[0] == "median_time_s"
             or pd.to_numeric(entries[spec[0]], errors="coerce").notna().any()]
    figure = Figure(figsize=(2 + 3 * len(specs), 1.2 + 0.55 * len(machines)))
    panels = figure.subplots(1, len(specs), sharey=True, squeeze=False)[0]
    for axes, (column, label, shown) in zip(panels, specs):
        values = pd.to_numeric(entries[column], errors="coerce").to_numpy(dtype=float)
        measured = values[np.isfinite(values) & (values > 0)]
        log = len(measured) > 1 and measured.max() / measured.min() > 30  # far apart: keep the small ones visible
        if log:
            axes.set_xscale("log")
        axes.barh(y, values if log else np.nan_to_num(values), color=colour, alpha=0.85)
        for i, value in enumerate(values):
            if np.isnan(value):  # a time to target is missing because no run reached it, not unmeasured
                axes.text(0.02, i, "no run reached the target" if column == "median_time_s" else "not measured",
                          va="center", fontsize=7, color="#666", transform=axes.get_yaxis_transform())
            else:
                axes.text(value, i, " " + shown(value), va="center", fontsize=7)
        if len(measured):
            axes.set_xlim(right=measured.max() * (8 if log else 1.3))
        if column == "median_time_s":
            for i, invocation in enumerate(entries["id"]):
                times = pd.to_numeric(runs.loc[runs["id"] == invocation, "time_to_target_s"], errors="coerce")
                times = times.dropna()
                axes.plot(times, np.full(len(times), i), "k.", markersize=4, alpha=0.7)
        axes.set_xlabel(label)
        axes.grid(True, axis="x", alpha=0.3)
    panels[0].set_yticks(y, [wrapped(m) for m in machines], fontsize=7)
    panels[0].invert_yaxis()
    figure.suptitle(title)
    return figure_png(figure)
