"""Reports built from result files only (DESIGN.md section 4): nothing here trains or measures.

frame        result files -> pandas DataFrames (invocations, runs, curves), machine labels
leaderboard  `bench leaderboard`: PASS entries ranked per suite, the rest listed apart
compare      `bench compare`: machines side by side against a baseline, with plots
check        `bench check`: the regression gate for CI
formatting, render, plots, specs: how numbers read, table layouts, charts, spec tables

Each command module has `add_arguments(parser)` and `command(args, console) -> int`.
"""
