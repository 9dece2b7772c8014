"""Renders an invocation's result record as rich tables (what `bench run` prints at the end)."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from bench.formatting import count, fixed, seconds, si, time_to_target
from bench.load import HIGH_LOAD_SHARE, run_is_high, run_load


def runs_table(record: dict[str, Any]) -> Table:
    table = Table(title=f"{escape(record['suite']['name'])} — runs", title_justify="left")
    for column in ("seed", "status", "accuracy", "to target s", "timed s", "epochs", "img/s", "compile s", "mem MB",
                   "energy J"):
        table.add_column(column, justify="right", no_wrap=True)
    for run in record["runs"]:  # "to target": only a run that reached it has one (— otherwise)
        table.add_row(str(run["seed"]), escape(run["status"]), fixed(run["accuracy"], ".4f"),
                      fixed(run["time_to_target_s"], ".2f"), fixed(run["timed_s"], ".2f"), fixed(run["epochs"], ".2f"),
                      fixed(run["train_images_per_s"], ".0f"), fixed(run["compile_s"], ".2f"),
                      fixed(run["peak_memory_mb"], ".0f"), fixed(run["energy_j"], ".0f"))
    return table


def aggregate_table(record: dict[str, Any]) -> Table:
    agg, model, env = record["aggregate"], record["model"], record["env"]
    table = Table(title=f"{escape(record['suite']['name'])} — summary", title_justify="left", show_header=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    verdict = agg["verdict"]
    colour = {"PASS": "green", "FAIL": "red"}.get(verdict, "yellow")
    ci = agg["accuracy_ci95"]
    ci_text = f" (95% CI {ci[0]:.4f}–{ci[1]:.4f})" if ci else " (one run: no CI)"
    iqr = agg["iqr_time_s"]
    hardware = env["gpu"]["name"] if env.get("gpu") else f"CPU {env['cpu']['model']} ({env['cpu']['cores']} cores)"
    scale = env.get("distributed") or {}
    world = scale.get("world_size") or 1
    if world > 1:
        nodes = scale.get("nnodes") or 1
        hardware = f"{world} ranks × {hardware} ({scale.get('backend')}" + (f", {nodes} nodes)" if nodes > 1 else ")")
    per_rank = " per rank" if world > 1 else ""
    rows = [
        ("verdict", f"[{colour}]{verdict}[/{colour}]  (status {record['status']})"),
        ("target", f"{agg['target']:.4f} top-1, mode {record['suite']['resolved']['mode']}"),
        ("mean accuracy", fixed(agg["mean_accuracy"], ".4f") + (ci_text if agg["mean_accuracy"] is not None else "")),
        ("runs at or above target", f"{fixed(agg['pass_fraction'], '.0%')} of {agg['complete_runs']}, "
                                    f"pass rule {agg.get('pass_rule', 'mean')}"),
        ("median time to target", time_to_target(agg["median_time_s"], iqr, agg.get("reached_runs"),
                                                 agg["complete_runs"]) + "  (over the runs that reached it)"),
        ("min / max / olympic mean", f"{fixed(agg['min_time_s'], '.2f')} / {fixed(agg['max_time_s'], '.2f')} / "
                                     f"{fixed(agg['olympic_mean_time_s'], '.2f')} s"),
        ("median timed region", seconds(agg.get("median_timed_s")) + "  (every complete run, reached or not)"),
        ("training throughput", f"{fixed(agg['median_train_images_per_s'], '.0f')} img/s (median), MFU "
                                f"{fixed(agg.get('median_mfu'), '.1%')} of the measured "
                                f"{record['invocation']['matmul_dtype']} matmul rate "
                                f"{si(record['invocation']['matmul_flops_per_s'], 'FLOP/s')}{per_rank}"),
        ("model", f"{model['name']}: {count(model['params'])} params, {si(model['flops_per_image'], 'FLOP')}/image fwd"
                  + (f"; trained: {count(model['active_params'])} active ({100 * model['active_fraction']:.2f}%), "
                     f"{si(model['active_flops_per_image'], 'FLOP')}/image by the active weights"
                     if model.get("active_fraction") is not None else "")),
        ("energy", f"{fixed(agg['mean_energy_j'], '.0f')} J/run"
                   + ("" if agg["mean_energy_j"] is not None else
                      f"  ({(record['runs'][0].get('energy_reason') if record['runs'] else None) or 'not measured'})")),
        ("hardware", f"{hardware}, torch {env['torch']}"),
        ("competing load", load_text(record["runs"])),
    ]
    auto = record["invocation"].get("runs_auto")
    if auto:
        rows.insert(3, ("runs auto", runs_auto_text(auto)))
    for key, value in rows:  # names, paths and reasons are text, not markup; the verdict's colour is ours
        table.add_row(key, value if key == "verdict" else escape(value))
    return table


def runs_auto_text(auto: dict[str, Any]) -> str:
    """Why `--runs auto` stopped where it did."""
    half = "—" if auto["half_width"] is None else f"±{100 * auto['half_width']:.2f} pp"
    why = {"ci_width": f"95% CI half-width {half} ≤ {100 * auto['ci_width']:.2f} pp",
           "max_runs": f"--max-runs {auto['max_runs']} reached (half-width {half} > {100 * auto['ci_width']:.2f} pp)",
           "diverged": "a run diverged"}.get(auto["stopped"], "not finished")
    return f"{auto['runs']} runs: {why}"


def load_text(runs: list[dict[str, Any]]) -> str:
    """The CPU share other processes took during the runs' timed regions (bench.load)."""
    shares = [(run_load(r) or {}).get("competing_cpu_share") for r in runs]
    measured = [s for s in shares if s is not None]
    if not measured:
        return "not measured"
    busy = sum(run_is_high(r) is True for r in runs)
    spread = f"{min(measured):.0%}" if min(measured) == max(measured) else f"{min(measured):.0%}–{max(measured):.0%}"
    return f"{spread} of the CPU taken by other processes; {busy} of {len(runs)} runs above {HIGH_LOAD_SHARE:.0%} (high)"


def warnings(record: dict[str, Any]) -> list[str]:
    """One line per run whose timed region met high load: its times are suspect."""
    lines = []
    for run in record["runs"]:
        if run_is_high(run):
            share = run_load(run)["competing_cpu_share"]
            lines.append(f"{record['suite']['name']} seed {run['seed']}: other processes took {share:.0%} of the "
                         f"CPU during the timed region (high: above {HIGH_LOAD_SHARE:.0%}); its times are suspect, "
                         "rerun on a quieter machine to publish them")
    return lines


def policy_line(record: dict[str, Any]) -> str | None:
    """Which compute policy ran and where it came from: the cache (and when it was measured), or a
    trial made now (and why it was not cached). From the first run; every run records its own."""
    trial = next((r.get("policy_trial") for r in record["runs"] if r.get("policy_trial")), None)
    if not trial:
        return None
    first = record["runs"][0]
    chosen = trial.get("chosen") or _policy_name(first)
    if trial.get("reused"):  # a later run of the process whose trial was not cached
        earlier = trial.get("trial") or {}
        return (f"policy: {earlier.get('chosen') or _policy_name(first)} (measured {trial.get('measured_at')} by an "
                f"earlier run of this process, not cached: {trial.get('not_cached')})")
    if trial.get("cached"):
        return f"policy: {chosen} (cached, measured {trial.get('measured_at') or 'at an unrecorded date'})"
    if trial.get("tried"):
        why = trial.get("not_cached")
        return f"policy: {chosen} (measured now" + (f", not cached: {why})" if why else ")")
    return f"policy: {_policy_name(first)} ({trial.get('why', 'explicit')})"


def _policy_name(run: dict[str, Any]) -> str:
    compiled = "" if run["compile"] == "off" else f" compiled({run['compile']})"
    return f"{run['precision']} {'channels-last' if run['channels_last'] else 'NCHW'}{compiled}"
