"""One table, three faces: Markdown, self-contained HTML, and a rich table for the terminal;
and the one way a report page is laid out from its parts.

Reports build `ReportTable`s of already formatted strings, `Plot`s and paragraphs; this module
only lays them out, so the Markdown file, the HTML page and the console always show the same
cells. Every report (leaderboard, compare, a study's) renders through `page_markdown` and
`page_html`, and is written by bench.reports.pages.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

from rich.markup import escape
from rich.table import Table


@dataclass
class ReportTable:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    anchor: str = ""                # HTML id, so a reader (or a test) can find the table
    note: str = ""                  # one line under the title: what the rows are, how they were chosen
    row_styles: list[str] = field(default_factory=list)  # per row: "" | "bad" | "good" | "muted"
    sortable: bool = False          # HTML: a click on a column head sorts the rows (SORT_SCRIPT)
    sort_keys: list[list[str]] = field(default_factory=list)  # per row, per cell: what it sorts by
    level: int = 2                  # its heading on a page: 2 a section, 3 a table under the one before

    def add(self, cells: list[str], style: str = "", keys: list[object] | None = None) -> None:
        """`keys` (numbers sort as numbers; None sorts last) let a sortable table order cells
        such as "88.1% ± 0.3" by their value rather than their text."""
        assert len(cells) == len(self.columns), (cells, self.columns)
        assert keys is None or len(keys) == len(cells), (keys, cells)
        self.rows.append(cells)
        self.row_styles.append(style)
        self.sort_keys.append(["" if k is None or k != k else str(k) for k in keys] if keys else list(cells))


def _md_cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def table_markdown(table: ReportTable, level: int | None = None) -> str:
    level = table.level if level is None else level
    lines = [f"{'#' * level} {table.title}", ""]
    if table.note:
        lines += [table.note, ""]
    if not table.rows:
        return "\n".join(lines + ["(none)", ""])
    lines.append("| " + " | ".join(_md_cell(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines + [""])


def table_html(table: ReportTable, level: int | None = None) -> str:
    level = table.level if level is None else level
    anchor = f' id="{html.escape(table.anchor)}"' if table.anchor else ""
    parts = [f"<section{anchor}>", f"<h{level}>{html.escape(table.title)}</h{level}>"]
    if table.note:
        parts.append(f'<p class="note">{html.escape(table.note)}</p>')
    if not table.rows:
        parts.append('<p class="none">(none)</p></section>')
        return "\n".join(parts)
    head = '<table class="sortable">' if table.sortable else "<table>"
    parts.append(head + "<thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
                 + "</tr></thead><tbody>")
    for row, style, keys in zip(table.rows, table.row_styles, table.sort_keys):
        klass = f' class="{style}"' if style else ""
        if table.sortable:
            cells = "".join(f'<td data-sort="{html.escape(k)}">{html.escape(c)}</td>' for c, k in zip(row, keys))
        else:
            cells = "".join(f"<td>{html.escape(c)}</td>" for c in row)
        parts.append(f"<tr{klass}>{cells}</tr>")
    parts.append("</tbody></table></section>")
    return "\n".join(parts)


_RICH_STYLE = {"bad": "red", "good": "green", "muted": "dim"}


def table_rich(table: ReportTable) -> Table:
    # the cells are text (suite names, hosts, paths), never markup: "[1]" must show as "[1]"
    out = Table(title=escape(table.title), title_justify="left", caption=escape(table.note) if table.note else None,
                caption_justify="left")
    for column in table.columns:
        out.add_column(escape(column))
    for row, style in zip(table.rows, table.row_styles):
        out.add_row(*(escape(str(cell)) for cell in row), style=_RICH_STYLE.get(style))
    return out


def png_img_html(png: bytes, alt: str) -> str:
    """An <img> carrying its PNG inline, so the page needs no file beside it."""
    data = base64.b64encode(png).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>' \
           f"{html.escape(alt)}</figcaption></figure>"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.bad td { background: #fde8e8; } tr.good td { background: #e8f6e8; } tr.muted td { color: #888; }
p.note, p.none { color: #555; font-size: 13px; }
figure { display: inline-block; margin: .5em; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; }
table.sortable th { cursor: pointer; } th[aria-sort=ascending]::after { content: " ▲"; }
th[aria-sort=descending]::after { content: " ▼"; }
"""


# Sorts a table.sortable by the clicked column: by data-sort, as numbers when both are numbers,
# empty keys (missing figures) always last; a second click reverses.
SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("thead th").forEach((th, column) => {
    th.title = "sort by this column";
    th.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach((other) => other.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const body = table.tBodies[0];
      const key = (row) => row.cells[column].dataset.sort;
      const rows = Array.from(body.rows).sort((a, b) => {
        const x = key(a), y = key(b);
        if (x === "" || y === "") return (x === "") - (y === "");
        const nx = Number(x), ny = Number(y);
        const order = !isNaN(nx) && !isNaN(ny) ? nx - ny : x.localeCompare(y);
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
});
"""


def html_page(title: str, body: str, script: str = "") -> str:
    """A complete page with its style (and script) inline and no external asset (it opens offline,
    as one file)."""
    tail = f"<script>{script}</script>\n" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n<h1>{html.escape(title)}</h1>\n{body}\n{tail}</body></html>\n")


# ---------------------------------------------------------------- pages ----

@dataclass
class Plot:
    """A chart on a page: a PNG file beside the Markdown page, inline in the HTML one."""

    name: str        # file name beside the Markdown page
    caption: str
    png: bytes


@dataclass
class Headline:
    """A paragraph set in bold (a study's best values)."""

    text: str
    anchor: str = ""  # HTML id, so a reader (or a test) can find it


@dataclass
class Bullets:
    """A titled section of sentences, one bullet each (a study's findings)."""

    title: str
    items: list[str]
    anchor: str = ""


Part = ReportTable | Plot | Headline | Bullets | str  # a page in reading order; a str is a plain paragraph


def page_markdown(title: str, parts: list[Part]) -> str:
    lines = [f"# {title}", ""]
    for part in parts:
        if isinstance(part, ReportTable):
            lines.append(table_markdown(part))
        elif isinstance(part, Plot):
            lines += [f"![{part.caption}]({part.name})", ""]
        elif isinstance(part, Headline):
            lines += [f"**{part.text}**", ""]
        elif isinstance(part, Bullets):
            lines += [f"## {part.title}", "", *(f"- {' '.join(item.splitlines())}" for item in part.items), ""]
        else:
            lines += [part, ""]
    return "\n".join(lines).rstrip() + "\n"


def page_html(title: str, parts: list[Part], script: str = "") -> str:
    body = []
    for part in parts:
        if isinstance(part, ReportTable):
            body.append(table_html(part))
        elif isinstance(part, Plot):
            body.append(png_img_html(part.png, part.caption))
        elif isinstance(part, Headline):
            anchor = f' id="{html.escape(part.anchor)}"' if part.anchor else ""
            body.append(f"<p{anchor}><strong>{html.escape(part.text)}</strong></p>")
        elif isinstance(part, Bullets):
            anchor = f' id="{html.escape(part.anchor)}"' if part.anchor else ""
            items = "".join(f"<li>{html.escape(item)}</li>" for item in part.items)
            body.append(f"<section{anchor}><h2>{html.escape(part.title)}</h2><ul>{items}</ul></section>")
        else:
            body.append(f'<p class="note">{html.escape(part)}</p>')
    return html_page(title, "\n".join(body), script=script)
