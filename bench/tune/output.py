"""The tuned suite: the base suite's file with the best trial's values, a name of its own, and a
`tuned_from` table recording the search (storage, trials, space, objective, split, machine, code
commit). Its target and target_source are the base suite's, kept as they are: the target was
set by its source, not by the search. Written in a folder of the user's choosing; an existing
file of another content is never replaced (the name takes the next free number instead).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.studies.study import toml_value
from bench.suites import Suite, suite_with

TOP_ORDER = ("name", "description", "mode", "target", "target_source", "runs", "devices")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def dump_toml(table: dict[str, Any], prefix: str = "") -> str:
    """A TOML document of `table`: plain values first, then each sub-table as a [section]. TOML has
    no null: a value not known (None) is left out."""
    table = {k: _known(v) for k, v in table.items() if v is not None}
    plain = {k: v for k, v in table.items() if not isinstance(v, dict) or not v or _inline(v)}
    sections = {k: v for k, v in table.items() if k not in plain}
    lines = [f"{_key(k)} = {toml_value(v)}" for k, v in plain.items()]
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, sub in sections.items():
        name = f"{prefix}{_key(key)}"
        text += f"\n[{name}]\n" + dump_toml(sub, name + ".").lstrip("\n")
    return text


def _known(value: Any) -> Any:
    return {k: _known(v) for k, v in value.items() if v is not None} if isinstance(value, dict) else value


def _inline(value: dict[str, Any]) -> bool:
    """A table written inline (model.args, a range of the space): no table inside it."""
    return not any(isinstance(v, dict) for v in value.values()) and len(value) <= 4 and \
        not any(isinstance(v, list) and len(v) > 6 for v in value.values())


def tuned_text(base: Suite, values: dict[str, Any], path: Path, tuned_from: dict[str, Any]) -> str:
    from bench.record.calibration import cited_path, citation

    name = path.stem
    raw = tomllib.loads(base.path.read_text(encoding="utf-8"))
    cited = cited_path(base)
    if cited is not None:  # the same calibration file, cited from where the tuned suite lives
        raw["target_source"] = citation(cited, path)
    for dotted, value in {**base.overrides, **values}.items():
        node = raw
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    raw["name"] = name
    raw["description"] = (f"{base.name} with the recipe bench tune found fastest to its target on "
                          f"{tuned_from['machine']['summary']} ({tuned_from['trials']} trials; see tuned_from)")
    raw["tuned_from"] = tuned_from
    ordered = {k: raw[k] for k in TOP_ORDER if k in raw}
    ordered.update({k: v for k, v in raw.items() if k not in ordered and not isinstance(v, dict)})
    ordered.update({k: v for k, v in raw.items() if k not in ordered})
    header = "# Written by `bench tune` (docs/tune.md): the base suite with the best trial's values.\n"
    return header + dump_toml(ordered)


def write_tuned_suite(base: Suite, values: dict[str, Any], tuned_from: dict[str, Any], folder: Path) -> Path:
    """The tuned suite's file in `folder` (checked by loading it back); never replaces another file."""
    from bench.record.calibration import read_calibration
    from bench.reports.pages import write_page

    folder.mkdir(parents=True, exist_ok=True)
    for number in range(1, 1000):
        name = f"{base.name}-tuned" + ("" if number == 1 else f"-{number}")
        path = folder / f"{name}.toml"
        text = tuned_text(base, values, path, tuned_from)
        if path.exists():
            if path.read_text(encoding="utf-8") == text:
                return path
            continue
        write_page(path, text)
        read_calibration(suite_with(path, {}, f"{path} (the tuned suite bench tune wrote)"))
        return path
    raise BenchError(f"{folder}: 999 tuned suites of {base.name} already; give another --suite-dir")
