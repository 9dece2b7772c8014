"""The package's metadata matches its code."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Standard-library modules newer than Python 3.8, with the release that added them.
STDLIB_SINCE = {"tomllib": (3, 11), "zoneinfo": (3, 9), "graphlib": (3, 9)}


def imported_modules() -> set[str]:
    names = set()
    for path in [*ROOT.glob("bench/**/*.py"), *ROOT.glob("kernels/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def test_requires_python_admits_no_version_the_code_cannot_run_on():
    spec = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    floor = tuple(int(part) for part in re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip()).groups())
    needed = max((STDLIB_SINCE[name] for name in imported_modules() if name in STDLIB_SINCE), default=(3, 8))
    assert "tomllib" in imported_modules()  # the suites' parser
    assert floor >= needed, f"requires-python {spec} admits Python {floor}, but the code needs {needed}"
