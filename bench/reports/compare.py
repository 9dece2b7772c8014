"""`bench compare`: the same suites on several machines, side by side, against a baseline machine.

What is compared: for each suite (name and target) and machine, the newest complete
invocation (interrupted, diverged and failed ones are left out and counted in a note).
Speed-up = baseline median time to target / this machine's (above 1: faster than the
baseline); throughput ratio = this machine's median training images/s / the baseline's.
Where a machine ran the suite with a different recipe (its suite hash differs from the
baseline's, e.g. a `--set` override), its ratio is marked, because it does not compare
like with like. The baseline is --baseline (a machine label, or a part of one naming one
machine), else the machine that ran the most suites.

A machine's label carries its world size (N× GPU (DDP), or N ranks × CPU), so a DDP run is
never compared as the same machine as a one-device run. When one suite (same recipe, suite
hash) ran on the same node(s) at several world sizes, a scaling table gives each world size
N its speed-up over one rank, T1 / TN, and its scaling efficiency, T1 / (N x TN).

Writes compare.html (one self-contained file, plots inline as PNG) and COMPARE.md with
its plots as PNG files beside it, into --out (default: the results folder's compare/).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass

import pandas as pd
from rich.console import Console
from rich.markup import escape

from bench.destinations import check_folder, path_argument
from bench.errors import BenchError
from bench.progress import RichReporter
from bench import formatting as fmt
from bench.record.files import results_root
from bench.reports.frame import BUSY_NOTE, ResultFrames, add_results_argument, busy_mark, newest_first, read_results
from bench.reports.pages import write_report
from bench.reports.render import Part, Plot, ReportTable, table_rich
from bench.reports.specs import SpecTable, read_spec_tables

DIFFERENT_RECIPE = "†"
RULES = ("For each suite and machine: the newest complete invocation. Speed-up = the baseline's median time to "
         "target / this machine's (above 1: faster); throughput ratio = this machine's median training images/s / "
         f"the baseline's. {DIFFERENT_RECIPE} marks a machine that ran the suite with another recipe (suite hash) "
         "than the baseline: its ratio does not compare like with like.")
SUITE_COLUMNS = ["machine", "verdict", "mean accuracy ± 95% CI (pp)", "median time to target (IQR)",
                 "median timed region", "speed-up",
                 "training throughput", "throughput ratio", "energy / run", "runs", "model", "software", "code",
                 "date"]


@dataclass
class SuiteComparison:
    suite: str
    target: float | None
    entries: pd.DataFrame        # one row per machine: the newest complete invocation
    baseline: pd.Series | None   # the baseline machine's row, if it ran this suite

    @property
    def title(self) -> str:
        return self.suite + ("" if self.target is None else f" — target {fmt.percent(self.target)}")

    @property
    def anchor(self) -> str:
        target = "" if self.target is None else f"-{self.target:g}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.suite}{target}")

    def speedup(self, row: pd.Series) -> float | None:
        if self.baseline is None or fmt.missing(row["median_time_s"]) or not row["median_time_s"]:
            return None
        base = self.baseline["median_time_s"]
        return None if fmt.missing(base) else base / row["median_time_s"]

    def throughput_ratio(self, row: pd.Series) -> float | None:
        if self.baseline is None:
            return None
        base, value = self.baseline["median_train_images_per_s"], row["median_train_images_per_s"]
        return None if fmt.missing(base) or fmt.missing(value) or not base else value / base

    def same_recipe(self, row: pd.Series) -> bool:
        return self.baseline is None or row["suite_hash"] == self.baseline["suite_hash"]


@dataclass
class Comparison:
    baseline: str
    machines: pd.DataFrame       # one row per machine (its newest invocation's environment)
    suites: list[SuiteComparison]
    left_out: pd.DataFrame       # invocations not compared (not complete)
    specs: list[SpecTable]
    scaling: pd.DataFrame | None = None  # scaling_rows(): world sizes of one suite on one node


SCALING_COLUMNS = ["suite", "suite_hash", "node", "world_size", "nnodes", "median_time_s", "one_rank_time_s",
                   "speedup", "efficiency"]


def scaling_rows(entries: pd.DataFrame) -> pd.DataFrame:
    """For each suite (name, target, recipe hash) that ran on the same node(s) with one rank and
    with N > 1: T1 / TN and the scaling efficiency T1 / (N x TN), from the median times to target.
    The suite's batch_size is the global batch at every world size, so it is the same recipe."""
    rows = []
    keys = ["suite", "target", "suite_hash", "node"]
    for (suite, _, suite_hash, node), group in entries.groupby(keys, dropna=False, sort=True):
        one = group[group["world_size"] == 1]
        if one.empty or fmt.missing(one.iloc[0]["median_time_s"]):
            continue
        t1 = float(one.iloc[0]["median_time_s"])
        for _, row in group[group["world_size"] > 1].sort_values("world_size").iterrows():
            tn, n = row["median_time_s"], int(row["world_size"])
            if fmt.missing(tn) or not tn:
                continue
            rows.append({"suite": suite, "suite_hash": suite_hash, "node": node, "world_size": n,
                         "nnodes": row["nnodes"], "median_time_s": float(tn), "one_rank_time_s": t1,
                         "speedup": t1 / tn, "efficiency": t1 / (n * tn)})
    return pd.DataFrame(rows, columns=SCALING_COLUMNS)


def scaling_table(comparison: Comparison) -> ReportTable | None:
    if comparison.scaling is None or comparison.scaling.empty:
        return None
    table = ReportTable("Scaling over world sizes", ["suite", "node", "world size", "median time to target",
                                                     "1 rank", "speed-up T1/TN", "scaling efficiency T1/(N·TN)"],
                        anchor="scaling",
                        note="The same suite and recipe (suite hash) on the same node(s), at one rank and at N "
                             "ranks (DDP; the suite's batch_size is the global batch). Medians of time to target.")
    for _, row in comparison.scaling.iterrows():
        nodes = int(row["nnodes"]) if not fmt.missing(row["nnodes"]) else 1
        table.add([row["suite"], row["node"], f"{row['world_size']}" + (f" ({nodes} nodes)" if nodes > 1 else ""),
                   fmt.seconds(row["median_time_s"]), fmt.seconds(row["one_rank_time_s"]), fmt.ratio(row["speedup"]),
                   f"{row['efficiency']:.0%}"])
    return table


def newest_complete(invocations: pd.DataFrame) -> pd.DataFrame:
    complete = invocations[invocations["status"] == "complete"]
    return newest_first(complete).drop_duplicates(["suite", "target", "machine"], keep="first")


def choose_baseline(entries: pd.DataFrame, wanted: str | None, spec_machines: list[str]) -> str:
    machines = sorted(set(entries["machine"]) | set(spec_machines))
    if wanted is None:
        counts = entries.groupby("machine")["suite"].nunique()
        return min(machines, key=lambda m: (-counts.get(m, 0), m))
    if wanted in machines:
        return wanted
    matches = [m for m in machines if wanted.lower() in m.lower()]
    if len(matches) == 1:
        return matches[0]
    listed = "; ".join(machines)
    if not matches:
        raise BenchError(f"--baseline {wanted!r} names no machine in the results; machines: {listed}")
    raise BenchError(f"--baseline {wanted!r} names {len(matches)} machines; give more of the label: {listed}")


def build_comparison(found: ResultFrames, specs: list[SpecTable], baseline: str | None) -> Comparison:
    inv = found.invocations.copy()
    for column in ("median_time_s", "median_train_images_per_s", "mean_energy_j", "mean_accuracy", "target"):
        inv[column] = pd.to_numeric(inv[column], errors="coerce")
    entries = newest_complete(inv)
    if entries.empty and not specs:
        raise BenchError("no complete result to compare (every invocation was interrupted, diverged or failed) "
                         "and no spec table")
    chosen = choose_baseline(entries, baseline, [t.machine for t in specs])
    suites = []
    for (suite, target), group in entries.groupby(["suite", "target"], dropna=False, sort=True):
        group = group.sort_values("machine", key=lambda s: s.map(lambda m: (m != chosen, m)))
        base = group[group["machine"] == chosen]
        suites.append(SuiteComparison(str(suite), None if fmt.missing(target) else float(target), group,
                                      base.iloc[0] if len(base) else None))
    machines = newest_first(inv[inv["machine"].isin(entries["machine"])]).drop_duplicates("machine")
    return Comparison(baseline=chosen, machines=machines.sort_values("machine"), suites=suites,
                      left_out=inv[inv["status"] != "complete"], specs=specs, scaling=scaling_rows(entries))


# ---------------------------------------------------------------- tables ----

def machines_table(comparison: Comparison) -> ReportTable:
    table = ReportTable("Machines", ["machine", "hardware", "host", "software", "GPU memory", "CPU cores", "RAM",
                                     "suites"], anchor="machines",
                        note=f"Baseline: {comparison.baseline}. Environment of each machine's newest result.")
    suites = {m: sorted({s.suite for s in comparison.suites if m in set(s.entries["machine"])})
              for m in comparison.machines["machine"]}
    for _, row in comparison.machines.iterrows():
        gpu_mem = "" if fmt.missing(row["gpu_memory_gb"]) else f"{row['gpu_memory_gb']:.0f} GB"
        ram = "" if fmt.missing(row["ram_gb"]) else f"{row['ram_gb']:.0f} GB"
        table.add([row["machine"], row["hardware"], fmt.text(row["hostname"]), row["software"], gpu_mem or "—",
                   fmt.integer(row["cpu_cores"]), ram or "—", ", ".join(suites[row["machine"]])],
                  style="good" if row["machine"] == comparison.baseline else "")
    return table


def speedup_table(comparison: Comparison) -> ReportTable:
    machines = list(comparison.machines["machine"])
    table = ReportTable("Median time to target and speed-up against the baseline", ["suite", *machines],
                        anchor="speedups",
                        note=f"Cell: median time to target (speed-up = baseline time / this time). Baseline: "
                             f"{comparison.baseline}. {DIFFERENT_RECIPE}: a different recipe from the baseline's.")
    for suite in comparison.suites:
        cells = []
        for machine in machines:
            rows = suite.entries[suite.entries["machine"] == machine]
            if rows.empty:
                cells.append(fmt.MISSING)
                continue
            row = rows.iloc[0]
            mark = "" if suite.same_recipe(row) else DIFFERENT_RECIPE
            ratio = suite.speedup(row)
            time = fmt.time_to_target(row["median_time_s"], None, row["timed_runs"], row["complete_runs"]) + busy_mark(row)
            cells.append(time + ("" if ratio is None else f" ({fmt.ratio(ratio)}{mark})"))
        table.add([suite.title, *cells])
    return table


def suite_table(suite: SuiteComparison, baseline: str) -> ReportTable:
    note = (f"Newest complete invocation per machine. Ratios against {baseline}."
            if suite.baseline is not None else f"The baseline ({baseline}) did not run this suite: no ratios.")
    table = ReportTable(suite.title, SUITE_COLUMNS, anchor=f"suite-{suite.anchor}", note=note)
    for _, row in suite.entries.iterrows():
        mark = "" if suite.same_recipe(row) else f" {DIFFERENT_RECIPE}"
        speedup, throughput = suite.speedup(row), suite.throughput_ratio(row)
        table.add([row["machine"], fmt.verdict(row["verdict"], row["pass_fraction"], row["pass_rule"]),
                   fmt.accuracy_with_ci(row["mean_accuracy"], row["ci_half_width"]),
                   fmt.time_to_target(row["median_time_s"], row["iqr_time_s"], row["timed_runs"],
                                      row["complete_runs"]) + busy_mark(row),
                   fmt.seconds(row["median_timed_s"]), fmt.ratio(speedup) + (mark if speedup is not None else ""),
                   fmt.rate(row["median_train_images_per_s"]),
                   fmt.ratio(throughput) + (mark if throughput is not None else ""), fmt.energy(row["mean_energy_j"]),
                   fmt.runs_count(row["complete_runs"], row["runs"]),
                   f"{row['model']} ({fmt.si(row['params'])} params)", row["software"], row["code"],
                   fmt.text(row["date"])],
                  style="good" if row["machine"] == baseline else "")
    return table


def specs_table(comparison: Comparison) -> ReportTable | None:
    """Nets in rows; for every machine's spec table, its throughputs (with the ratio to the baseline's)."""
    if not comparison.specs:
        return None
    baseline = next((t for t in comparison.specs if t.machine == comparison.baseline), None)
    base_rows = {r.name: r for r in baseline.rows} if baseline else {}
    columns = [(t, key) for t in comparison.specs for key in sorted({k for r in t.rows for k in r.throughputs()})]
    names = list(dict.fromkeys(r.name for t in comparison.specs for r in t.rows))
    table = ReportTable("Network specifications", ["net", "params", "GFLOPs / image",
                                                   *[f"{key} — {t.machine}" for t, key in columns]],
                        anchor="specs", note="From results/specs/*.json; throughputs in images/s"
                                             + (f", ratio against {baseline.machine}." if baseline else "."))
    for name in names:
        rows = {t.machine: next((r for r in t.rows if r.name == name), None) for t in comparison.specs}
        known = next(r for r in rows.values() if r is not None)
        cells = []
        for spec, key in columns:
            row = rows[spec.machine]
            value = row.throughputs().get(key) if row else None
            base = base_rows[name].throughputs().get(key) if name in base_rows else None
            ratio = "" if value is None or not base or spec is baseline else f" ({fmt.ratio(value / base)})"
            cells.append(fmt.si(value) + ratio)
        table.add([name, fmt.si(known.params), fmt.si(known.forward_gflops),
                   *cells])
    return table


def left_out_note(comparison: Comparison) -> str:
    if comparison.left_out.empty:
        return ""
    counts = comparison.left_out["status"].value_counts()
    listed = ", ".join(f"{n} {status}" for status, n in counts.items())
    return f"Left out (not complete): {listed}."


# ---------------------------------------------------------------- the report ----

def suite_figures(suite: SuiteComparison, found: ResultFrames, colours: dict[str, str]) -> list[Plot]:
    # imported here: matplotlib costs ~0.35 s to import, and the CLI imports this module for every command
    from bench.reports.plots import accuracy_curves_png, machine_bars_png
    ids = set(suite.entries["id"])
    curves = found.curves[found.curves["id"].isin(ids)]
    runs = found.runs[found.runs["id"].isin(ids)]
    figures = []
    curve_png = accuracy_curves_png(curves, f"{suite.title}: accuracy against time, every run", suite.target, colours)
    if curve_png is not None:
        figures.append(Plot(f"{suite.anchor}-curves.png", f"{suite.title}: accuracy against seconds, every run",
                              curve_png))
    figures.append(Plot(f"{suite.anchor}-machines.png",
                          f"{suite.title}: time to target (bars: median, dots: runs), energy and throughput per "
                          "machine", machine_bars_png(suite.entries, runs, suite.title, colours)))
    return figures


def report_parts(comparison: Comparison, found: ResultFrames) -> list[Part]:
    """The report in reading order: tables, figures and plain paragraphs."""
    from bench.reports.plots import machine_colours  # matplotlib: imported when a report is made

    colours = machine_colours(list(comparison.machines["machine"]))
    parts: list[Part] = [RULES]
    if note := left_out_note(comparison):
        parts.append(note)
    if any((suite.entries["busy_runs"].fillna(0) > 0).any() for suite in comparison.suites):
        parts.append(BUSY_NOTE)  # only where a run is marked: reports of results without a load stay as they were
    if not comparison.machines.empty:
        parts.append(machines_table(comparison))
    if comparison.suites:
        parts.append(speedup_table(comparison))
    if (scaling := scaling_table(comparison)) is not None:
        parts.append(scaling)
    for suite in comparison.suites:
        parts.append(suite_table(suite, comparison.baseline))
        parts += suite_figures(suite, found, colours)
    if (specs := specs_table(comparison)) is not None:
        parts.append(specs)
    return parts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_results_argument(parser)
    parser.add_argument("--baseline", metavar="MACHINE",
                        help="the machine ratios are taken against: its label or a part of it naming one machine "
                             "(default: the machine that ran the most suites)")
    parser.add_argument("--specs", type=path_argument, metavar="DIR",
                        help="folder of spec tables (default: the results folder's specs/; skipped when absent)")
    parser.add_argument("--out", type=path_argument, metavar="DIR",
                        help="where compare.html, COMPARE.md and its PNGs go (default: the results folder's compare/)")


def command(args: argparse.Namespace, console: Console) -> int:
    source = args.results or results_root()
    folder = source if source.is_dir() else source.parent
    out = args.out or folder / "compare"
    check_folder(out, "--out")  # before the reading: a place that takes no files is one line
    if args.specs is not None and not args.specs.is_dir():
        raise BenchError(f"--specs {args.specs} is no folder; give the folder 'bench specs' wrote (results/specs), "
                         "or leave --specs out")
    reporter = RichReporter()  # notices on stderr, the report on stdout
    found = read_results(source, reporter)
    specs = read_spec_tables(args.specs or folder / "specs", reporter)
    if found.empty and not specs:
        raise BenchError(f"no result files or spec tables in {source}; make some with 'bench run SUITE' or "
                         "'bench specs', or point --results at them")
    comparison = build_comparison(found, specs, args.baseline)
    parts = report_parts(comparison, found)
    markdown, page = write_report(out, "Hardware comparison", parts,
                                  ("COMPARE.md", "compare.html"))
    for part in parts:
        if isinstance(part, ReportTable):
            console.print(table_rich(part))
    console.print(escape(f"wrote {page} (self-contained) and {markdown} (plots beside it)"))
    return 0
