"""Committed reports are never stale (issue 19 item 7): every report under results/ (leaderboard,
compare/, each study's report and figures) equals what `make reports` writes from the committed
result files, byte for byte; and the check names a planted stale line, a lingering figure, a
missing page, so it can fail. scripts/regenerate_reports.py is what `make reports` runs."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
FIXTURES = Path(__file__).parent / "fixtures" / "results"


def _script():
    spec = importlib.util.spec_from_file_location("regenerate_reports", ROOT / "scripts" / "regenerate_reports.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


reports = _script()


@pytest.fixture(scope="module")
def committed():
    """The committed reports (and the README's list of them) against their regeneration from the
    committed result files (about 15 s: six report commands); a run a user made here since (`make run`
    writes results/runs/) is not committed and is left out."""
    return reports.check(RESULTS, ROOT / "README.md", tracked_only=True)


def test_committed_reports_equal_their_regeneration(committed):
    assert not committed.stale, ("committed reports differ from their regeneration; " + reports.FIX + ":\n"
                                 + "\n".join(committed.stale))


def test_committed_figures_were_drawn_with_this_software(committed):
    if committed.not_comparable:
        pytest.skip("figures drawn with other software are not compared byte for byte here:\n"
                    + "\n".join(committed.not_comparable))


def test_every_kind_of_report_is_regenerated():
    # the check covers the leaderboard, the comparison report and every study folder's report
    commands = [f"sweep {argv[1]}" if argv[0] == "sweep" else argv[0] for argv in reports.report_commands(RESULTS)]
    studies = sorted(p.parent.name for p in RESULTS.glob("studies/*/runs"))
    assert commands == ["leaderboard", "compare", *[f"sweep {s}" for s in studies]] and studies


@pytest.fixture(scope="module")
def regenerated_fixtures(tmp_path_factory) -> Path:
    """The synthetic fixture results with their reports regenerated (once: each test copies them)."""
    results = tmp_path_factory.mktemp("fixtures") / "results"
    shutil.copytree(FIXTURES, results)
    reports.regenerate(results)
    return results


@pytest.fixture
def fresh(regenerated_fixtures, tmp_path) -> Path:
    """A results folder (the synthetic fixtures) whose reports are what `make reports` writes."""
    return shutil.copytree(regenerated_fixtures, tmp_path / "results")


def test_a_regeneration_is_byte_identical_to_the_one_before(fresh):
    names = reports.report_files(fresh)
    assert {"LEADERBOARD.md", "leaderboard.html", "compare/COMPARE.md", "compare/compare.html"} <= set(names)
    assert any(name.endswith(".png") for name in names)
    found = reports.check(fresh)
    assert found.stale == [] and found.not_comparable == []


def test_a_planted_stale_line_is_named_with_its_file_and_line(fresh):
    page = fresh / "LEADERBOARD.md"
    lines = page.read_text().splitlines(keepends=True)
    lines[4] = "a line no regeneration writes\n"
    page.write_text("".join(lines))
    stale = reports.check(fresh).stale
    assert len(stale) == 1 and stale[0].startswith("results/LEADERBOARD.md: line 5: committed "
                                                   "'a line no regeneration writes', regenerated ")


def test_a_stale_inline_page_is_named_though_its_figures_are_masked(fresh):
    page = fresh / "compare" / "compare.html"
    page.write_text(page.read_text().replace("Hardware comparison</h1>", "Hardware comparisons</h1>"))
    stale = reports.check(fresh).stale
    assert len(stale) == 1 and stale[0].startswith("results/compare/compare.html: line ")


def test_lingering_missing_and_redrawn_figures_are_named(fresh):
    figure = next(p for p in sorted((fresh / "compare").glob("*.png")))
    (fresh / "compare" / "an-old-axis.png").write_bytes(figure.read_bytes())
    (fresh / "leaderboard.html").unlink()
    figure.write_bytes(_redrawn(figure.read_bytes(), software=None))
    stale = reports.check(fresh).stale
    assert stale == ["results/compare/an-old-axis.png: committed, but no report makes it any more (delete it)",
                     f"results/compare/{figure.name}: the figure differs from its regeneration (same software)",
                     "results/leaderboard.html: made by the reports but not committed"]


def test_a_figure_drawn_with_other_software_is_not_compared_and_not_called_fresh(fresh):
    figure = next(p for p in sorted((fresh / "compare").glob("*.png")))
    figure.write_bytes(_redrawn(figure.read_bytes(), software="matplotlib 0.1, FreeType 0.1"))
    found = reports.check(fresh)
    assert found.stale == []
    assert found.not_comparable == [f"results/compare/{figure.name}: drawn with matplotlib 0.1, FreeType 0.1, "
                                    f"here {_drawn_here()}"]


def test_the_check_command_exits_1_and_says_how_to_fix(fresh, capsys):
    (fresh / "compare" / "COMPARE.md").write_text("# Hardware comparison\n")
    assert reports.main(["--results", str(fresh), "--check"]) == 1
    out = capsys.readouterr().out
    assert "stale: results/compare/COMPARE.md: line 2: " in out and "run `make reports`" in out
    assert reports.main(["--results", str(fresh)]) == 0  # what `make reports` runs
    assert reports.main(["--results", str(fresh), "--check"]) == 0


def test_a_missing_results_folder_is_one_line(tmp_path, capsys):
    assert reports.main(["--results", str(tmp_path / "nowhere"), "--check"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def _drawn_here() -> str:
    from bench.reports.plots import DRAWN_WITH

    return DRAWN_WITH


def _redrawn(png: bytes, software: str | None) -> bytes:
    """The figure with one pixel changed, naming `software` (None: this machine's)."""
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    image.putpixel((0, 0), (1, 2, 3, 255))
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", software or _drawn_here())
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def test_a_result_file_git_does_not_track_is_left_out_of_the_tracked_check(fresh):
    # `make run` then `make test` in one clone: the new run file under results/runs/ is not committed,
    # so it must not make the committed leaderboard stale
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    subprocess.run([git, "init", "-q", str(fresh)], check=True)
    subprocess.run([git, "-C", str(fresh), "add", "."], check=True)
    run = next(iter(sorted((fresh / "runs").glob("*.json"))))
    record = json.loads(run.read_text())
    record["id"] = "a-local-run"
    (fresh / "runs" / "a-local-run.json").write_text(json.dumps(record))
    assert reports.check(fresh, tracked_only=True).stale == []
    assert any(line.startswith("results/LEADERBOARD.md") for line in reports.check(fresh).stale)
