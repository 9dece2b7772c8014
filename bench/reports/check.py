"""`bench check BASELINE [CANDIDATE]`: the regression gate for CI.

BASELINE and CANDIDATE are result files or folders. A baseline must be complete; a
baseline folder stands for its newest complete result of each suite, a candidate folder
for its newest result of each suite, whatever its status. Without CANDIDATE, the newest
result of the same suite under --results (other than the baseline; on the baseline's
hardware when there is one) is the candidate.

The rule, per suite (printed with every check):
  status    A candidate that is not complete (interrupted, diverged, failed) regressed.
  accuracy  Regression when  mean_c < mean_b - tol,  tol = sqrt(hw_b^2 + hw_c^2), where hw
            is each result's 95% CI half-width of the mean accuracy (Student t over its
            runs): the drop must exceed what the two results' own uncertainty allows.
            When either result has no CI (a single run), tol = the floor
            (--accuracy-floor, default 0.01 = 1 percentage point).
  time      slowdown = median_c / median_b - 1 (median time to target over the runs).
            Regression when  slowdown > max(floor, k * sqrt(rIQR_b^2/n_b + rIQR_c^2/n_c)),
            rIQR = IQR / median of a result's n timed runs. The square root is the
            relative noise of the difference of the two medians: the standard error
            of a median of n runs is about 1.25 sigma / sqrt(n) and sigma is about
            IQR / 1.35, so the standard error of the difference is ~0.93 x the root,
            and k = 3 puts the gate ~3.2 standard errors out. A noisy measurement
            widens the gate, more runs narrow it again, and it never goes below the
            floor (--time-floor, default 0.10; --time-k, default 3). When either
            result has fewer than 2 timed runs there is no spread to go by and the
            floor applies alone.
            A candidate with no time to target where the baseline had one regressed.
            Load (bench.reports.check_load): a time is judged only on runs measured under
            low load (a run from before bench recorded the load counts as quiet, and the
            table says so), or, where the two sides' runs took turns over the same stretch
            of time, on the ratios of the runs paired in time order. A side whose every
            timed run met high load makes the time *inconclusive*: the cause is named and
            the exit code is 5, never 1. --rerun N runs the candidate's suite again (up to
            N more invocations, into the candidate's folder) while the time is inconclusive,
            and judges the time on the candidate's runs pooled with its reruns.
  model     Any change of parameter count, active (nonzero, after training) parameter
            count or FLOPs per image is reported; it is a regression only with --strict-model.
  reported  throughput, energy, recipe (suite hash), hardware, software and code
            version changes: context for the reader, never a failure by themselves.

Exit 0: no regression; 1: a regression (a table says what); 2: bad input (one line);
5: no regression found, but a time could not be judged (inconclusive: the machine was busy;
CI may rerun, and `make gate` treats it as not a failure, saying why).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.destinations import path_argument
from bench.errors import EXIT_BROKEN, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_OK, BenchError
from bench.progress import RichReporter
from bench import formatting as fmt
from bench.record.files import load_results, result_files, results_root
from bench.reports.check_load import QUIET_ALL, Side, time_basis
from bench.reports.frame import newest_first, read_results

OK, REGRESSION, CHANGED, INFO, INCONCLUSIVE = "ok", "REGRESSION", "changed", "info", "inconclusive"


@dataclass(frozen=True)
class GateRule:
    accuracy_floor: float = 0.01
    time_floor: float = 0.10
    time_k: float = 3.0
    strict_model: bool = False

    def describe(self) -> str:
        return (f"accuracy: fail when mean_c < mean_b - sqrt(hw_b² + hw_c²) (95% CI half-widths; "
                f"{100 * self.accuracy_floor:.1f} pp when a result has no CI). "
                f"time: fail when median slowdown > max({fmt.percent(self.time_floor, 0)}, "
                f"{self.time_k:g} × sqrt(rIQR_b²/n_b + rIQR_c²/n_c)), rIQR = IQR / median of n runs. "
                f"params/active params/FLOPs: changes reported{', and fail (--strict-model)' if self.strict_model else ''}.")


@dataclass
class Finding:
    check: str
    baseline: str
    candidate: str
    change: str
    allowed: str
    result: str                    # OK | REGRESSION | CHANGED | INFO | INCONCLUSIVE
    value: float | None = None     # the measured change (accuracy drop, relative slowdown) for callers
    limit: float | None = None     # the threshold it was held against


@dataclass
class PairReport:
    suite: str
    baseline: pd.Series
    candidate: pd.Series
    findings: list[Finding]

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.result == REGRESSION]

    @property
    def inconclusive(self) -> list[Finding]:
        return [f for f in self.findings if f.result == INCONCLUSIVE]

    def finding(self, check: str) -> Finding:
        return next(f for f in self.findings if f.check == check)


# ---------------------------------------------------------------- the rules ----

def _number(value) -> float | None:
    return None if fmt.missing(value) else float(value)


def check_status(candidate: pd.Series) -> Finding:
    bad = candidate["status"] != "complete"
    return Finding("status", "complete", candidate["status"], "", "complete", REGRESSION if bad else OK)


def check_accuracy(baseline: pd.Series, candidate: pd.Series, rule: GateRule) -> Finding:
    mean_b, mean_c = _number(baseline["mean_accuracy"]), _number(candidate["mean_accuracy"])
    hw_b, hw_c = _number(baseline["ci_half_width"]), _number(candidate["ci_half_width"])
    shown_b, shown_c = fmt.accuracy_with_ci(mean_b, hw_b), fmt.accuracy_with_ci(mean_c, hw_c)
    if mean_b is None or mean_c is None:
        return Finding("mean accuracy", shown_b, shown_c, "", "", REGRESSION if mean_c is None else INFO)
    if hw_b is None or hw_c is None:
        tolerance, why = rule.accuracy_floor, "floor (a result has no CI)"
    else:
        tolerance, why = math.hypot(hw_b, hw_c), "sqrt(hw_b² + hw_c²)"
    drop = mean_b - mean_c
    return Finding("mean accuracy", shown_b, shown_c, f"{-100 * drop:+.2f} pp",
                   f"drop ≤ {100 * tolerance:.2f} pp ({why})", REGRESSION if drop > tolerance else OK,
                   value=drop, limit=tolerance)


def relative_iqr(row: pd.Series) -> tuple[float, int] | None:
    """IQR / median of the run times and the number of runs; None with fewer than 2 (no spread to go by)."""
    median, iqr, runs = _number(row["median_time_s"]), _number(row["iqr_time_s"]), _number(row["timed_runs"])
    if median is None or iqr is None or not median or runs is None or runs < 2:
        return None
    return iqr / median, int(runs)


def time_threshold(baseline: pd.Series, candidate: pd.Series, rule: GateRule) -> tuple[float, str]:
    spread_b, spread_c = relative_iqr(baseline), relative_iqr(candidate)
    if spread_b is None or spread_c is None:
        return rule.time_floor, "floor (a result has < 2 timed runs)"
    (r_b, n_b), (r_c, n_c) = spread_b, spread_c
    noise = math.sqrt(r_b ** 2 / n_b + r_c ** 2 / n_c)
    return _threshold(noise, f"rIQR {fmt.percent(r_b, 1)} of {n_b}, {fmt.percent(r_c, 1)} of {n_c}", rule)


def _threshold(noise: float | None, spread: str, rule: GateRule) -> tuple[float, str]:
    if noise is None:
        return rule.time_floor, f"floor ({spread})"
    if rule.time_k * noise > rule.time_floor:
        return rule.time_k * noise, f"{rule.time_k:g} × noise {fmt.percent(noise, 1)}; {spread}"
    return rule.time_floor, f"floor; {rule.time_k:g} × noise is {fmt.percent(rule.time_k * noise, 1)} ({spread})"


def sides_of(baseline: pd.Series, candidate: pd.Series) -> tuple[Side, Side]:
    """Each result's timed runs with their load, read from its file."""
    return (Side.from_files("baseline", [Path(baseline["path"])]),
            Side.from_files("candidate", [Path(candidate["path"])]))


def check_time(baseline: pd.Series, candidate: pd.Series, rule: GateRule,
               sides: tuple[Side, Side] | None = None) -> Finding:
    """The time rule (the module's doc); `sides` are the runs to judge on (a candidate pooled
    with its reruns), by default each result file's own."""
    median_b, median_c = _number(baseline["median_time_s"]), _number(candidate["median_time_s"])
    shown_b = fmt.time_to_target(median_b, baseline["iqr_time_s"], baseline["timed_runs"], baseline["complete_runs"])
    shown_c = fmt.time_to_target(median_c, candidate["iqr_time_s"], candidate["timed_runs"], candidate["complete_runs"])
    if median_b is None:
        return Finding("median time to target", shown_b, shown_c, "", "", INFO)
    if median_c is None:
        return Finding("median time to target", shown_b, shown_c, "no time to target", "a time", REGRESSION)
    pooled = sides is not None
    basis = time_basis(*(sides or sides_of(baseline, candidate)))
    if basis.how == "inconclusive":
        return Finding("median time to target", shown_b, shown_c, "not judged",
                       f"both sides under low load; {basis.why}", INCONCLUSIVE)
    whole = basis.how == "quiet" and not pooled and len(basis.baseline_times) == _number(baseline["timed_runs"]) \
        and len(basis.candidate_times) == _number(candidate["timed_runs"])
    if whole:  # every run counts: the results' own figures, as they were written
        threshold, why = time_threshold(baseline, candidate, rule)
        slowdown = median_c / median_b - 1
    else:  # paired ratios, or some runs left out or pooled in: figures of the runs judged
        slowdown, noise, spread = basis.slowdown_and_noise()
        threshold, why = _threshold(noise, spread, rule)
        if basis.how == "quiet":
            shown_c = (f"{fmt.seconds(statistics.median(basis.candidate_times))} (median of the "
                       f"{len(basis.candidate_times)} judged runs)")
    if basis.why != QUIET_ALL:  # what the judgement rests on, where it is not simply every run
        why = f"{why}; {basis.why}"
    return Finding("median time to target", shown_b, shown_c, fmt.signed_percent(slowdown),
                   f"slowdown ≤ {fmt.percent(threshold, 1)} ({why})", REGRESSION if slowdown > threshold else OK,
                   value=slowdown, limit=threshold)


MODEL_FIGURES = (("params", "params"), ("trainable_params", "trainable params"),
                 ("active_params", "active (nonzero) params"), ("flops_per_image", "FLOPs / image (forward)"))


def check_model(baseline: pd.Series, candidate: pd.Series, rule: GateRule) -> list[Finding]:
    findings = []
    for column, label in MODEL_FIGURES:
        b, c = _number(baseline[column]), _number(candidate[column])
        if b == c:
            findings.append(Finding(label, fmt.si(b), fmt.si(c), "same", "any", OK))
            continue
        change = fmt.signed_percent(c / b - 1) if b and c is not None else "changed"
        findings.append(Finding(label, f"{b:,.0f}" if b is not None else fmt.MISSING,
                                f"{c:,.0f}" if c is not None else fmt.MISSING, change,
                                "no change (--strict-model)" if rule.strict_model else "any (reported)",
                                REGRESSION if rule.strict_model else CHANGED))
    return findings


def context(baseline: pd.Series, candidate: pd.Series) -> list[Finding]:
    """Figures that explain a result but never fail it."""
    out = []
    rate_b, rate_c = _number(baseline["median_train_images_per_s"]), _number(candidate["median_train_images_per_s"])
    out.append(Finding("training throughput", fmt.rate(rate_b), fmt.rate(rate_c),
                       fmt.signed_percent(rate_c / rate_b - 1) if rate_b and rate_c else "", "", INFO))
    energy_b, energy_c = _number(baseline["mean_energy_j"]), _number(candidate["mean_energy_j"])
    out.append(Finding("energy / run", fmt.energy(energy_b), fmt.energy(energy_c),
                       fmt.signed_percent(energy_c / energy_b - 1) if energy_b and energy_c else "", "", INFO))
    for column, label in (("verdict", "verdict"), ("suite_hash", "recipe (suite hash)"), ("hardware", "hardware"),
                          ("software", "software"), ("code", "code")):
        b, c = fmt.text(baseline[column]), fmt.text(candidate[column])
        if column == "suite_hash":
            b, c = b[:12], c[:12]
        out.append(Finding(label, b, c, "same" if b == c else "changed", "", INFO if b == c else CHANGED))
    return out


def check_pair(baseline: pd.Series, candidate: pd.Series, rule: GateRule,
               sides: tuple[Side, Side] | None = None) -> PairReport:
    findings = [check_status(candidate), check_accuracy(baseline, candidate, rule),
                check_time(baseline, candidate, rule, sides), *check_model(baseline, candidate, rule),
                *context(baseline, candidate)]
    return PairReport(str(baseline["suite"]), baseline, candidate, findings)


# ---------------------------------------------------------------- choosing the pairs ----

def _invocations(source: Path, reporter: RichReporter | None) -> pd.DataFrame:
    found = read_results(source, reporter)
    if found.empty:
        raise BenchError(f"{source}: no result file found there")
    return found.invocations


def baselines(source: Path, reporter: RichReporter | None) -> pd.DataFrame:
    """A file is the baseline and must be complete; a folder gives its newest complete result per suite."""
    found = _invocations(source, reporter)
    if Path(source).is_file():
        row = found.iloc[0]
        if row["status"] != "complete":
            raise BenchError(f"baseline {source} is {row['status']}; a baseline must be a complete result")
        return found
    complete = found[found["status"] == "complete"]
    if complete.empty:
        raise BenchError(f"{source}: no complete result to use as a baseline")
    return newest_first(complete).drop_duplicates("suite")


def pairs(baseline_source: Path, candidate_source: Path | None, results: Path,
          reporter: RichReporter | None = None) -> list[tuple[pd.Series, pd.Series]]:
    """(baseline, candidate) for every suite of the baseline; every problem is one BenchError line.

    The candidate is the newest result of the suite (whatever its status: a candidate that
    broke must be seen) in CANDIDATE, else under `results` other than the baseline itself,
    preferring results on the baseline's hardware: timing another machine is no regression test.
    """
    base = baselines(baseline_source, reporter)
    if candidate_source is not None:
        pool, where = _invocations(candidate_source, reporter), str(candidate_source)
    else:
        pool = read_results(results, reporter).invocations if Path(results).exists() else base.iloc[:0]
        pool, where = pool[~pool["id"].isin(base["id"])], f"{results} (other than the baseline)"
    pool = newest_first(pool)
    out = []
    for _, baseline in base.iterrows():
        same_suite = pool[pool["suite"] == baseline["suite"]]
        if same_suite.empty:
            raise BenchError(f"no candidate result for suite {baseline['suite']!r} in {where}")
        same_hardware = same_suite[same_suite["hardware"] == baseline["hardware"]]
        if candidate_source is None and not same_hardware.empty:
            same_suite = same_hardware
        out.append((baseline, same_suite.iloc[0]))
    return out


# ---------------------------------------------------------------- the command ----

_STYLE = {REGRESSION: "bold red", CHANGED: "yellow", OK: "green", INFO: "dim", INCONCLUSIVE: "bold yellow"}


def findings_table(report: PairReport) -> Table:
    table = Table(title=escape(f"{report.suite}: baseline {report.baseline['id']} → candidate {report.candidate['id']}"),
                  title_justify="left")
    for column in ("check", "baseline", "candidate", "change", "allowed", "result"):
        table.add_column(column)
    for f in report.findings:
        table.add_row(*map(escape, (f.check, f.baseline, f.candidate, f.change, f.allowed)),
                      f"[{_STYLE[f.result]}]{escape(f.result)}[/]")
    return table


def regressions_table(reports: list[PairReport]) -> Table:
    table = Table(title="what regressed", title_justify="left", style="red")
    for column in ("suite", "check", "baseline", "candidate", "change", "allowed"):
        table.add_column(column)
    for report in reports:
        for f in report.regressions:
            table.add_row(*map(escape, (report.suite, f.check, f.baseline, f.candidate, f.change, f.allowed)))
    return table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", type=path_argument,
                        help="baseline result file, or a folder (its newest complete result per suite)")
    parser.add_argument("candidate", type=path_argument, nargs="?",
                        help="candidate result file or folder (default: the newest result of the same suite "
                             "under --results)")
    parser.add_argument("--results", type=path_argument, metavar="DIR",
                        help="where to look for the default candidate (default: results, or $BENCH_RESULTS)")
    parser.add_argument("--accuracy-floor", type=float, default=GateRule.accuracy_floor, metavar="FRACTION",
                        help="allowed accuracy drop when a result has no CI (one run); default 0.01 (1 point)")
    parser.add_argument("--time-floor", type=float, default=GateRule.time_floor, metavar="FRACTION",
                        help="the time gate's lowest setting: quiet runs still need a median slowdown above this "
                             "to fail; default 0.10")
    parser.add_argument("--time-k", type=float, default=GateRule.time_k, metavar="K",
                        help="the time gate widens to K × sqrt(rIQR_b²/n_b + rIQR_c²/n_c) when that is larger than "
                             "the floor; default 3")
    parser.add_argument("--strict-model", action="store_true", help="fail on any change of params or FLOPs")
    parser.add_argument("--rerun", type=int, default=0, metavar="N",
                        help="while a time is inconclusive (the machine was busy), run the candidate's suite again, "
                             "up to N more invocations written beside the candidate, and judge the time on the "
                             "candidate's runs pooled with its reruns (default 0: judge as found)")


def rule_from(args: argparse.Namespace) -> GateRule:
    if getattr(args, "rerun", 0) < 0:
        raise BenchError(f"--rerun {args.rerun}: give a number of reruns >= 0")
    for name in ("accuracy_floor", "time_floor", "time_k"):
        value = getattr(args, name, getattr(GateRule, name))
        if not (value >= 0 and math.isfinite(value)):
            raise BenchError(f"--{name.replace('_', '-')} {value}: give a number >= 0")
    return GateRule(accuracy_floor=args.accuracy_floor, time_floor=args.time_floor, time_k=args.time_k,
                    strict_model=args.strict_model)


def run_check(args: argparse.Namespace, console: Console) -> list[PairReport]:
    rule = rule_from(args)
    reporter = RichReporter()  # notices on stderr, the report on stdout
    reports = []
    for baseline, candidate in pairs(args.baseline, args.candidate, args.results or results_root(), reporter):
        report = check_pair(baseline, candidate, rule)
        reruns: list[Path] = []
        while report.inconclusive and len(reruns) < getattr(args, "rerun", 0):
            console.print(f"[yellow]inconclusive[/yellow] {escape(report.suite)}: "
                          f"{escape(report.finding('median time to target').allowed)}; rerun "
                          f"{len(reruns) + 1} of {args.rerun}", soft_wrap=True)
            reruns.append(rerun_candidate(candidate))
            sides = (Side.from_files("baseline", [Path(baseline["path"])]),
                     Side.from_files("candidate", [Path(candidate["path"]), *reruns]))
            report = check_pair(baseline, candidate, rule, sides)
        reports.append(report)
    return reports


def rerun_command(record: dict, folder: Path) -> list[str]:
    """`bench run` of the candidate's suite as it ran: its file, overrides, seeds and device."""
    suite, invocation = record["suite"], record["invocation"]
    sets = [f"{key}={_toml(value)}" for key, value in (suite.get("overrides") or {}).items()]
    seeds = invocation.get("seeds") or [record["runs"][0]["seed"]]
    # the file it ran from, or (moved, another checkout) the suite of that name here
    ref = suite["path"] if Path(suite["path"]).is_file() else suite["name"]
    return [sys.executable, "-m", "bench", "run", ref, *[a for s in sets for a in ("--set", s)],
            "--runs", str(len(seeds)), "--seed", str(seeds[0]), "--device", invocation["device"],
            "--results", str(folder)]


def _toml(value) -> str:
    """A --set value as TOML (what bench.suites.parse_override reads back)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def rerun_candidate(candidate: pd.Series) -> Path:
    """Runs the candidate's suite once more into the candidate's folder; the new result file."""
    path = Path(candidate["path"])
    record = load_results([path])[0].record
    before = set(result_files(path.parent))
    done = subprocess.run(rerun_command(record, path.parent))
    new = sorted(set(result_files(path.parent)) - before)
    if done.returncode not in (EXIT_OK, EXIT_FAIL) or not new:
        error = BenchError(f"--rerun: bench run of {record['suite']['name']} into {path.parent} exited "
                           f"{done.returncode}; see its output above")
        error.exit_code = EXIT_BROKEN  # a fault after work, not bad input
        raise error
    return new[-1]


def command(args: argparse.Namespace, console: Console) -> int:
    reports = run_check(args, console)
    console.print(f"[dim]rule: {escape(rule_from(args).describe())}[/dim]")
    for report in reports:
        console.print(findings_table(report))
    failed = [r for r in reports if r.regressions]
    if failed:
        console.print(regressions_table(failed))
        console.print(f"[bold red]regression[/bold red] in {escape(', '.join(r.suite for r in failed))}")
        return EXIT_FAIL
    unsure = [r for r in reports if r.inconclusive]
    if unsure:
        for report in unsure:
            for f in report.inconclusive:
                console.print(f"[bold yellow]inconclusive[/bold yellow] {escape(report.suite)} {escape(f.check)}: "
                              f"{escape(f.allowed)}", soft_wrap=True)
        console.print(f"no regression found, but {len(unsure)} of {len(reports)} suites could not be judged on time "
                      f"(exit {EXIT_INCONCLUSIVE}: rerun on a quieter machine, or with --rerun N)")
        return EXIT_INCONCLUSIVE
    console.print("[green]no regression[/green]")
    return EXIT_OK
