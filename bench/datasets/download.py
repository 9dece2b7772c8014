"""Downloads: stream a URL to a temp file with a progress task, md5-verify, then rename into place.

A file only ever appears under its final name complete and verified, so a later run can
trust whatever it finds there; an interrupted download leaves nothing behind, and a file
whose md5 is wrong is set aside as `.bad`, never used and never deleted.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bench.datasets.checksums import md5_mismatch_error
from bench.errors import BenchError
from bench.progress import Reporter

TIMEOUT_S = 30  # per socket operation, not for the whole file
_CHUNK = 1 << 20
_USER_AGENT = "bench-datasets/0.1 (python urllib)"


def offline_requested(offline: bool) -> bool:
    """`offline=True` or env BENCH_OFFLINE set to anything but 0/false/no/empty."""
    env = os.environ.get("BENCH_OFFLINE", "").strip().lower()
    return offline or env not in ("", "0", "false", "no")


def url_from_env(env_var: str, default: str) -> str:
    return os.environ.get(env_var, "").strip() or default


def join_url(base: str, filename: str) -> str:
    return base.rstrip("/") + "/" + filename


class _NetworkError(Exception):
    """One URL failed for a reason on the remote side; the next mirror may still work."""


def fetch(urls: Sequence[str], dest: Path, *, md5: str | None, reporter: Reporter, offline: bool,
          hint: str) -> str:
    """Puts the file at `dest`, trying each URL in turn; returns the URL it came from.

    `hint` ends every failure message: what the user can do instead (where to put the
    file by hand, which env var names a mirror).
    """
    if offline:
        raise BenchError(f"{dest.name} is not at {dest} and downloads are off (--offline or BENCH_OFFLINE): "
                         f"download {urls[0]} yourself and put it at {dest}; {hint}")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BenchError(f"cannot create {dest.parent}: {error.strerror or error}; set BENCH_DATA to a "
                         f"writable folder") from None
    failures = []
    for url in urls:
        try:
            _download(url, dest, md5=md5, reporter=reporter)
            return url
        except _NetworkError as error:
            failures.append(f"{url} ({error})")
    raise BenchError(f"could not download {dest.name} from {', '.join(failures)}: put the file at {dest} "
                     f"yourself; {hint}")


def _download(url: str, dest: Path, *, md5: str | None, reporter: Reporter) -> None:
    fd, temp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            actual_md5 = _stream(url, handle, dest, reporter)
        if md5 is not None and actual_md5 != md5:
            raise md5_mismatch_error(temp, actual_md5, md5, "Check the URL (or mirror) and try again.",
                                     named_after=dest, what=f"{dest.name} downloaded from {url}")
        os.chmod(temp, 0o644)  # mkstemp makes it 0600; a shared BENCH_DATA needs others to read it
        os.replace(temp, dest)
    finally:
        # Only an incomplete temp file is left here at this point (a bad one was renamed).
        temp.unlink(missing_ok=True)


def _stream(url: str, handle, dest: Path, reporter: Reporter) -> str:
    """Copies the response body into `handle`; returns its md5. Remote failures -> _NetworkError."""
    digest = hashlib.md5()
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            with reporter.task(f"Downloading {dest.name}", total=total, kind="bytes") as task:
                while chunk := response.read(_CHUNK):
                    try:
                        handle.write(chunk)
                    except OSError as error:
                        raise BenchError(f"cannot write the download of {dest.name} in {dest.parent}: "
                                         f"{error.strerror or error}; free some space or set BENCH_DATA "
                                         f"to another folder") from None
                    digest.update(chunk)
                    received += len(chunk)
                    task.advance(len(chunk))
            # urllib does not complain when the server closes early: count the bytes ourselves.
            if total is not None and received != total:
                raise _NetworkError(f"connection closed after {received} of {total} bytes")
    except urllib.error.HTTPError as error:
        raise _NetworkError(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise _NetworkError(str(error.reason)) from None
    except (OSError, http.client.HTTPException) as error:  # timeouts, resets, truncated chunks
        raise _NetworkError(str(error) or type(error).__name__) from None
    except ValueError as error:  # a malformed URL, e.g. from a BENCH_URL_* variable
        raise _NetworkError(f"bad URL: {error}") from None
    return digest.hexdigest()
