"""Reports built from result files only (docs/design.md#4-result-files): nothing here trains or measures.

frame        result files -> pandas DataFrames (invocations, runs, curves), machine labels
leaderboard  `bench leaderboard`: PASS entries ranked per suite, the rest listed apart
compare      `bench compare`: machines side by side against a baseline, with plots
check        `bench check`: the regression gate for CI
export       `bench export`: the result files as one table (runs, invocations or curves) to a file
mlperf       a run in MLPerf Training's log format
render, pages, plots, specs: table and page layouts, the one page writer (atomic), charts, spec
             tables read through bench.specs.files (numbers read the way bench.formatting writes them)

Each command module has `add_arguments(parser)` and `command(args, console) -> int`
(a study's report belongs to the studies package, which knows the study's cells; it lays out and
writes its pages with render and pages: it imports from here, never the other way).
"""
