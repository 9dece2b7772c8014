"""Every committed report regenerated from the committed result files (`make reports`), and the
check that none is stale (`--check`; tests/test_reports_fresh.py).

The reports are the leaderboard (LEADERBOARD.md, leaderboard.html), the comparison report
(compare/) and each study's report (studies/<study>/REPORT.md, report.html and its PNGs, for
every study folder with a runs/ folder). They are views of result files only: nothing is
trained. Regenerating first deletes the report files, so a figure that its report no longer
draws (an axis since removed) does not linger.

The reports hold no time of their own making, so the same result files on the same software give
the same bytes. Figures are the exception across machines: another matplotlib or FreeType may draw
other pixels. Each PNG names the software that drew it (bench.reports.plots.DRAWN_WITH); the check
compares figures drawn with this machine's software byte for byte and names the others as not
comparable here, never as fresh. The HTML pages carry their figures inline: their text is compared
with the figures masked, the figures themselves as the PNG files beside the Markdown page.

The README holds two reports too. Its results table, between RESULTS_BEGIN and RESULTS_END: per
suite and target, the leaderboard's first entry (bench.reports.leaderboard's ranking of the
committed result files), with its hardware and date, and the suite's target today where it has
changed since. Its list of studies, between
README_BEGIN and README_END: a link to each study report under the results folder and its first
finding (the best point, bench.studies.findings). Both are rewritten with the reports, and checked
with them, when the README (--readme; default: README.md beside the results folder, where it holds
the markers) is given.

usage: python scripts/regenerate_reports.py [--results DIR] [--readme FILE] [--check [--tracked-only]]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPORT_PATTERNS = ("LEADERBOARD.md", "leaderboard.html", "compare/*", "studies/*/REPORT.md", "studies/*/report.html",
                   "studies/*/*.png")
FIX = "run `make reports` and commit what it changes"
INLINE_FIGURE = re.compile(rb'src="data:image/png;base64,[A-Za-z0-9+/=]*"')
MASKED_FIGURE = b'src="data:image/png;base64,(the figure: compared as its PNG file)"'


README_BEGIN, README_END = "<!-- studies:begin -->", "<!-- studies:end -->"
RESULTS_BEGIN, RESULTS_END = "<!-- results:begin -->", "<!-- results:end -->"


class ReportsNotRegenerated(Exception):
    """A bench command that writes a report failed (it said why on stderr), or the README has no
    place for the studies' block or the results table."""


def report_files(results: Path) -> list[str]:
    """The report files under `results`, as paths relative to it."""
    found = {path.relative_to(results).as_posix() for pattern in REPORT_PATTERNS for path in results.glob(pattern)
             if path.is_file()}
    return sorted(found)


def report_commands(results: Path) -> list[list[str]]:
    """The bench command lines that write every report of `results` (each with --results)."""
    where = str(results)
    commands = [["leaderboard", "--results", where], ["compare", "--results", where]]
    studies = sorted(path.parent.name for path in results.glob("studies/*/runs") if path.is_dir())
    commands += [["sweep", study, "--report-only", "--results", where] for study in studies]
    return commands


def regenerate(results: Path) -> None:
    """Deletes the report files under `results` and writes them anew from its result files."""
    from bench.cli import main  # bench is imported only to regenerate, so `--help` works anywhere

    for name in report_files(results):
        (results / name).unlink()
    for argv in report_commands(results):
        with contextlib.redirect_stdout(io.StringIO()):  # the tables each command prints; its errors stay
            code = main(argv)
        if code != 0:
            raise ReportsNotRegenerated(f"'bench {' '.join(argv)}' exited with {code}")
        print(f"bench {' '.join(argv)}: written", file=sys.stderr)


# ---------------------------------------------------------------- the README's studies block ----

def first_finding(markdown: str) -> str | None:
    """The first bullet under a study report's "## Findings" heading."""
    lines = markdown.splitlines()
    if "## Findings" not in lines:
        return None
    return next((line[2:] for line in lines[lines.index("## Findings") + 1:] if line.startswith("- ")), None)


def studies_block(results: Path, link_base: str) -> str:
    """One line per study report under `results`: a link (through `link_base`, the results folder as
    the README reaches it) and the report's first finding."""
    lines = [README_BEGIN,
             "<!-- written by `make reports` (scripts/regenerate_reports.py) from each report's Findings -->"]
    for report in sorted(results.glob("studies/*/REPORT.md")):
        name = report.parent.name
        finding = first_finding(report.read_text()) or "no findings yet (no cell has finished)"
        lines.append(f"- [`{name}`]({link_base}/studies/{name}/REPORT.md): {finding}")
    return "\n".join([*lines, README_END])


def with_block(text: str, block: str, where: Path) -> str:
    """`text` (the README at `where`) with its block between the markers `block` starts and ends with
    replaced by `block`."""
    begin_marker, end_marker = block.splitlines()[0], block.splitlines()[-1]
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin < 0 or end < begin:
        raise ReportsNotRegenerated(f"{where} has no {begin_marker} ... {end_marker} block; add the two markers "
                                    "where it goes")
    return text[:begin] + block + text[end + len(end_marker):]


def with_readme_blocks(readme: Path, results: Path, link_base: str) -> str:
    """The README's text with its studies block and its results table rewritten from `results`."""
    text = with_block(readme.read_text(), studies_block(results, link_base), readme)
    if RESULTS_BEGIN not in text:  # a README that holds only the studies block (tests/test_docs.py requires
        return text                # bench's own README to hold both)
    return with_block(text, results_block(results), readme)


# ---------------------------------------------------------------- the README's results table ----

RESULTS_COLUMNS = ("suite", "target", "median time to target", "mean accuracy ± 95% CI", "runs", "hardware", "date")


def current_target(suite: str) -> float | None:
    """The target the suite file (shipped or on $BENCH_SUITES) sets today; None where it no longer loads."""
    from bench.errors import BenchError
    from bench.suites import load_suite

    try:
        return float(load_suite(suite).target)
    except BenchError:
        return None


def results_block(results: Path) -> str:
    """A Markdown table: per suite and target, the leaderboard's fastest ranked entry; a target the
    suite has changed since says what it is now."""
    from bench import formatting as fmt
    from bench.progress import NullReporter
    from bench.record.files import load_results
    from bench.reports.frame import frames
    from bench.reports.leaderboard import build_boards
    from bench.reports.rejudge import todays_suites

    lines = [RESULTS_BEGIN,
             "<!-- written by `make reports` (scripts/regenerate_reports.py) from the committed result files -->",
             "| " + " | ".join(RESULTS_COLUMNS) + " |", "|" + "---|" * len(RESULTS_COLUMNS)]
    loaded = load_results(results, NullReporter())
    # judged as the leaderboard judges them: against each suite's target today (re-judged from the
    # recorded accuracies where the recipe is unchanged; superseded entries are not in this table)
    boards = build_boards(frames(loaded), {r.record["id"]: r.record for r in loaded}, todays_suites())[0] \
        if loaded else []
    for board in boards:
        if board.ranked.empty or board.target is None:
            continue
        row, now = board.ranked.iloc[0], current_target(board.suite)
        target = fmt.percent(board.target) + ("" if now == board.target else
                                              " (no such suite now)" if now is None else f" (now {fmt.percent(now)})")
        time = fmt.time_to_target(row["median_time_s"], row["iqr_time_s"], row["timed_runs"], row["complete_runs"])
        cells = [f"`{board.suite}`", target, time,
                 fmt.accuracy_with_ci(row["mean_accuracy"], row["ci_half_width"]),
                 fmt.runs_count(row["complete_runs"], row["runs"]), str(row["machine"]), fmt.text(row["date"])]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join([*lines, RESULTS_END])


def readme_link_base(results: Path, readme: Path) -> str:
    return Path(os.path.relpath(results.resolve(), readme.resolve().parent)).as_posix()


def default_readme(results: Path) -> Path | None:
    """README.md beside the results folder, when it holds the studies block's markers."""
    readme = results.parent / "README.md"
    return readme if readme.is_file() and README_BEGIN in readme.read_text() else None


@dataclass
class Freshness:
    stale: list[str] = field(default_factory=list)          # one line per report that differs from its regeneration
    not_comparable: list[str] = field(default_factory=list)  # figures drawn here with other software


def first_difference(committed: bytes, regenerated: bytes) -> str:
    """Where two report texts first differ: the line number and both lines."""
    old = INLINE_FIGURE.sub(MASKED_FIGURE, committed).decode("utf-8", "replace").splitlines()
    new = INLINE_FIGURE.sub(MASKED_FIGURE, regenerated).decode("utf-8", "replace").splitlines()
    for number, (was, now) in enumerate(zip(old, new), start=1):
        if was != now:
            return f"line {number}: committed {_clip(was)!r}, regenerated {_clip(now)!r}"
    if len(old) != len(new):
        number = min(len(old), len(new)) + 1
        more = "the committed file has" if len(old) > len(new) else "the regeneration has"
        return f"line {number}: {more} {abs(len(old) - len(new))} more lines"
    return ""  # equal but for the inline figures: those are compared as their PNG files


def _clip(line: str, width: int = 160) -> str:
    return line if len(line) <= width else line[:width] + "…"


def drawn_with(png: bytes) -> str | None:
    from PIL import Image

    return Image.open(io.BytesIO(png)).info.get("Software")


def compare_reports(committed: Path, regenerated: Path) -> Freshness:
    """Each report under `committed` against its regeneration under `regenerated`."""
    from bench.reports.plots import DRAWN_WITH

    found = Freshness()
    label = committed.name
    for name in sorted(set(report_files(committed)) | set(report_files(regenerated))):
        old, new = committed / name, regenerated / name
        if not new.exists():
            found.stale.append(f"{label}/{name}: committed, but no report makes it any more (delete it)")
        elif not old.exists():
            found.stale.append(f"{label}/{name}: made by the reports but not committed")
        elif (was := old.read_bytes()) == (now := new.read_bytes()):
            continue
        elif name.endswith(".png"):
            software = drawn_with(was)
            if software != DRAWN_WITH:
                found.not_comparable.append(f"{label}/{name}: drawn with {software or 'unnamed software'}, "
                                            f"here {DRAWN_WITH}")
            else:
                found.stale.append(f"{label}/{name}: the figure differs from its regeneration (same software)")
        elif where := first_difference(was, now):
            found.stale.append(f"{label}/{name}: {where}")
    return found


def tracked_files(results: Path) -> list[str] | None:
    """The files under `results` that git tracks (paths relative to it), or None where `results` is in
    no git work tree (or git is missing)."""
    try:
        listed = subprocess.run(["git", "-C", str(results), "ls-files", "-z", "--", "."], capture_output=True,
                                check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return [name for name in listed.decode().split("\0") if name]


def copy_results(results: Path, copy: Path, tracked_only: bool) -> None:
    """`results` copied to `copy`; with `tracked_only`, only the files git tracks there (in their
    working-tree state), so a result file a local `make run` wrote does not count as committed."""
    names = tracked_files(results) if tracked_only else None
    if names is None:
        shutil.copytree(results, copy, symlinks=True)
        return
    for name in names:
        source = results / name
        if source.is_file():  # tracked but deleted here: not in the copy either
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name, follow_symlinks=False)
    copy.mkdir(exist_ok=True)


def check(results: Path, readme: Path | None = None, tracked_only: bool = False) -> Freshness:
    """Regenerates the reports of a copy of `results` and compares them with the committed ones
    (and the README's studies block with the one the regenerated reports make). With `tracked_only`
    the copy holds only the files git tracks (where `results` is in a git work tree): the committed
    reports are views of the committed result files, not of the runs a user made since."""
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as scratch:
        copy = Path(scratch) / results.name
        copy_results(results, copy, tracked_only)
        regenerate(copy)
        found = compare_reports(results, copy)
        if readme is not None:
            now = with_readme_blocks(readme, copy, readme_link_base(results, readme))
            if where := first_difference(readme.read_bytes(), now.encode()):
                found.stale.append(f"{readme.name}: the results table or the studies block differs from its "
                                   f"regeneration: {where}")
        return found


def write_readme(results: Path, readme: Path) -> None:
    readme.write_text(with_readme_blocks(readme, results, readme_link_base(results, readme)))
    print(f"{readme}: results table and studies block written", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="the results folder (default results)")
    parser.add_argument("--readme", type=Path, help="the README whose results table and studies block are "
                                                    "rewritten (default: README.md beside the results folder, if it "
                                                    "has the studies block's markers)")
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary copy and list the reports that differ; change nothing")
    parser.add_argument("--tracked-only", action="store_true",
                        help="with --check: regenerate from the result files git tracks only (leaving out the runs "
                             "made here since; what tests/test_reports_fresh.py checks)")
    args = parser.parse_args(argv)
    if not args.results.is_dir():
        print(f"error: {args.results} is no folder; give the results folder with --results", file=sys.stderr)
        return 2
    if args.readme is not None and not args.readme.is_file():
        print(f"error: {args.readme} is no file; give the README with --readme", file=sys.stderr)
        return 2
    readme = args.readme or default_readme(args.results)
    try:
        if not args.check:
            regenerate(args.results)
            if readme is not None:
                write_readme(args.results, readme)
            return 0
        found = check(args.results, readme, args.tracked_only)
    except ReportsNotRegenerated as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for line in found.not_comparable:
        print(f"not compared: {line}")
    for line in found.stale:
        print(f"stale: {line}")
    if found.stale:
        print(FIX)
    return 1 if found.stale else 0


if __name__ == "__main__":
    sys.exit(main())
