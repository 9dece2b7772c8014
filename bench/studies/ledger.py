"""Which cells of a study have results: the study folder's result files matched to cells by identity.

A file belongs to a cell when its resolved suite (hashed without the keys at their defaults,
study.identity_hash) and its seed are the cell's, whoever wrote it: a `bench run` result of
the same suite and seed counts too, and so do files written before bench gained a suite key. A cell is *done*
when a file of it is complete or diverged (a diverged run is the recipe's outcome, and a
rerun would diverge again), *failed* when its only files are failed or interrupted ones
(the next sweep retries it), and *pending* without a file. Of several files of one cell the
newest finished one stands; the others stay on disk, untouched. Files of no cell of the
study (an axis value since removed) are listed as strays, never read as a cell's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.progress import Reporter
from bench.record.files import LoadedResult, load_results
from bench.studies.study import Cell, Study, cell_key, identity_hash

DONE_STATUSES = ("complete", "diverged")


@dataclass
class CellState:
    cell: Cell
    state: str = "pending"                  # done | failed | pending
    result: LoadedResult | None = None      # the file that stands for the cell
    attempts: int = 0                       # result files of this cell

    @property
    def error(self) -> str | None:
        if self.result is None:
            return None
        error = self.result.record.get("error")
        return (error or {}).get("message") if isinstance(error, dict) else error


@dataclass
class Ledger:
    study: Study
    folder: Path                            # the study's runs/ folder
    cells: dict[str, CellState] = field(default_factory=dict)
    strays: list[LoadedResult] = field(default_factory=list)

    def where(self, state: str) -> list[CellState]:
        return [c for c in self.cells.values() if c.state == state]

    @property
    def results(self) -> list[LoadedResult]:
        """The files that stand for cells (done or failed), in the study's cell order."""
        return [c.result for c in self.cells.values() if c.result is not None]


def record_cell_key(record: dict[str, Any]) -> str | None:
    """The identity of the cell a result file holds, from what it ran: its resolved suite
    (hashed as the study hashes its points) and its one seed."""
    resolved = (record.get("suite") or {}).get("resolved")
    seeds = (record.get("invocation") or {}).get("seeds") or [r.get("seed") for r in record.get("runs") or []]
    if not isinstance(resolved, dict) or len(seeds) != 1 or not isinstance(seeds[0], int):
        return None  # an invocation of several seeds is no single cell
    return cell_key(identity_hash(resolved), seeds[0])


def _newest(result: LoadedResult) -> tuple[str, str]:
    return (result.record.get("finished_at") or "", result.record.get("id") or "")


def read_ledger(study: Study, folder: Path, reporter: Reporter | None = None) -> Ledger:
    ledger = Ledger(study, folder, {cell.key: CellState(cell) for cell in study.cells})
    if not folder.is_dir():
        return ledger
    for result in sorted(load_results(folder, reporter), key=_newest):
        state = ledger.cells.get(record_cell_key(result.record) or "")
        if state is None:
            ledger.strays.append(result)
            continue
        state.attempts += 1
        done = result.record["status"] in DONE_STATUSES and bool(result.record.get("runs"))
        if done:
            state.state, state.result = "done", result   # newest done file stands
        elif state.state != "done":
            state.state, state.result = "failed", result
    return ledger
