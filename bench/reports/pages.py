"""The one writer of report files: leaderboard, compare, export and a study's report.

A report file is rewritten whole and atomically: its content goes to a temp file in the same
folder, synced to disk, then renamed over the old one (os.replace), so a reader (a browser, a
web server, a CI step collecting artifacts) never sees half a page, and a crash mid-write
leaves the previous page in place.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.reports.render import Part, Plot, page_html, page_markdown
from bench.record.files import ResultNotWritten, current_umask, staged_file

NEW_FILE_MODE = 0o644  # a page is for reading: the temp file's private 0600 would hide it from a web server


def _new_file_mode() -> int:
    """0644 less what the umask takes away, as for any file the user writes."""
    return NEW_FILE_MODE & ~current_umask()


def write_page(path: Path, data: str | bytes) -> Path:
    """Replaces `path` with `data` atomically; an existing file keeps its permissions. Text is
    written as UTF-8 whatever the locale (the HTML pages declare it)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    mode = path.stat().st_mode & 0o777 if path.exists() else _new_file_mode()
    try:
        with staged_file(path.parent, data, path.suffix) as staged:
            os.chmod(staged, mode)
            os.replace(staged, path)
    except OSError as exc:  # a full disk after the reading: a fault (exit 3), the page there untouched
        raise ResultNotWritten(f"{path} not written ({exc.strerror or exc}); the file already there (if any) is "
                               "untouched; free some space (or fix the folder) and run again") from None
    return path


def write_report(folder: Path, title: str, parts: list[Part], names: tuple[str, str],
                 script: str = "") -> tuple[Path, Path]:
    """The Markdown page (plots as PNG files beside it) and the self-contained HTML page
    (plots inline) in `folder`; `names` are the (Markdown, HTML) file names. Returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in parts:
        if isinstance(part, Plot):
            write_page(folder / part.name, part.png)
    markdown = write_page(folder / names[0], page_markdown(title, parts))
    page = write_page(folder / names[1], page_html(title, parts, script=script))
    return markdown, page
