"""The house rules of the layout (README, Layout): imports follow the data flow, no two modules
or packages import each other, functions and files stay small enough to read."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"

# A unit may import only units of a lower layer (and its own package's modules). Layer 0 are
# the small shared modules every stage uses; then the data flow: suite -> data -> loader ->
# model -> trainer -> record -> the views and drivers above them.
LAYERS = [
    {"errors", "formatting", "loader_kinds", "load", "nvml_device"},
    {"suite_checks", "seeds"},
    {"progress", "env", "destinations", "distributed", "finetune", "sparsity", "measure", "summary"},
    {"gpu_monitor", "datasets"},
    {"suites", "loaders", "models"},
    {"record", "suite_keys"},
    {"train", "specs"},
    {"runner", "reports"},
    {"studies", "calibrate", "show", "api", "dry_run"},
    {"tune"},
    {"listing", "run_views"},
    {"cli"},
    {"__main__"},
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _modules() -> dict[str, Path]:
    found = {}
    for path in BENCH.rglob("*.py"):
        parts = path.relative_to(BENCH.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> set[str]:
    """What a file imports: modules, and packages it takes a symbol from (`from bench.x import
    y` imports the module bench.x.y when that is a module, else bench.x for its symbol y)."""
    modules = _modules()
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                names.add(submodule if submodule in modules else node.module)
    return {name for name in names if name.startswith("bench.")}


def _unit(module: str) -> str:
    return module.split(".")[1]


def _module_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = defaultdict(set)
    for name, path in modules.items():
        for imported in _imports(path):
            if imported in modules and imported != name:
                graph[name].add(imported)
    return graph


def test_every_unit_has_a_layer():
    units = {_unit(name) for name in _modules() if name != "bench"}
    assert units <= set(RANK), f"give these a layer in LAYERS: {sorted(units - set(RANK))}"


def test_imports_point_down_the_layers():
    wrong = [f"{a} imports {b}" for a, targets in _module_graph().items() for b in targets
             if a != "bench" and b != "bench" and _unit(a) != _unit(b) and RANK[_unit(b)] >= RANK[_unit(a)]]
    assert not wrong, "imports that run up the data flow or sideways:\n" + "\n".join(sorted(wrong))


def test_no_two_modules_import_each_other():
    graph = _module_graph()
    pairs = sorted({tuple(sorted((a, b))) for a, targets in graph.items() for b in targets if a in graph.get(b, ())})
    assert not pairs, f"modules that import each other: {pairs}"


def test_functions_and_files_stay_small():
    """Functions over 80 lines fail; files over 500 lines warn: a file is split by concept when one
    grows apart, not to fit a number (a split made only for the cap scattered one concept before)."""
    import warnings

    long_files, long_functions = [], []
    for name, path in _modules().items():
        text = path.read_text()
        if len(text.splitlines()) > 500 and name != "bench.models.zoo":
            long_files.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 80:
                    long_functions.append(f"{name}.{node.name}: {length} lines")
    if long_files:
        warnings.warn(f"files over 500 lines (split where a concept stands apart): {long_files}")
    assert not long_functions, f"functions over 80 lines: {long_functions}"


def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The layer rule fails on a planted import of the runner from the record (so it can fail)."""
    planted = BENCH / "record" / "files.py"
    real = _imports

    def with_planted(path: Path) -> set[str]:
        return real(path) | ({"bench.runner"} if path == planted else set())

    monkeypatch.setattr(f"{__name__}._imports", with_planted)
    try:
        test_imports_point_down_the_layers()
    except AssertionError as exc:
        assert "bench.record.files imports bench.runner" in str(exc)
    else:
        raise AssertionError("the planted upward import was not seen")
