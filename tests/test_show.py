"""A newcomer's commands (issue 39): `bench show` (a suite resolved, the keys reference), `bench
list` at 100 columns, `-V`, shell completion, and the light commands' imports."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.suite_keys import MEANINGS, keys_markdown
from bench.suites import available_suites, schema_keys

ROOT = Path(__file__).resolve().parent.parent


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def bench(*args, env=None):
    """`python -m bench ARGS` in a subprocess (its own imports, its own terminal width)."""
    return subprocess.run([sys.executable, "-m", "bench", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=300)


def test_every_schema_key_has_one_line_of_meaning():
    assert set(MEANINGS) == set(schema_keys()), "give each new suite key a line in bench.suite_keys.MEANINGS"
    assert all(meaning and "\n" not in meaning for meaning in MEANINGS.values())


def test_the_committed_keys_reference_is_the_generated_one():
    page = ROOT / "docs" / "suite-keys.md"
    assert page.read_text(encoding="utf-8") == keys_markdown(), "run python scripts/suite_keys_doc.py"
    assert all(f"`{key}`" in page.read_text() for key in schema_keys())


def test_show_prints_the_resolved_suite_with_overrides_and_source(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # no cell wraps
    code, out, _ = run_cli(capsys, "show", "fashion-mnist-smoke", "--set", "recipe.lr=0.2")
    text = " ".join(out.split())
    assert code == 0
    assert "recipe.lr* │ 0.2" in text and "set by --set" in text  # the override, marked
    assert "recipe.schedule.kind │ constant" in text  # a default the file leaves out, filled in
    assert "0.824 (budget mode; pass rule mean)" in text
    assert "calibration fashion-mnist-smoke-" in text and "seeds 1000–1004 -> 0.824" in text


@pytest.mark.parametrize("args, fragment", [
    (["show"], "give a suite name"),
    (["show", "fashion-mnist-smoke", "--keys"], "not both"),
    (["show", "no-such-suite"], "unknown suite 'no-such-suite'"),
    (["show", "fashion-mnist-smoke", "--set", "recipe.lr=-1"], "'recipe.lr' is -1"),
])
def test_show_refuses_bad_input_in_one_line(capsys, args, fragment):
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_show_keys_lists_every_key(capsys):
    code, out, _ = run_cli(capsys, "show", "--keys")
    assert code == 0 and all(key in out for key in schema_keys())


def test_list_fits_100_columns_one_line_a_suite():
    result = bench("list", env={"COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 100
    for name in available_suites():  # each suite on one line in each of the two tables, never wrapped
        assert sum(line.startswith(name + " ") for line in lines) == 2, name


def test_finding_no_suites_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("bench.suites.SUITES_DIR", None)
    monkeypatch.setenv("BENCH_SUITES", str(tmp_path))
    code, out, err = run_cli(capsys, "list")
    assert code == 2 and "no suites found in" in err and str(tmp_path) in err and not out


def test_light_commands_import_no_torch():
    """list, show, -V and --version answer without torch (seconds to import) or pandas."""
    probe = ("import sys; from bench.cli import main; main(sys.argv[1:]); "
             "print(sorted({'torch', 'pandas'} & set(sys.modules)), file=sys.stderr)")
    for args in (["list"], ["show", "fashion-mnist-91"], ["-V"], ["--version"]):
        result = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=ROOT,
                                timeout=300)
        assert result.returncode == 0 and result.stderr.strip().splitlines()[-1] == "[]", (args, result.stderr)


def test_version_flags(capsys):
    from bench import __version__

    for flag in ("-V", "--version"):
        code, out, _ = run_cli(capsys, flag)
        assert code == 0 and out.strip() == f"bench {__version__}"


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o"), ("zsh", "#compdef bench")])
def test_completion_scripts_know_the_commands(capsys, shell, marker):
    code, out, _ = run_cli(capsys, "completion", shell)
    assert code == 0 and marker in out and "fashion" not in out
    assert all(command in out for command in ("list", "show", "run", "leaderboard", "--dry-run"))
