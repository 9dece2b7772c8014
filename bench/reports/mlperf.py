"""A run in MLPerf Training's log format: a view of its result record, written through
mlperf-logging's `mllog`, checked by its compliance checker with bench's own ruleset.

Every timestamp comes from the record: the run's wall-clock anchors (`init_start_unix_s`,
`clock_start_unix_s`) plus the timed clock's readings (each epoch's `start_s`, `train_end_s`,
`eval_start_s`, `time_s`). So `run_stop - run_start` is the run's `time_to_target_s` (its
`timed_s` when it has none), by construction. The log's time axis is the timed clock's:
evaluations made only for the curve are paused out of the timed region, so they take no
time on it and are logged as `eval_accuracy` with `in_timed_region: false`.

    init_start          the run's set-up began (model, data upload, compile, warm-up)
    init_stop, run_start  the timed clock started
    epoch_start/stop    each epoch's training (epoch_num, samples_count: images trained so far)
    eval_start/stop, eval_accuracy   each deciding evaluation (in_timed_region: true)
    run_stop            the run's end, status success (the target was reached) or aborted

MLPerf keeps one log per run; so does bench (one file per seed).

Check a log with the official checker and the ruleset shipped in the package:

    python -m mlperf_logging.compliance_checker RUN.log \
        --config "$(python -c 'import bench.reports.mlperf as m; print(m.RULESET)')"
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bench.destinations import check_file
from bench.errors import BenchError
from bench.record.files import link_new, staged_file
from bench.reports.frame import code_label, machine_label

RULESET = Path(__file__).resolve().parent.parent / "record" / "schema" / "mlperf_ruleset.yaml"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent

# MLPerf's names for the arithmetic a run's matmuls and convolutions used
PRECISION = {"fp32": "fp32", "bf16": "bfloat16", "fp16": "fp16"}


class _Lines(logging.Handler):
    """Collects mllog's lines, so the file is written at once (atomically) and not line by line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _ms(unix_s: float) -> float:
    """mllog's time_ms; microsecond resolution keeps run_stop - run_start equal to the record's time."""
    return round(unix_s * 1000.0, 3)


def mlperf_log(record: dict[str, Any], index: int) -> str:
    """The MLPerf log of run `index` of a result record (migrated and validated by the reader)."""
    from mlperf_logging.mllog import constants as k
    from mlperf_logging.mllog.mllog import MLLogger

    run = record["runs"][index]
    if run["init_start_unix_s"] is None or run["clock_start_unix_s"] is None:
        raise BenchError(f"result {record['id']} run {index} has no wall-clock anchors (written before schema 2); "
                         "an MLPerf log needs a run made by this version of bench")
    resolved, recipe = record["suite"]["resolved"], record["suite"]["resolved"].get("recipe") or {}
    batch = recipe["batch_size"]
    start = run["clock_start_unix_s"]

    def at(reading_s: float) -> float:  # a reading of the timed clock, as mllog's unix milliseconds
        return _ms(start + reading_s)

    handler = _Lines()
    logger = logging.Logger(f"bench.mlperf.{record['id']}.{index}")  # private: nothing global is configured
    logger.addHandler(handler)
    log = MLLogger(logger=logger, root_dir=str(REPO_ROOT))

    t_init = _ms(run["init_start_unix_s"])
    # the data is prepared once per invocation and kept in memory between runs: no cache is cleared
    log.event(k.CACHE_CLEAR, False, time_ms=t_init,
              metadata={"reason": "bench prepares the data once per invocation and keeps it in memory"})
    log.start(k.INIT_START, time_ms=t_init)
    for key, value in ((k.SUBMISSION_ORG, "bench"), (k.SUBMISSION_PLATFORM, machine_label(record["env"])),
                       (k.SUBMISSION_DIVISION, k.OPEN), (k.SUBMISSION_STATUS, k.RESEARCH),
                       (k.SUBMISSION_BENCHMARK, record["suite"]["name"])):
        log.event(key, value, time_ms=t_init)
    for key, value in (("bench_result_id", record["id"]), ("bench_suite_hash", record["suite"]["hash"]),
                       ("bench_code", code_label(record["code"])), ("bench_mode", resolved["mode"]),
                       ("bench_target_accuracy", resolved["target"]), (k.SEED, run["seed"]),
                       (k.GLOBAL_BATCH_SIZE, batch), (k.GRADIENT_ACCUMULATION_STEPS, 1),
                       (k.OPT_NAME, recipe["optimizer"]), (k.OPT_BASE_LR, recipe["lr"]),
                       (k.OPT_WEIGHT_DECAY, recipe["weight_decay"]), ("opt_momentum", recipe["momentum"]),
                       ("opt_learning_rate_schedule", recipe["schedule"]["kind"]),
                       ("max_epochs", recipe["epochs"]), ("bench_recipe", recipe),
                       (k.LOWEST_NUMERICAL_PRECISION_IN_LINEAR, PRECISION[run["precision"]]),
                       (k.TRAIN_SAMPLES, record["dataset"]["train_size"]),
                       (k.EVAL_SAMPLES, record["dataset"]["test_size"])):
        log.event(key, value, time_ms=t_init)
    log.end(k.INIT_STOP, time_ms=at(0.0))
    log.start(k.RUN_START, time_ms=at(0.0))

    samples = 0
    for point in run["curve"]:
        epoch = {k.EPOCH_NUM: point["epoch"]}
        log.start(k.EPOCH_START, time_ms=at(point["start_s"]), metadata={**epoch, k.SAMPLES_COUNT: samples})
        samples = point["step"] * batch
        log.end(k.EPOCH_STOP, time_ms=at(point["train_end_s"]), metadata={**epoch, k.SAMPLES_COUNT: samples})
        where = {**epoch, k.SAMPLES_COUNT: samples}
        if point["eval_start_s"] is not None:  # a deciding evaluation, inside the timed region
            log.start(k.EVAL_START, time_ms=at(point["eval_start_s"]), metadata=where)
            log.end(k.EVAL_STOP, time_ms=at(point["time_s"]), metadata=where)
            log.event(k.EVAL_ACCURACY, point["accuracy"], time_ms=at(point["time_s"]),
                      metadata={**where, "in_timed_region": True})
        elif point["accuracy"] is not None:  # for the curve only: paused out, no time on this axis
            log.event(k.EVAL_ACCURACY, point["accuracy"], time_ms=at(point["train_end_s"]),
                      metadata={**where, "in_timed_region": False})

    stop_s = run["time_to_target_s"] if run["time_to_target_s"] is not None else run["timed_s"]
    log.event(k.TRAINED_SAMPLES, run["train_images"], time_ms=at(stop_s))
    log.end(k.RUN_STOP, time_ms=at(stop_s),
            metadata={k.STATUS: k.SUCCESS if run["reached_target"] else k.ABORTED, "bench_status": run["status"]})
    return "\n".join(handler.lines) + "\n"


# ---------------------------------------------------------------- files ----

def log_paths(base: Path, entrants: list[tuple[str, int]]) -> list[list[Path]]:
    """The log file of each run of each suite of an invocation (a race has several suites).

    One suite, one run: `base` itself. Several runs get MLPerf's result_N numbering
    (run.log -> run_0.log, run_1.log, ...); a race adds the suite name (run_airbench94_0.log)."""
    base = Path(base)
    race = len(entrants) > 1
    out = []
    for suite, count in entrants:
        names = []
        for i in range(count):
            parts = [base.stem] + ([suite] if race else []) + ([str(i)] if count > 1 else [])
            names.append(base.with_name("_".join(parts) + base.suffix))
        out.append(names)
    return out


def check_log_paths(paths: list[Path]) -> None:
    """Refuses, before any work, a log that could not be written or would replace a file."""
    for path in paths:  # its folder exists and takes files, no file has the name (bench.destinations)
        check_file(path, "--mllog", overwrite=False)
    if len(set(paths)) != len(paths):
        raise BenchError(f"--mllog: the suites of this race would share log names ({paths[0].name}); "
                         "give suites with different names")


def write_log(path: Path, text: str) -> Path:
    """Atomically, under a name that must be free (an MLPerf log is a record of one run)."""
    with staged_file(path.parent, text, path.suffix or ".log") as staged:
        if not link_new(staged, path):
            raise BenchError(f"--mllog {path} appeared while the run trained; the log was not written over it")
    return path
