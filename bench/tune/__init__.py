"""`bench tune`: the fastest recipe to a suite's target on this machine, found by search (Optuna)
and verified on fresh seeds (issue 42).

    space (TOML) -> trials (each an ordinary invocation of the suite with the trial's values,
         judged on the validation split, on seeds of its own, stopped at the best time so far)
         -> Optuna study (SQLite under the results folder, or --storage)
         -> verification (the best recipe and the default, interleaved, on the test split)
         -> tuned suite (tuned_from) + report

space     the search space file: keys, ranges, choices; checked against the suite schema
search    the trials: Optuna's ask and tell around the studies' executors, the time limit
verify    the best recipe beside the default on judged seeds: verdict and speed-up interval
output    the tuned suite file
report    REPORT.md and report.html (trial history, importances, best against default)
command   the command line
"""
