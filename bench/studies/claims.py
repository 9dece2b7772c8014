"""Cell claims: two sweeps of one study into one folder share the cells instead of each
training all of them.

Before a cell runs, the sweep's driver claims it: a file `<cell>.claim` beside the cell's
result files, holding the claimer's pid, host and time. The claim is published the way the
result writer publishes (a fully written temp file given the name with os.link, which fails
when the name exists): as exclusive as O_CREAT|O_EXCL, and a claim is never seen half
written. Whoever holds the claim runs the cell; the others skip it. The claim goes when the
cell's result file is written (complete or failed) or the sweep stops.

A claim whose process is gone (same host, dead pid: a sweep killed outright) is stale and
is taken over, under a lock so that two sweeps never both take over one claim. A claim from
another host is never judged stale (its pid means nothing here): delete the file to free it.
A sweep also clears every stale claim as it starts: a sweep killed between writing a cell's
result and letting go of its claim leaves the claim of a cell that is done, which no later
sweep would take over.
Claim files end in .claim, so the readers of result files (*.json) never see them.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bench.errors import BenchError
from bench.record.files import link_new, process_alive, staged_file


class Claims:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.held: set[str] = set()
        self.me = {"pid": os.getpid(), "host": socket.gethostname()}

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.claim"

    def take(self, key: str) -> bool:
        """True when this process now holds the cell (a fresh claim, or a stale one taken over)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._publish(key):
            return True
        with self._lock():  # take-overs one at a time: each sees what the one before it did
            holder = self.holder(key)
            if holder is not None and not self._stale(holder):
                return False
            self.path(key).unlink(missing_ok=True)
            return self._publish(key)

    def holder(self, key: str) -> dict[str, Any] | None:
        """Who holds the cell ({pid, host, time}), or None when nobody does."""
        path = self.path(key)
        if path.is_dir() and not path.is_symlink():  # no take-over can remove it: refused, naming it
            raise BenchError(f"{path} is a folder, not a claim file bench writes; remove it (rm -r) and sweep again")
        try:
            holder = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError):  # not a claim bench wrote: nobody's, so it may be taken over
            return {}
        return holder if isinstance(holder, dict) else {}  # a JSON list or number: not a claim bench wrote

    def release(self, key: str) -> None:
        if key in self.held:
            self.held.discard(key)
            holder = self.holder(key)
            if holder is not None and holder.get("pid") == self.me["pid"] and holder.get("host") == self.me["host"]:
                self.path(key).unlink(missing_ok=True)

    def clear_stale(self) -> None:
        """Deletes the claims whose holder is gone (same host, dead pid)."""
        found = sorted(self.folder.glob("*.claim")) if self.folder.is_dir() else []
        if not found:  # the usual case: no lock file made for nothing
            return
        with self._lock():
            for path in found:
                holder = self.holder(path.name[: -len(".claim")])
                if holder is not None and self._stale(holder):
                    path.unlink(missing_ok=True)

    def release_all(self) -> None:
        for key in list(self.held):
            self.release(key)

    def _publish(self, key: str) -> bool:
        text = json.dumps({**self.me, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n"
        with staged_file(self.folder, text, ".claim-tmp") as staged:
            if not link_new(staged, self.path(key)):
                return False
        self.held.add(key)
        return True

    def _stale(self, holder: dict[str, Any]) -> bool:
        if not holder:
            return True
        pid = holder.get("pid")
        return holder.get("host") == self.me["host"] and isinstance(pid, int) and not process_alive(pid)

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.folder / ".claims.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


def describe(holder: dict[str, Any] | None, path: Path | None = None) -> str:
    if not holder:
        return "another sweep"
    said = f"another sweep (pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('time')})"
    if path is not None and holder.get("host") != socket.gethostname():
        # its pid means nothing here, so it is never taken over: only the user can free the cell
        said += f"; if no sweep runs on {holder.get('host')} any more, delete {path} and sweep again"
    return said
