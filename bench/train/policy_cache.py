"""The policy decisions' cache: one small JSON file under the user's cache folder
($BENCH_CACHE_DIR, else $XDG_CACHE_HOME/bench, else ~/.cache/bench), keyed by the machine
(CPU model, flags and ISA caps or GPU name, torch version and threads), the model and its arguments, the
input shape, the batch size and the recipe's policy keys. A later invocation with the same key
skips the trial. An unreadable cache is a miss, never an error: it only saves time. Only trials
that earned it are stored (bench.train.policy: low load, the winner apart from the runner-up),
each with the time it was measured; `bench cache show` lists them, `bench cache clear` empties
the file, `bench run --retrial` measures again."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench import env as environment

ENV_VAR = "BENCH_CACHE_DIR"


def folder() -> Path:
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bench"


def path() -> Path:
    return folder() / "policy.json"


def machine(device: torch.device) -> dict[str, Any]:
    """What makes one policy faster than another on this machine."""
    env = environment.fingerprint()
    facts: dict[str, Any] = {"device": device.type, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if device.type == "cuda":
        facts["gpu"] = torch.cuda.get_device_name(device)
    else:
        facts["cpu"] = env["cpu"]["model"]
        facts["cpu_flags_sha"] = hashlib.sha256(" ".join(sorted(environment.cpu_flags())).encode()).hexdigest()[:16]
        # an ISA cap (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA) makes another machine of the same CPU
        facts["isa"] = env["cpu"]["isa"]
        facts["onednn_max_isa"] = env["cpu"]["onednn_max_isa"]
    return facts


def key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _read() -> dict[str, Any]:
    try:
        entries = json.loads(path().read_text())
    except (OSError, ValueError, RecursionError):  # unreadable: as if empty, the trial runs again
        return {}
    return entries if isinstance(entries, dict) else {}


def load(entry_key: str) -> dict[str, Any] | None:
    """The cached decision, or None (a miss: the trial runs again) when the entry is not a whole
    choice of known values (an entry without 'precision' was a KeyError traceback, an unknown
    compile mode one from torch.compile)."""
    entry = _read().get(entry_key)
    return entry if isinstance(entry, dict) and _valid_choice(entry.get("choice")) else None


def _valid_choice(choice: Any) -> bool:
    return (isinstance(choice, dict) and choice.get("precision") in ("fp32", "bf16", "fp16")
            and isinstance(choice.get("channels_last"), bool)
            and choice.get("compile") in ("off", "default", "reduce-overhead", "max-autotune")
            and type(choice.get("eval_batch_size")) is int and choice["eval_batch_size"] > 0)


def store(entry_key: str, entry: dict[str, Any]) -> None:
    """Adds one decision, written atomically (temp file + rename): concurrent invocations may
    lose each other's entry (each only redoes its trial), never corrupt the file."""
    entries = _read()
    entries[entry_key] = entry
    try:
        folder().mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder(), suffix=".tmp", delete=False) as f:
            json.dump(entries, f, indent=1, sort_keys=True)
        os.replace(f.name, path())
    except OSError:
        pass  # a read-only home: every invocation runs its trial, which costs seconds, not results


def entries() -> dict[str, dict[str, Any]]:
    """Every readable decision, by key."""
    return {k: v for k, v in _read().items() if isinstance(v, dict) and "choice" in v}


def clear() -> int:
    """Empties the cache (the file is removed); the number of decisions it held."""
    held = len(entries())
    try:
        path().unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        from bench.errors import BenchError

        raise BenchError(f"{path()}: cannot remove the policy cache ({exc.strerror or exc}); remove it by hand")
    return held


def command(action: str, console) -> int:
    """`bench cache show` (a table of the decisions) or `bench cache clear`; exit 0."""
    from rich.markup import escape
    from rich.table import Table

    where = path()
    if action == "clear":
        held = clear()
        console.print(escape(f"policy cache {where}: {held} decision{'s' if held != 1 else ''} removed; the next run "
                             "of each suite with an auto policy key tries its candidates again"), soft_wrap=True)
        return 0
    found = entries()
    # the path whole on its own line (a wrapped path cannot be copied), then the table
    console.print(escape(f"policy cache {where}: {len(found)} decision{'s' if len(found) != 1 else ''}"), soft_wrap=True)
    table = Table()
    for column in ("key", "chosen", "eval batch", "measured", "trial's load"):
        table.add_column(column)
    for entry_key, entry in found.items():
        trial = entry.get("trial") if isinstance(entry.get("trial"), dict) else {}
        share = (trial.get("load") or {}).get("competing_cpu_share")
        table.add_row(escape(entry_key), escape(str(trial.get("chosen", entry["choice"]))),
                      escape(str(entry["choice"].get("eval_batch_size"))),
                      escape(str(entry.get("measured_at") or "not recorded")),
                      "not measured" if share is None else f"{share:.0%} CPU elsewhere")
    console.print(table)
    return 0
