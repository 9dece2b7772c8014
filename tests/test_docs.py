"""The documentation holds: the README's image-folder walk-through runs as written, no file cites a
path outside the repository (the design contract is docs/design.md, and every section a source file
cites exists there), the Markdown links resolve inside the repository, and the site builds with
`mkdocs build --strict` (what `make docs` runs in `make test`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DESIGN = ROOT / "docs" / "design.md"
# built from pieces so that this file does not cite what it looks for
OLD_DESIGN = "DESIGN" + ".md"
OUTSIDE = ("../" + "shared/", "/work" + "/")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
DESIGN_ANCHOR = re.compile(r"docs/design\.md#([A-Za-z0-9_-]+)")


def tracked_text_files() -> list[Path]:
    """The repository's text files (git's list where git answers, else every file under the root),
    the committed results left out: they are data, and cite only what they measured."""
    try:
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
        names = [name for name in listed.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    files = []
    for name in names:
        path = ROOT / name
        if name.startswith("results/") or not path.is_file():
            continue
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images, archives, weights
        files.append(path)
    return files


def slug(heading: str) -> str:
    """The anchor MkDocs (Python-Markdown's toc) gives a heading."""
    text = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(markdown: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", markdown.read_text(), flags=re.S)  # a '# comment' in a code block is no heading
    return {slug(line.lstrip("#").strip()) for line in text.splitlines() if re.match(r"#{1,6} ", line)}


def markdown_files() -> list[Path]:
    return [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


# ------------------------------------------------------------------ nothing outside the repository ----

def test_no_file_cites_the_design_notes_outside_the_repository():
    citing = [f"{path.relative_to(ROOT)}:{number}" for path in tracked_text_files()
              for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
              if OLD_DESIGN in line and path != Path(__file__).resolve()]
    assert not citing, f"these cite {OLD_DESIGN}; cite docs/design.md#<section> instead:\n" + "\n".join(citing)


def test_every_design_section_cited_exists():
    known = anchors(DESIGN)
    cited = {(path.relative_to(ROOT).as_posix(), anchor) for path in tracked_text_files()
             for anchor in DESIGN_ANCHOR.findall(path.read_text(encoding="utf-8"))}
    assert len(cited) >= 10, "the source files cite the design contract's sections by anchor"
    missing = sorted(f"{where}: #{anchor}" for where, anchor in cited if anchor not in known)
    assert not missing, "cited sections that docs/design.md does not have:\n" + "\n".join(missing)


def test_the_documentation_cites_no_path_outside_the_repository():
    found = [f"{path.relative_to(ROOT)}: {outside}" for path in markdown_files() if path.is_file()
             for outside in OUTSIDE if outside in path.read_text(encoding="utf-8")]
    assert not found, "\n".join(found)


def test_every_relative_link_of_the_documentation_resolves_inside_the_repository():
    broken = []
    for page in markdown_files():
        for target in LINK.findall(re.sub(r"```.*?```", "", page.read_text(), flags=re.S)):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve()
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and path.suffix == ".md" and anchor not in anchors(path):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "links that do not resolve inside the repository:\n" + "\n".join(broken)


def test_the_checker_finds_a_citation_outside_the_repository(tmp_path, monkeypatch):
    # the scan above can fail: a file citing the old notes is found
    planted = tmp_path / "planted.py"
    planted.write_text(f"# see {OLD_DESIGN} section 3\n")
    monkeypatch.setattr(sys.modules[__name__], "tracked_text_files", lambda: [planted])
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    with pytest.raises(AssertionError, match="planted.py:1"):
        test_no_file_cites_the_design_notes_outside_the_repository()


def test_slug_matches_the_design_contract_headings():
    assert slug("3. The measurement contract") == "3-the-measurement-contract"
    assert slug("9. Trust: what every published number must survive") == \
        "9-trust-what-every-published-number-must-survive"
    assert "3-the-measurement-contract" in anchors(DESIGN)


# ------------------------------------------------------------------------- the site builds ----

def test_the_site_builds_with_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is in the [test] extra: pip install -e '.[test]'")
    pytest.importorskip("material", reason="mkdocs-material is in the [test] extra")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "design" / "index.html").is_file()


def test_a_broken_link_fails_the_strict_build(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is in the [test] extra: pip install -e '.[test]'")
    pytest.importorskip("material", reason="mkdocs-material is in the [test] extra")
    copy = tmp_path / "repo"
    copy.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", copy)
    shutil.copytree(ROOT / "docs", copy / "docs")
    page = copy / "docs" / "commands.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no-such-page.md).\n")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=copy, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode != 0 and "no-such-page.md" in done.stdout + done.stderr


# ------------------------------------------------------- the README's image-folder walk-through ----

def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def fenced(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def make_shapes(root: Path, train: int = 200, test: int = 60) -> None:
    """Three classes of 32x32 grayscale PNGs (a square, a bar, a disc at a random place, on noise)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for split, count in (("train", train), ("test", test)):
        for label, name in enumerate(("square", "bar", "disc")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.normal(40, 30, (32, 32))
                r, c = rng.integers(4, 20, 2)
                if label == 0:
                    pixels[r:r + 9, c:c + 9] += 150
                elif label == 1:
                    pixels[r:r + 3, 2:30] += 150
                else:
                    pixels[(yy - r - 4) ** 2 + (xx - c - 4) ** 2 < 20] += 150
                Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"{i:04d}.png")


def bench(argv: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    words = argv.split()
    assert words[0] == "bench", f"the walk-through's command {argv!r} is not a bench command"
    return subprocess.run([sys.executable, "-m", "bench", *words[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
def test_the_readme_image_folder_walk_through_runs_as_written(tmp_path):
    section = readme_section("Your own data and suite")
    (suite_text,) = fenced(section, "toml")
    commands = [line.strip() for block in fenced(section, "sh") for line in block.splitlines() if line.strip()]
    assert [c.split()[:2] for c in commands] == [["bench", "calibrate"], ["bench", "run"]]
    suite_file = re.search(r"(\S+\.toml)", commands[0]).group(1)
    data = tomllib.loads(suite_text)["dataset"].get("path", "shapes")  # where the images go

    make_shapes(tmp_path / data)
    (tmp_path / suite_file).write_text(suite_text)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "BENCH_DATA": str(tmp_path / "cache"), "COLUMNS": "120"}
    env.pop("BENCH_RESULTS", None)
    env.pop("BENCH_SUITES", None)

    calibrated = bench(commands[0], tmp_path, env)
    assert calibrated.returncode == 0, calibrated.stdout + calibrated.stderr
    pasted = [line for line in calibrated.stdout.splitlines() if re.match(r"target(_source)? = ", line)]
    assert [line.split(" = ")[0] for line in pasted] == ["target", "target_source"], calibrated.stdout
    # the README's example of the two lines has their shape
    (example,) = fenced(section, "text")
    assert re.fullmatch(r'target = 0\.\d+\ntarget_source = "calibration:results/calibration/my-shapes-[^"]+\.json"\n',
                        example)
    # "paste the two lines it prints over the target line"
    suite = re.sub(r"^target = .*$", "\n".join(pasted), suite_text, count=1, flags=re.M)
    (tmp_path / suite_file).write_text(suite)

    ran = bench(commands[1], tmp_path, env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "PASS" in ran.stdout
    assert len(list((tmp_path / "results" / "runs").glob("*.json"))) == 1


# ------------------------------------------------------------------- the README's results table ----

def _regenerate_reports_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("regenerate_reports_for_docs", ROOT / "scripts" / "regenerate_reports.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fixture_readme(tmp_path_factory):
    """The synthetic fixture results with their reports, and a README holding both blocks, written."""
    reports = _regenerate_reports_script()
    folder = tmp_path_factory.mktemp("readme")
    results = shutil.copytree(ROOT / "tests" / "fixtures" / "results", folder / "results")
    reports.regenerate(results)
    readme = folder / "README.md"
    readme.write_text(f"# front page\n\n{reports.RESULTS_BEGIN}\n{reports.RESULTS_END}\n\n"
                      f"{reports.README_BEGIN}\n{reports.README_END}\n")
    reports.write_readme(results, readme)
    return reports, results, readme


def _table_rows(text: str) -> list[str]:
    begin, end = text.index("<!-- results:begin -->"), text.index("<!-- results:end -->")
    return [line for line in text[begin:end].splitlines() if line.startswith("| `")]


def test_the_readme_results_table_holds_the_leaderboards_first_entry_per_suite_and_target(fixture_readme):
    from bench import formatting as fmt
    from bench.progress import NullReporter
    from bench.record.files import load_results
    from bench.reports.frame import frames
    from bench.reports.leaderboard import build_boards
    from bench.reports.rejudge import todays_suites

    reports, results, readme = fixture_readme
    loaded = load_results(results, NullReporter())
    boards, _ = build_boards(frames(loaded), {r.record["id"]: r.record for r in loaded}, todays_suites())
    boards = [b for b in boards if not b.ranked.empty and b.target is not None]
    rows = _table_rows(readme.read_text())
    assert len(rows) == len(boards) >= 2
    for row, board in zip(rows, boards):
        best = board.ranked.iloc[0]
        assert row.startswith(f"| `{board.suite}` | {fmt.percent(board.target)}")
        assert fmt.time_to_target(best["median_time_s"], best["iqr_time_s"], best["timed_runs"],
                                  best["complete_runs"]) in row
        assert str(best["machine"]) in row


def test_a_stale_readme_results_table_is_named(fixture_readme, tmp_path):
    reports, results, readme = fixture_readme
    assert not reports.check(results, readme).stale
    planted = tmp_path / "README.md"
    first = _table_rows(readme.read_text())[0]
    planted.write_text(readme.read_text().replace(first, first.replace("| `", "| `renamed-", 1)))
    stale = reports.check(results, planted).stale
    assert any(line.startswith("README.md: the results table") for line in stale), stale


def test_a_target_changed_since_says_what_it_is_now(fixture_readme, monkeypatch):
    reports, results, _ = fixture_readme
    monkeypatch.setattr(reports, "current_target", lambda suite: 0.5)
    assert all("(now 50.00%)" in row for row in _table_rows(reports.results_block(results)))
    monkeypatch.setattr(reports, "current_target", lambda suite: None)
    assert all("(no such suite now)" in row for row in _table_rows(reports.results_block(results)))
