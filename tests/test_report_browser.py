"""The comparison report as a browser shows it: headless Chromium loads compare.html from disk
(no network, no other file) and we read back the DOM it built and a screenshot.

Needs Debian's `chromium` package (apt-get install -y chromium); skipped, saying so, without it.
"""

from __future__ import annotations

import argparse
import base64
import io
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image
from rich.console import Console

from bench.reports import compare

FIXTURES = Path(__file__).parent / "fixtures" / "results"
MACHINES = ("NVIDIA H100 80GB HBM3 on synthetic-fixture-gpu-1", "NVIDIA A100-SXM4-40GB on synthetic-fixture-gpu-2",
            "CPU Intel Xeon Platinum 8481C CPU @ 2.70GHz, 2 cores on synthetic-fixture-cpu")
SUITES = {"cifar10-94-0.94": MACHINES, "fashion-mnist-91-0.91": (MACHINES[0], MACHINES[2])}
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here: install Debian's "
                                                         "'chromium' package (apt-get install -y chromium)")

# Added to a copy of the report only, never to the report itself: after the page has loaded,
# each <img> records the size Chromium decoded it to, so the dumped DOM tells us.
PROBE = """<script>window.addEventListener("load", () => { for (const img of document.images) {
  img.setAttribute("data-decoded", img.complete ? img.naturalWidth + "x" + img.naturalHeight : "no"); } });
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


class Dom(HTMLParser):
    """Sections (by id) with their table rows' cell texts, and every <img>'s attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self._section: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs.get("id")
            self.sections.setdefault(self._section, [])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.sections[self._section].append(self._row)
            self._row = None
        elif tag == "section":
            self._section = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare")
    args = argparse.Namespace(results=FIXTURES, baseline="A100", specs=None, out=out)
    assert compare.command(args, Console(file=io.StringIO())) == 0
    return out / "compare.html"


def test_chromium_shows_every_table_row_and_decodes_every_plot(report, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    done = chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri(), profile=tmp_path / "profile")
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    dom = Dom()
    dom.feed(done.stdout)

    assert [row[0] for row in dom.sections["machines"][1:]] == sorted(MACHINES)
    assert [row[0] for row in dom.sections["speedups"][1:]] == ["cifar10-94 — target 94.00%",
                                                              "fashion-mnist-91 — target 91.00%"]
    for anchor, machines in SUITES.items():
        rows = dom.sections[f"suite-{anchor}"]
        assert rows[0][:2] == ["machine", "verdict"]
        assert sorted(row[0] for row in rows[1:]) == sorted(machines)
    assert {row[0] for row in dom.sections["specs"][1:]} == {"resnet18", "vgg16"}

    assert len(dom.images) == 4  # per suite: accuracy curves and per-machine bars
    for img in dom.images:
        prefix = "data:image/png;base64,"
        assert img["src"].startswith(prefix)
        png = base64.b64decode(img["src"][len(prefix):], validate=True)
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.width > 100 and image.height > 100
            assert img["data-decoded"] == f"{image.width}x{image.height}"  # Chromium decoded it too
            assert sum(1 for n in image.convert("L").histogram() if n) > 10  # a drawing, not a blank


def test_chromium_renders_the_page(report, tmp_path):
    shot = tmp_path / "shot.png"
    done = chromium("--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={shot}", report.as_uri(),
                    profile=tmp_path / "profile")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        low, high = image.convert("L").getextrema()
        assert high - low > 100  # text and plots on the page, not an empty canvas


# Clicks the study table's "test top-1" head twice after load and writes down, each time,
# the column's sort keys in the order the rows then stand.
SORT_PROBE = """<script>window.addEventListener("load", () => {
  const table = document.querySelector("section#points table");
  const heads = Array.from(table.querySelectorAll("thead th"));
  const column = heads.findIndex((th) => th.textContent.startsWith("test top-1"));
  const keys = () => Array.from(table.tBodies[0].rows).map((row) => row.cells[column].dataset.sort).join(",");
  heads[column].click();
  document.body.setAttribute("data-ascending", keys());
  heads[column].click();
  document.body.setAttribute("data-descending", keys());
  for (const img of document.images) {
    img.setAttribute("data-decoded", img.complete ? img.naturalWidth + "x" + img.naturalHeight : "no"); }
});</script>"""


@pytest.fixture(scope="module")
def study_report(synthetic_study) -> Path:
    return synthetic_study[1] / "report.html"


def test_chromium_sorts_the_study_table_and_shows_its_plots(study_report, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(study_report.read_text().replace("</body>", SORT_PROBE + "</body>"))
    done = chromium("--virtual-time-budget=10000", "--dump-dom", probed.as_uri(), profile=tmp_path / "profile")
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    dom = Dom()
    dom.feed(done.stdout)
    rows = dom.sections["points"]
    assert rows[0][:2] == ["dataset.train_size", "recipe.batch_size"] and len(rows) == 5

    body = done.stdout.split("<body", 1)[1].split(">", 1)[0]
    ascending = [float(k) for k in body.split('data-ascending="')[1].split('"')[0].split(",")]
    descending = [float(k) for k in body.split('data-descending="')[1].split('"')[0].split(",")]
    assert len(ascending) == 4 and ascending == sorted(ascending) and descending == ascending[::-1]
    assert ascending[0] < ascending[-1]  # the points differ, so the order means something

    # curves per axis (2), accuracy against training-set size, time and steps against batch size
    assert len(dom.images) == 4
    for img in dom.images:
        png = base64.b64decode(img["src"][len("data:image/png;base64,"):], validate=True)
        with Image.open(io.BytesIO(png)) as image:
            assert img["data-decoded"] == f"{image.width}x{image.height}"
