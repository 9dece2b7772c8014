"""Studies: grids of suite variants over seeds, run as ordinary invocations
(docs/design.md#8-studies-scale-out-and-interop).

    study (suites/studies/*.toml) -> cells (base suite + axis overrides, x seeds)
         -> executor (local | ray) -> one ordinary invocation per cell
         -> results/studies/<study>/runs/ -> study report (report)

study      the study file: schema, validation, expansion into points and cells
cell       one cell = one invocation of one seed, returned as its result record (never raises)
executors  where cells run: in this process, in N worker processes, or as Ray tasks (ray_executor,
           with ray_task: the function a cell runs as on a Ray worker)
sweep      `bench sweep`: what is done, what is left, running the rest, rewriting the report
ledger     which result files stand for which cells
report     the study's REPORT.md and report.html: figures (per point, from the result files),
           report_sections (text and tables), plots (charts); laid out and written by bench.reports

A *point* is one combination of axis values (one resolved suite, one hash); a *cell* is a
point and a seed. The cell's identity (its resolved suite's hash + seed) decides resume,
file names and report rows: two cells never share a file and a rerun only fills the gaps.
Nothing here trains on its own: a cell is `bench run SUITE --set ... --seed S --runs 1`.
"""
