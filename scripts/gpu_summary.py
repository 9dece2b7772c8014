"""The short summary of a scripts/gpu_check.sh call: what each phase did and the figures it brought.

Reads only what the script left under OUT (phases.tsv, result files as JSON, the tests' JUnit XML,
the spec table's JSON) and writes OUT/summary.json and OUT/summary.md, printing the latter.
Standard library only, and no bench import: it must run wherever the check ran, whatever
shape bench's modules have. Figures are bench's own (each file's `aggregate` and `runs`);
what is added here is only the race's ratio ours / airbench94.

usage: python3 scripts/gpu_summary.py OUT [--mode gpu|dry-run-cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

OURS, REFERENCE = "cifar10-94", "airbench94"
MIN_RUNS_EACH = 10  # issue 23: at least 10 interleaved seeds each


def read_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return json.loads(path.read_text()), None
    except (OSError, ValueError) as error:
        return None, f"{path.name}: unreadable ({error})"


def read_phases(out: Path) -> list[dict[str, Any]]:
    phases = []
    path = out / "phases.tsv"
    for line in path.read_text().splitlines() if path.is_file() else []:
        name, outcome, code, budget, used = (line.split("\t") + [""] * 5)[:5]
        phases.append({"phase": name, "outcome": outcome, "exit_code": code, "budget_s": budget, "used_s": used})
    return phases


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def suite_figures(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """One race entrant: bench's aggregate, plus the per-run figures the issue asks to see."""
    runs = [r for r in record.get("runs") or [] if r.get("status") == "complete"]
    aggregate = record.get("aggregate") or {}
    compile_s = [r.get("compile_s") for r in runs if r.get("compile_s") is not None]
    peaks = [r.get("peak_memory_mb") for r in runs if r.get("peak_memory_mb") is not None]
    reserved = [r.get("peak_memory_reserved_mb") for r in runs if r.get("peak_memory_reserved_mb") is not None]
    train_peaks = [r.get("train_peak_memory_mb") for r in runs if r.get("train_peak_memory_mb") is not None]
    return {
        "file": path.name, "id": record.get("id"), "status": record.get("status"),
        "runs_finished": len(runs), "seeds": [r.get("seed") for r in runs],
        "verdict": aggregate.get("verdict"), "target": aggregate.get("target"),
        "median_time_s": aggregate.get("median_time_s"), "median_timed_s": aggregate.get("median_timed_s"),
        "min_time_s": aggregate.get("min_time_s"),
        "max_time_s": aggregate.get("max_time_s"), "iqr_time_s": aggregate.get("iqr_time_s"),
        "mean_accuracy": aggregate.get("mean_accuracy"), "accuracy_ci95": aggregate.get("accuracy_ci95"),
        "pass_fraction": aggregate.get("pass_fraction"), "median_mfu": aggregate.get("median_mfu"),
        "median_train_images_per_s": aggregate.get("median_train_images_per_s"),
        "mean_energy_j": aggregate.get("mean_energy_j"),
        "peak_memory_mb": max(peaks) if peaks else None,
        "peak_memory_reserved_mb": max(reserved) if reserved else None,
        "train_peak_memory_mb": max(train_peaks) if train_peaks else None,
        # the first run's compile_s holds the compilation; later runs' only their warm-up
        "first_compile_s": compile_s[0] if compile_s else None,
        "later_compile_s_median": _median(compile_s[1:]),
        "recompiles_in_timed_region": max((r.get("recompiles_in_timed_region") or 0 for r in runs), default=None),
        "data_prep_s": (record.get("invocation") or {}).get("data_prep_s"),
        "loader": runs[0].get("loader") if runs else None,
        # both racers are fixed budgets (airbench's rule): the race compares their timed regions,
        # which exist whether or not a run reached the target (time to target exists only where it did)
        "_times": {r.get("seed"): r.get("timed_s") for r in runs},
    }


def race_figures(folder: Path) -> tuple[dict[str, Any], dict[str, Any] | None, list[str]]:
    suites, env, problems = {}, None, []
    for path in sorted(folder.glob("*.json")):
        record, problem = read_json(path)
        if record is None:
            problems.append(problem)
            continue
        name = (record.get("suite") or {}).get("name")
        if name in suites:
            problems.append(f"{path.name}: a second result file for {name}; the first is summarized")
            continue
        suites[name] = suite_figures(record, path)
        env = env or record.get("env")
    return suites, env, problems


def ratio(suites: dict[str, Any]) -> dict[str, Any] | None:
    """ours / airbench94: of the median timed regions (both are fixed budgets), and the median of
    per-seed ratios over seeds both finished."""
    ours, reference = suites.get(OURS), suites.get(REFERENCE)
    if not ours or not reference or not ours["median_timed_s"] or not reference["median_timed_s"]:
        return None
    paired = [ours["_times"][s] / reference["_times"][s] for s in ours["_times"]
              if s in reference["_times"] and ours["_times"][s] and reference["_times"][s]]
    return {"median_time_ratio": ours["median_timed_s"] / reference["median_timed_s"],
            "paired_seeds": len(paired), "median_paired_ratio": _median(paired)}


def test_figures(junit: Path) -> dict[str, Any] | None:
    if not junit.is_file():
        return None
    try:
        root = ElementTree.parse(junit).getroot()
    except ElementTree.ParseError as error:
        return {"error": f"{junit.name}: unreadable ({error})"}
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in root.iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in root.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {**counts, "failed": failed}


def spec_figures(folder: Path) -> dict[str, Any] | None:
    files = sorted(folder.glob("*.json"))
    if not files:
        return None
    report, problem = read_json(files[-1])
    if report is None:
        return {"error": problem}
    rows = []
    for row in report.get("rows") or []:
        for device, figures in (row.get("devices") or {}).items():
            inference = (figures or {}).get("inference") or {}
            rows.append({"network": row.get("name"), "device": device, "batch": (figures or {}).get("batch"),
                         "params": row.get("params"), "forward_gflops": row.get("forward_gflops"),
                         "images_per_s": inference.get("images_per_s"), "memory_mb": (figures or {}).get("memory_mb"),
                         "note": (figures or {}).get("note") or (figures or {}).get("reason")})
    return {"file": files[-1].name, "rows": rows}


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def race_lines(summary: dict[str, Any]) -> list[str]:
    lines = ["## Race: cifar10-94 --versus airbench94 (JPEG archive)", ""]
    suites = summary["race"]
    if not suites:
        return lines + ["No result file: no run finished (see logs/race.log).", ""]
    lines += ["| suite | status | runs | median time s [min, max] | mean accuracy [95% CI] | pass fraction "
              "| MFU | peak memory MB: CUDA (reserved); training | compile s (first, later) | recompiles | file |",
              "|---|---|---:|---|---|---:|---:|---|---|---:|---|"]
    for name, s in suites.items():
        ci = s["accuracy_ci95"] or [None, None]
        lines.append(
            f"| {name} | {s['status']} | {s['runs_finished']} | {fmt(s['median_time_s'])} "
            f"[{fmt(s['min_time_s'])}, {fmt(s['max_time_s'])}] | {fmt(s['mean_accuracy'], 4)} "
            f"[{fmt(ci[0], 4)}, {fmt(ci[1], 4)}] | {fmt(s['pass_fraction'], 2)} | {fmt(s['median_mfu'])} "
            f"| {fmt(s['peak_memory_mb'], 1)} ({fmt(s['peak_memory_reserved_mb'], 1)}); {fmt(s['train_peak_memory_mb'], 1)} "
            f"| {fmt(s['first_compile_s'], 1)}, {fmt(s['later_compile_s_median'], 1)} "
            f"| {fmt(s['recompiles_in_timed_region'])} | {s['file']} |")
    lines.append("")
    race_ratio = summary["ratio"]
    if race_ratio:
        lines.append(f"Ratio ours / airbench94: {race_ratio['median_time_ratio']:.3f} of the median timed regions (fixed budgets); "
                     f"{fmt(race_ratio['median_paired_ratio'])} median of per-seed ratios "
                     f"over {race_ratio['paired_seeds']} seeds both finished.")
    else:
        lines.append("Ratio ours / airbench94: — (a suite has no finished run).")
    lines.append("")
    return lines


def other_lines(summary: dict[str, Any]) -> list[str]:
    lines = ["## CUDA-marked tests", ""]
    tests = summary["tests"]
    if tests is None:
        lines.append("No JUnit report (see logs/tests.log).")
    elif "error" in tests:
        lines.append(tests["error"])
    else:
        lines.append(f"{tests['passed']} passed, {tests['failures']} failed, {tests['errors']} errors, "
                     f"{tests['skipped']} skipped of {tests['tests']}.")
        lines += [f"- failed: {name}" for name in tests["failed"]]
    lines += ["", "## Spec table", ""]
    specs = summary["specs"]
    if specs is None or "error" in specs:
        lines.append((specs or {}).get("error", "No spec file (see logs/specs.log)."))
    else:
        lines += [f"From specs/{specs['file']}.", "", "| network | device | batch | params | fwd GFLOPs | img/s "
                  "| memory MB | note |", "|---|---|---:|---:|---:|---:|---:|---|"]
        lines += [f"| {r['network']} | {r['device']} | {fmt(r['batch'])} | {fmt(r['params'])} "
                  f"| {fmt(r['forward_gflops'], 4)} | {fmt(r['images_per_s'], 0)} | {fmt(r['memory_mb'], 1)} "
                  f"| {r['note'] or ''} |" for r in specs["rows"]]
    return lines + [""]


def machine(env: dict[str, Any]) -> str:
    gpu, cpu = env.get("gpu") or {}, env.get("cpu") or {}
    if gpu.get("name"):
        return f"{gpu.get('count', 1)}x {gpu['name']}, driver {gpu.get('driver', '—')}"
    return f"no GPU; CPU {cpu.get('model', '—')} ({cpu.get('cores', '—')} cores)"


def markdown(summary: dict[str, Any]) -> str:
    env = summary["env"] or {}
    gpu = env.get("gpu") or {}
    lines = [f"# GPU check summary ({summary['mode']})", "",
             f"Machine: {machine(env)}; "
             f"torch {env.get('torch', '—')}, CUDA {env.get('cuda') or '—'}, Triton {env.get('triton') or '—'}; "
             f"host {env.get('hostname', '—')}.", "",
             "| phase | outcome | exit | budget s | used s |", "|---|---|---:|---:|---:|"]
    lines += [f"| {p['phase']} | {p['outcome']} | {p['exit_code']} | {p['budget_s']} | {p['used_s']} |"
              for p in summary["phases"]]
    lines += ["", "Exit codes are bench's and pytest's: bench 0 PASS, 1 verdict FAIL, 3 a run failed, 130 interrupted; "
              "124 means the phase was stopped at its budget (SIGINT), 137 killed after the grace period."]
    lines += ["", f"Archive decoded once before the race: data_prep_s {fmt(summary['prep_data_prep_s'], 1)} "
              f"(prep run), then the race loaded the cache in {fmt(summary['race_data_prep_s'], 1)} s.", ""]
    lines += race_lines(summary) + other_lines(summary)
    lines += [f"- {warning}" for warning in summary["warnings"]]
    return "\n".join(lines).rstrip() + "\n"


def summarize(out: Path, mode: str) -> dict[str, Any]:
    suites, env, warnings = race_figures(out / "results" / "runs")
    prep, _, _ = race_figures(out / "prep")
    prep_entry = next(iter(prep.values()), {})
    if mode == "gpu":
        warnings += [f"{name}: {s['runs_finished']} runs finished, fewer than the {MIN_RUNS_EACH} the issue asks"
                     for name, s in suites.items() if s["runs_finished"] < MIN_RUNS_EACH]
    warnings += [f"{name} has no result file" for name in (OURS, REFERENCE) if name not in suites]
    summary = {"mode": mode, "env": env, "phases": read_phases(out), "race": suites, "ratio": ratio(suites),
               "prep_data_prep_s": prep_entry.get("data_prep_s"),
               "race_data_prep_s": next((s["data_prep_s"] for s in suites.values()), None),
               "tests": test_figures(out / "tests" / "junit.xml"), "specs": spec_figures(out / "specs"),
               "warnings": warnings}
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the folder scripts/gpu_check.sh wrote")
    parser.add_argument("--mode", default="gpu", choices=("gpu", "dry-run-cpu"))
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        print(f"error: {args.out} is not a folder: give the OUT folder of scripts/gpu_check.sh", file=sys.stderr)
        return 2
    summary = summarize(args.out, args.mode)
    text = markdown(summary)
    for entry in summary["race"].values():
        entry.pop("_times")  # per-seed times are in the result files; the summary keeps figures
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (args.out / "summary.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
