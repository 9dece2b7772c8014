"""Reports built from result files only (DESIGN.md section 4): nothing here trains or measures.

frame        result files -> pandas DataFrames (invocations, runs, curves), machine labels
leaderboard  `bench leaderboard`: PASS entries ranked per suite, the rest listed apart
compare      `bench compare`: machines side by side against a baseline, with plots
check        `bench check`: the regression gate for CI
study        a study's REPORT.md and report.html (`bench sweep` writes it; study_plots draws it)
render, plots, specs: table layouts, charts, spec tables read through bench.specs.files (numbers read
             the way bench.formatting writes them)

Each command module has `add_arguments(parser)` and `command(args, console) -> int`
(the study report is written by `bench sweep`, which knows the study's cells).
"""
