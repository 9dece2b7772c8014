"""The spec report's faces: a rich table for the screen, Markdown (also written beside the JSON),
CSV with raw numbers under flat keys, and JSON (the file's own form).

Figures read the one way bench.formatting writes numbers: three significant figures with an
SI prefix from a thousand up ("27.7", "1.23 k"); parameter counts are written in full, as a
specification gives them ("11,689,512").
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable

from rich.table import Table

from bench.formatting import MISSING, count, si
from bench.specs.files import SpecReport, SpecRow, shape_text
from bench.specs.measure import busy_note

def row_notes(row: SpecRow) -> str:
    notes = []
    for device_name, entry in row.devices.items():
        if entry.get("note"):
            notes.append(f"{device_name}: {entry['note']}")
        if entry.get("reason") is None and entry.get("train_reason"):
            notes.append(f"{device_name} train: {entry['train_reason']}")
        busy = busy_note(entry.get("competing_cpu_share"))
        if busy:
            notes.append(f"{device_name}: {busy}")
    return "; ".join(notes)


def _ms_with_iqr(timing: dict[str, Any] | None) -> str:
    if not timing:
        return MISSING
    return f"{si(timing['median_ms'])} [{si(timing['iqr_ms'], digits=2)}]"


# (header, cell text from a row); a header's line break is kept on screen, a space in Markdown
Column = tuple[str, Callable[[SpecRow], str]]


def _columns(report: SpecReport) -> list[Column]:
    """The human table's columns, shared by the screen table and the Markdown file.

    A device that was not measured gets one column of dashes (the reason is in the
    settings lines); the JSON and CSV keep its every null figure.
    """
    train = report.settings["train"]
    columns: list[Column] = [
        ("network", lambda r: r.name),
        ("input", lambda r: shape_text(r.input)),
        ("classes", lambda r: str(r.num_classes)),
        ("feature\nlayers", lambda r: str(r.feature_layers)),
        ("decision\nlayers", lambda r: str(r.decision_layers)),
        ("params", lambda r: count(r.params)),
        ("trainable\nparams", lambda r: count(r.trainable_params)),
        ("fwd\nGFLOPs", lambda r: si(r.forward_gflops)),
        ("fwd\nGMACs", lambda r: si(r.forward_gmacs)),
        ("train\nGFLOPs", lambda r: si(r.train_gflops)),
    ]
    for d, how in report.settings["devices"].items():
        if not how["measured"]:
            columns.append((f"{d}\nimg/s", lambda r: MISSING))
            continue

        def entry(r: SpecRow, d: str = d) -> dict[str, Any]:
            return r.devices[d]
        columns += [
            (f"{d}\nbatch", lambda r, e=entry: MISSING if e(r)["batch"] is None else str(e(r)["batch"])),
            (f"{d}\nimg/s", lambda r, e=entry: si((e(r)["inference"] or {}).get("images_per_s"))),
            (f"{d} ms\n[IQR]", lambda r, e=entry: _ms_with_iqr(e(r)["inference"])),
        ]
        if train:
            columns += [
                (f"{d} train\nimg/s", lambda r, e=entry: si((e(r)["train"] or {}).get("images_per_s"))),
                (f"{d} train\nms [IQR]", lambda r, e=entry: _ms_with_iqr(e(r)["train"])),
            ]
        if d == "cuda":
            columns.append(("cuda\nMB", lambda r, e=entry: si(e(r)["memory_mb"])))
            if train:
                columns.append(("cuda train\nMB", lambda r, e=entry: si(e(r)["train_memory_mb"])))
    columns.append(("note", row_notes))
    return columns


def _load_line(share: float | None) -> str:
    if share is None:
        return "competing load: not measured (no /proc/stat)"
    suspect = " (timings suspect)" if busy_note(share) else ""
    return f"competing load: other processes used {share:.0%} of the machine's CPU during the run{suspect}"


def _settings_lines(report: SpecReport) -> list[str]:
    s, env = report.settings, report.env
    cpu = env.get("cpu") or {}
    on_gpu = s["devices"].get("cuda", {}).get("measured") and env.get("gpu")
    machine = f"{env['gpu']['name']}, " if on_gpu else ""
    lines = [
        f"{env.get('hostname')}: {machine}{cpu.get('model')} ({cpu.get('cores')} cores), torch {env.get('torch')}, "
        f"created {report.created}",
        "devices: " + ", ".join(f"{d} batch {v['batch']}" if v["measured"] else f"{d} not measured ({v['reason']})"
                                for d, v in s["devices"].items()) + f" ({s['batch_rule']})",
        f"amp (bf16 autocast): {'on' if s['amp'] else 'off'}; channels_last: {'on' if s['channels_last'] else 'off'}; "
        f"training measured: {'yes' if s['train'] else 'no'}",
        f"timing: {s['timing']}; {s['repeats']} timed batches after {s['warmup']} warm-up; "
        f"torch CPU threads {s['torch_threads']}",
        _load_line(report.competing_cpu_share),
        f"FLOPs: {s['flops']}",
    ]
    if s["train"]:
        lines.append(f"training step: {s['train_step']}")
    return lines


def specs_table(report: SpecReport) -> Table:
    """The report as a rich table for the screen."""
    table = Table(title="network specifications", caption="\n".join(_settings_lines(report)), caption_justify="left")
    columns = _columns(report)
    for header, _ in columns:
        if header == "note":
            table.add_column(header, overflow="fold")
        else:  # a figure is one word: the headers and notes wrap first, and a figure is folded, never cut
            # (no_wrap columns were cut evenly at 160 columns: "11,689,…")
            table.add_column(header, justify="left" if header in ("network", "input") else "right", overflow="fold")
    for row in report.rows:
        table.add_row(*(cell(row) for _, cell in columns))
    return table


def specs_markdown(report: SpecReport) -> str:
    """The report as a Markdown document: the settings, then one table row per network."""
    columns = _columns(report)

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["# Network specifications", ""]
    lines += [f"- {cell(line)}" for line in _settings_lines(report)]
    lines += ["", "| " + " | ".join(h.replace("\n", " ") for h, _ in columns) + " |",
              "|" + "|".join(":---" if h in ("network", "input", "note") else "---:" for h, _ in columns) + "|"]
    for row in report.rows:
        lines.append("| " + " | ".join(cell(fn(row)) for _, fn in columns) + " |")
    return "\n".join(lines) + "\n"


def _flat_row(row: SpecRow, devices: list[str], train: bool) -> dict[str, Any]:
    """One row with raw numbers under machine-friendly keys (the CSV's columns)."""
    as_json = row.to_json()
    flat: dict[str, Any] = {key: as_json[key] for key in (
        "name", "num_classes", "feature_layers", "decision_layers", "params", "trainable_params",
        "forward_flops", "forward_gflops", "forward_gmacs", "train_gflops")}
    flat["input"] = shape_text(row.input)
    for d in devices:
        entry = row.devices[d]
        flat[f"{d}_batch"] = entry["batch"]
        phases = [("infer", entry["inference"])] + ([("train", entry.get("train"))] if train else [])
        for phase, timing in phases:
            for key in ("images_per_s", "median_ms", "iqr_ms"):
                flat[f"{d}_{phase}_{key}"] = (timing or {}).get(key)
        if d == "cuda":
            flat["cuda_memory_mb"] = entry.get("memory_mb")
            if train:
                flat["cuda_train_memory_mb"] = entry.get("train_memory_mb")
        flat[f"{d}_reason"] = entry.get("reason")
    flat["note"] = row_notes(row)
    return flat


def specs_csv(report: SpecReport) -> str:
    devices, train = list(report.settings["devices"]), report.settings["train"]
    flat = [_flat_row(row, devices, train) for row in report.rows]
    out = io.StringIO()
    if flat:
        writer = csv.DictWriter(out, fieldnames=list(flat[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
    return out.getvalue()


def specs_json(report: SpecReport) -> str:
    return json.dumps(report.to_json(), indent=1)
