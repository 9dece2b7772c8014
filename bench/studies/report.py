"""The study report: REPORT.md and report.html (self-contained) in the study's folder.

Numbers come only from the result files standing for the study's cells (bench.studies.ledger
picks them); the study file says only which cells there are and along which axes they lie.
The figures are drawn up in bench.studies.figures, the text and tables in report_sections,
the charts in bench.studies.plots; pages are laid out and written by bench.reports (render,
pages), as every report is.

Rules:
- A *point* (one row) is one combination of axis values; its figures pool its seeds with the
  verdict statistics of a multi-seed invocation (bench.measure.aggregate): mean
  final top-1 with the sample std and the 95% CI of the mean (Student t), the fraction of
  runs at or above the target, median time to target (budget mode: the budget's time) and
  median steps to target (runs that reached it), median training images/s, parameters.
- Ranking (the study's `rank`): `accuracy` — highest mean accuracy first; `time` — the
  points whose every finished run reached the target, fastest median time first, then the
  rest by accuracy. The best point is the first; its axis values are the best values.
- Choices on validation, reports on test: where every point holds out a validation split
  (dataset.validation_size), the accuracy that ranks the points, picks each training-set
  size's best and reads off the sparsest point reaching the target is the validation
  split's; every number shown for a chosen point is the test split's, and each column and
  label names its split. Without a split the report says the choices were made on test.
- Curves: per axis, test accuracy against epochs and against seconds, one line per
  value, mean over seeds with a ±1 std band; top row with the other axes at the best
  point's values, bottom row each value's own best point.
- `dataset.train_size` axis: final accuracy (test, and train where recipe.train_eval
  measured it) against training-set size, each size at its best point (per model when a
  model.* axis exists). `recipe.batch_size` axis: time and steps to target against batch size.
- Failed cells (with their reason) and cells not run yet are listed, never left out.
- Concurrency: how many cells ran at once (study.concurrency in each cell's result) is stated
  under the summary; where it differs between cells or is not recorded, the time columns say
  they do not compare (bench.studies.findings).
- Sparsity (recipe.sparsity an axis): accuracy against active parameters, not the active
  fraction, so dense networks narrowed on a model.* axis sit at their own counts, a series of
  their own beside each method; the full-width dense network is the baseline.
- Memory: a "train peak memory" column (median over the seeds) where runs record it.
- Findings, last: sentences computed from the numbers (bench.studies.findings, and
  bench.studies.findings_questions for sparse against narrowed dense and per BPTT mode), never typed.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.reports.pages import write_report
from bench.reports.render import SORT_SCRIPT, Bullets, Headline, Part, Plot
from bench.studies.figures import StudyFrames, best_point, is_sparsity_study, study_frames
from bench.studies.findings import comparable_times, concurrency_line, findings
from bench.studies.ledger import Ledger
from bench.studies.report_sections import (best_line, code_machine_table, failed_table, pending_table, points_table,
                                           retried_table, sparsity_parts, summary_lines)
from bench.studies.study import Study


def _plots(study: Study, data: StudyFrames) -> list[Plot]:
    """A curves chart per axis, the training-set size and batch size charts where those are axes, and
    final accuracy against learning rate for a learning-rate sweep across one other axis."""
    from bench.studies.plot_lr import lr_plot  # matplotlib: only when drawn
    from bench.studies.plots import axis_plot, batch_size_plot, train_size_plot

    best = best_point(data)
    if best is None:
        return []
    plots = [axis_plot(study, axis, data, best) for axis in study.axes]
    plots += [train_size_plot(study, data), batch_size_plot(study, data), lr_plot(study, data)]
    return [plot for plot in plots if plot is not None]


def report_parts(study: Study, ledger: Ledger) -> list[Part]:
    data = study_frames(study, ledger)
    parts: list[Part] = []
    if study.description:
        parts.append(study.description)
    parts += summary_lines(study, ledger, data)
    if (concurrency := concurrency_line(data)) is not None:
        parts.append(concurrency)
    parts.append(Headline(best_line(study, data), anchor="best"))
    table = points_table(study, data)
    if not data.cells.empty and (why := comparable_times(data)) is not None:
        table.note += f" The time columns do not compare across rows: {why}."
    parts.append(table)
    parts += _plots(study, data)
    if is_sparsity_study(study):
        parts += sparsity_parts(study, data)
    if (mixed := code_machine_table(data)) is not None:
        parts.append(mixed)
    if ledger.where("failed"):
        parts.append(failed_table(study, ledger))
    if (retried := retried_table(study, ledger)) is not None:
        parts.append(retried)
    if ledger.where("pending"):
        parts.append(pending_table(study, ledger))
    if ledger.strays:
        names = ", ".join(sorted(os.path.basename(str(r.path)) for r in ledger.strays))
        parts.append(f"Result files in the folder that are no cell of this study (left out): {names}.")
    parts.append(Bullets("Findings", findings(study, data), anchor="findings"))  # last: what the numbers say
    return parts


def write_study_report(study: Study, ledger: Ledger, folder: Path) -> tuple[Path, Path]:
    """REPORT.md (plots as PNG files beside it) and report.html (plots inline) in `folder`;
    returns (report.html, REPORT.md)."""
    markdown, page = write_report(folder, f"Study {study.name}", report_parts(study, ledger),
                                  ("REPORT.md", "report.html"), script=SORT_SCRIPT)
    return page, markdown
