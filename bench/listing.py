"""`bench list`: the suites, where their targets come from, and the studies, one line each.

Descriptions and sources end in "…" where a column is narrow (a 100-column terminal shows every
row on one line); `bench show NAME` shows a suite whole.
"""

from __future__ import annotations

import argparse
import re

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench.errors import EXIT_OK, BenchError


def command(args: argparse.Namespace, console: Console) -> int:
    from bench.record.calibration import source_text
    from bench.suites import available_suites, load_suite

    # one line a suite at 100 columns: descriptions and sources end in "…" ('bench show NAME' has them whole)
    table = _one_line_table("suites", "* provisional target: not yet measured on the hardware the suite is sized for; "
                                      "'bench show NAME' shows a suite whole")
    for column in ("name", "dataset", "model", "target", "mode"):
        table.add_column(column, no_wrap=True)
    table.add_column("description")
    # where each target comes from: a table of its own, as the sources run long
    sources = _one_line_table("target sources (suite key target_source; bench calibrate writes calibrations)")
    sources.add_column("name", no_wrap=True)
    sources.add_column("target", no_wrap=True)
    sources.add_column("source")
    for name, path in available_suites(required=True).items():
        try:
            s = load_suite(str(path))
        except BenchError as exc:
            table.add_row(escape(name), "[red]invalid[/red]", "", "", "", _line(str(exc)))
            continue
        try:
            source = _line(source_text(s))
        except BenchError as exc:  # a cited calibration file that is invalid
            source = _line(f"invalid: {exc}", "red")
        target = f"{s.target:g}" + ("*" if s.resolved["provisional"] else "")
        table.add_row(*map(escape, (name, s.dataset["name"], s.model["name"], target, s.mode)),
                      _line(short_description(s.resolved["description"])))
        sources.add_row(escape(name), escape(target), source)
    console.print(table)
    console.print(sources)
    console.print(studies_table())
    return EXIT_OK


def short_description(text: str) -> str:
    """A description's first clause (to its first ':', ';', ',' or '('): what `bench list` shows."""
    return re.split(r"[:;,]\s|\s\(", text, maxsplit=1)[0].strip()


def _line(text: str, style: str = "") -> Text:
    """A cell that stays on one line, cut with "…" where its column is narrow."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _one_line_table(title: str, caption: str | None = None) -> Table:
    """A table whose rows stay one line each: no outer edge, one space between columns."""
    return Table(title=title, caption=caption, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                 padding=(0, 1, 0, 0), title_justify="left", caption_justify="left")


def studies_table() -> Table:
    from bench.studies.study import available_studies, load_study

    table = _one_line_table("studies (bench sweep)")
    for column in ("name", "base suite", "runs", "axes"):
        table.add_column(column, no_wrap=column != "axes")
    table.add_column("description")
    for name, path in available_studies().items():
        try:
            study = load_study(str(path))
        except BenchError as exc:
            table.add_row(escape(name), "[red]invalid[/red]", "", "", _line(str(exc)))
            continue
        axes = ", ".join(f"{axis.rsplit('.', 1)[-1]} ×{len(values)}" for axis, values in study.axes.items())
        table.add_row(escape(name), escape(study.base_ref), str(len(study.cells)), _line(axes),
                      _line(short_description(study.description)))
    return table
