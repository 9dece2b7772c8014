"""The one page writer (bench.reports.pages) and the direction of imports between reports and studies."""

import ast
import os
import stat
from pathlib import Path

import pytest

from bench.record.files import ResultNotWritten

import bench.reports.pages as pages
from bench.reports.render import Headline, Plot, ReportTable, page_html, page_markdown

REPO = Path(__file__).resolve().parents[1]


def test_a_page_is_replaced_whole_and_no_temp_file_is_left(tmp_path):
    page = tmp_path / "report.html"
    pages.write_page(page, "old ≥ page")
    pages.write_page(page, "new ≥ page")
    assert page.read_bytes() == "new ≥ page".encode("utf-8")  # UTF-8 whatever the locale
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_new_page_is_readable_by_all_and_an_old_one_keeps_its_mode(tmp_path):
    new = pages.write_page(tmp_path / "new.md", "x")
    assert stat.S_IMODE(new.stat().st_mode) == 0o644  # not the temp file's private 0600
    kept = tmp_path / "kept.md"
    kept.write_text("x")
    os.chmod(kept, 0o640)
    pages.write_page(kept, "y")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_a_failed_write_leaves_the_old_page(tmp_path, monkeypatch):
    page = tmp_path / "LEADERBOARD.md"
    page.write_text("published")

    def broken(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(pages.os, "replace", broken)
    with pytest.raises(ResultNotWritten, match="disk full") as refused:  # one line, exit 3: a fault, not bad input
        pages.write_page(page, "half")
    assert refused.value.exit_code == 3
    assert page.read_text() == "published" and [p.name for p in tmp_path.iterdir()] == ["LEADERBOARD.md"]


def test_write_report_writes_both_pages_and_each_plot_beside_them(tmp_path):
    table = ReportTable("Rows", ["a"], anchor="rows")
    table.add(["1"])
    apart = ReportTable("Apart", ["a"], level=3)
    parts = ["a note", Headline("best", anchor="best"), table, apart, Plot("p.png", "a chart", b"\x89PNG")]
    markdown, page = pages.write_report(tmp_path / "out", "Title", parts, ("R.md", "r.html"), script="var x;")
    assert markdown.read_text() == page_markdown("Title", parts)
    assert page.read_text() == page_html("Title", parts, script="var x;")
    assert (tmp_path / "out" / "p.png").read_bytes() == b"\x89PNG"
    text = markdown.read_text()
    assert text.startswith("# Title\n\na note\n\n**best**\n\n## Rows\n") and "### Apart\n" in text
    assert "![a chart](p.png)" in text
    html = page.read_text()
    assert '<p id="best"><strong>best</strong></p>' in html and '<section id="rows">' in html
    assert "data:image/png;base64," in html and "<script>var x;</script>" in html


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_reports_never_import_studies():
    """Reports read result files only; a study's report lives in bench.studies and imports reports."""
    offenders = {p.name: sorted(m for m in _imported_modules(p) if m.startswith("bench.studies"))
                 for p in (REPO / "bench" / "reports").glob("*.py")}
    assert {name: mods for name, mods in offenders.items() if mods} == {}
    assert "bench.reports.render" in _imported_modules(REPO / "bench" / "studies" / "report.py")
