"""The trials: Optuna's ask and tell around the executors bench's studies use.

Each trial is one ordinary invocation (`bench run SUITE --set ... --seed S --runs 1`) of the
suite with the trial's values, and keeps its own result file (RESULTS/tune/<suite>/trials/).
A trial is judged on the validation split (dataset.judged_on = "validation": the test split is
never read), on a seed of the trials' own range (bench.seeds.TUNE_SEED_BASE + trial number),
and with the time objective it is stopped once its timed region passes the best time to target
found so far (recipe.time_limit_s, honoured by the trainer inside its clock): it cannot win, and
is told to Optuna as PRUNED with the time it spent. A trial that ends its budget below the target
is PRUNED too (it cannot win either); a failed or diverged trial is FAIL. None ends the search.

Sampler: Optuna's TPE (its default), multivariate (the learning rate that fits depends on the
batch and the epochs), with a constant liar, so that trials asked while others still run are
steered away from the points those hold; its random start-up is cut to a third of the trials
(at least 3), as the searches here are a dozen trials, not hundreds. TPE takes mixed categorical,
integer, stepped and log-scaled dimensions as they are; CMA-ES and GP samplers do not.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from bench.errors import BenchError
from bench.seeds import TUNE_SEED_BASE, check_seeds
from bench.studies.cell import CellJob
from bench.studies.study import identity_hash, toml_value
from bench.suites import Suite, suite_with
from bench.tune.space import Space

OUTCOMES = ("reached", "pruned", "not reached", "failed", "diverged")


def open_storage(text: str | None, folder: Path) -> tuple[Any, str]:
    """Optuna's storage and how to name it: SQLite in the tune folder by default, a database URL,
    or a journal file (PATH.journal or journal:PATH, for many machines on one file system).
    Anything that cannot be opened is one line, before any training."""
    import optuna

    try:
        if text is None:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / "study.db"
            # named as seen from here (results/tune/...: the same in every clone), opened by its full path
            return optuna.storages.RDBStorage(f"sqlite:///{path.resolve()}"), f"sqlite:///{shown(path)}"
        if text.startswith("journal:") or text.endswith(".journal"):
            from optuna.storages.journal import JournalFileBackend

            path = Path(text.removeprefix("journal:"))
            if not path.parent.is_dir():
                raise BenchError(f"--storage {text}: the folder {path.parent} does not exist; create it or give "
                                 "another journal file")
            return optuna.storages.JournalStorage(JournalFileBackend(str(path))), f"journal:{path}"
        return optuna.storages.RDBStorage(text, engine_kwargs={"connect_args": _connect_args(text)}), text
    except BenchError:
        raise
    except Exception as exc:  # a driver missing, a host that does not answer, a file that cannot be made
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BenchError(f"--storage {text}: cannot open the study's storage ({type(exc).__name__}: {reason[:200]}); "
                         "give a database URL that answers (sqlite:///PATH, postgresql://...) or a journal file "
                         "PATH.journal") from None


def shown(path: Path) -> str:
    """A path as the record and the report show it: relative to the working directory when inside it."""
    full, here = Path(path).resolve(), Path.cwd().resolve()
    return str(full.relative_to(here)) if full.is_relative_to(here) else str(full)


def _connect_args(url: str) -> dict[str, Any]:
    """A server that does not answer is refused in seconds, not after the driver's minutes."""
    return {"connect_timeout": 10} if url.startswith(("postgresql", "mysql")) else {}


def sampler(trials: int | None) -> Any:
    import optuna

    startup = max(3, (trials or 12) // 3)
    return optuna.samplers.TPESampler(n_startup_trials=startup, multivariate=True, constant_liar=True)


@dataclass
class Search:
    """One search: the suite, the space, the Optuna study, and where trials write."""

    suite: Suite
    space: Space
    study: Any                      # optuna.Study
    folder: Path                    # RESULTS/tune/<suite>/
    objective: str                  # time | accuracy
    validation_size: int
    device: str
    margin: float = 0.0             # added to the trials' target (bench.tune.target)
    base_target: float | None = None  # the target on validation (bench.tune.target); the suite's until known
    live: dict[int, Any] = field(default_factory=dict)   # trial number -> its optuna Trial (asked, not told)

    @property
    def trials_dir(self) -> Path:
        return self.folder / "trials"

    def fixed(self, limit: float | None) -> dict[str, Any]:
        """What every trial sets besides its values: the split it is judged on, the time limit."""
        values: dict[str, Any] = {"dataset.validation_size": self.validation_size, "dataset.judged_on": "validation",
                                  "target": self.trial_target}
        if self.objective == "accuracy":
            values["mode"] = "budget"  # accuracy under the suite's budget: the whole budget, judged at its end
        if limit is not None:
            values["recipe.time_limit_s"] = limit
        return values

    @property
    def trial_target(self) -> float:
        """The target trials must reach on validation: the suite's target calibrated on validation
        (bench.tune.target), plus the margin."""
        base = self.suite.target if self.base_target is None else self.base_target
        return round(min(1.0, base + self.margin), 6)

    def time_limit(self) -> float | None:
        """The best time to target so far (a trial past it cannot win), or none yet."""
        import optuna

        if self.objective != "time":
            return None
        done = [t.value for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
        return round(min(done), 3) if done else None

    def next_job(self) -> CellJob | None:
        """Asks Optuna for a trial and makes it a cell job; None when its values make no valid suite
        (told as FAIL with the reason, recorded like any failed trial)."""
        trial = self.study.ask()
        values = self.space.suggest(trial)
        seed = TUNE_SEED_BASE + trial.number
        check_seeds(seed, 1, "the trial's seed")
        fixed = self.fixed(self.time_limit())
        trial.set_user_attr("seed", seed)
        trial.set_user_attr("time_limit_s", fixed.get("recipe.time_limit_s"))
        try:
            suite = suite_with(self.suite.path, {**self.suite.overrides, **fixed, **values},
                               f"{self.suite.path} (trial {trial.number})")
        except BenchError as exc:
            self.tell(trial, "failed", None, {"error": str(exc)})
            return None
        self.live[trial.number] = trial
        sets = [arg for key, value in {**fixed, **values}.items() for arg in ("--set", f"{key}={toml_value(value)}")]
        command = ["bench", "run", str(self.suite.path), "--runs", "1", "--seed", str(seed), "--device", self.device,
                   *sets]
        block = {"name": f"tune-{self.suite.name}", "path": str(self.space.path),
                 "cell": f"{identity_hash(suite.resolved)}-s{seed}", "seed": seed, "axes": values,
                 "fixed": fixed, "trial": trial.number}
        default = " (the suite's own recipe)" if trial.user_attrs.get("default_recipe") else ""
        label = f"trial {trial.number}{default}: " + ", ".join(f"{k}={_short(v)}" for k, v in values.items())
        return CellJob(key=f"trial{trial.number}", label=label, suite=suite, seed=seed, device=self.device,
                       command=command, study=block)

    def jobs(self, count: int | None, deadline: float | None) -> Iterator[CellJob]:
        """Trials, asked one at a time as an executor takes them (so each sees the best time so far):
        `count` of them, or until the deadline (time.monotonic) passes (one at least, so there is a search)."""
        for made in itertools.count():
            if (count is not None and made >= count) or (deadline is not None and made and time.monotonic() >= deadline):
                return
            job = self.next_job()
            if job is not None:
                yield job

    def finished(self, job: CellJob, record: dict[str, Any]) -> tuple[str, Path | None]:
        """A trial's record: written to its own file, then told to Optuna. Returns its outcome and file."""
        from bench.record.files import ResultWriter

        number = job.study["trial"]
        path = ResultWriter(self.trials_dir, prefix=f"trial{number:04d}-").write(record)
        outcome, value, attrs = trial_outcome(record, self.objective)
        attrs["result_file"] = shown(path)
        self.tell(self.live.pop(number), outcome, value, attrs)
        return outcome, path

    def tell(self, trial: Any, outcome: str, value: float | None, attrs: dict[str, Any]) -> None:
        import optuna

        trial.set_user_attr("outcome", outcome)
        for key, item in attrs.items():
            trial.set_user_attr(key, item)
        if outcome in ("failed", "diverged"):
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        elif outcome in ("pruned", "not reached"):
            if attrs.get("timed_s") is not None:  # where it stood: TPE ranks pruned trials by it
                trial.report(attrs["timed_s"], step=0)
            self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            self.study.tell(trial, value)


def trial_outcome(record: dict[str, Any], objective: str) -> tuple[str, float | None, dict[str, Any]]:
    """(outcome, objective value, attributes) of a trial's result record."""
    if record["status"] == "failed" or not record.get("runs"):
        return "failed", None, {"error": (record.get("error") or {}).get("message") or "failed"}
    run = record["runs"][0]
    attrs = {"timed_s": run.get("timed_s"), "validation_accuracy": run.get("accuracy"),
             "time_to_target_s": run.get("time_to_target_s"), "epochs": run.get("epochs")}
    if record["status"] == "diverged" or run.get("status") == "diverged":
        return "diverged", None, attrs
    if objective == "accuracy":
        return "reached" if run.get("reached_target") else "not reached", run["accuracy"], attrs
    if run.get("stopped_at_time_limit"):  # even where its last evaluation reached it: past the best time
        return "pruned", None, attrs
    if run.get("reached_target"):
        return "reached", run["time_to_target_s"], attrs
    return "not reached", None, attrs


def decoded(search: Search, trial: Any) -> dict[str, Any]:
    """A stored trial's values as the suite takes them (choices that are lists come back from JSON text)."""
    import optuna

    return search.space.suggest(optuna.trial.FixedTrial(trial.params))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else toml_value(value)


def run_trials(search: Search, args: Any, board: Any, on_finished: Callable[[CellJob, str, Path | None], None],
               count: int | None, deadline: float | None) -> None:
    """The trials on the chosen executor. Local workers and this process take each trial as they
    free up; Ray and SLURM take them in rounds of --workers (each round sees the best time so far)."""
    from bench.studies import executors

    def finished(job: CellJob, record: dict[str, Any]) -> None:
        outcome, path = search.finished(job, record)
        on_finished(job, outcome, path)

    workers = args.workers or 1
    jobs = search.jobs(count, deadline)
    if args.executor == "local":
        if workers > 1:
            executors.run_in_workers(jobs, board, finished, workers)
        else:
            executors.run_in_process(jobs, board, finished)
        return
    while batch := list(itertools.islice(jobs, workers)):
        if args.executor == "ray":
            from bench.studies.ray_executor import run_on_ray

            run_on_ray(batch, board, finished, args.address, workers, board.notice, log_path=search.folder / "ray.log",
                       connect_timeout_s=args.connect_timeout, retries=args.retries)
        else:
            from bench.studies.slurm_executor import run_on_slurm

            run_on_slurm(batch, board, finished, args, search.folder / "slurm", f"tune-{search.suite.name}")
