"""Linked axes: axes that vary together, value by value, instead of crossing (a zip).

A study's grid crosses every axis with every other. Some questions need two keys to move
together: a fixed number of optimizer steps over training-set sizes (the epochs grow as the
size shrinks), or the linear learning-rate scaling rule over batch sizes (the learning rate
grows with the batch). A study names such groups in its top-level `link`:

    link = [["dataset.train_size", "recipe.epochs"]]

    [axes]
    "dataset.train_size" = [51200, 25600, 12800]
    "recipe.epochs"      = [10, 20, 40]          # the i-th epochs go with the i-th size
    "recipe.lr"          = [0.03, 0.01]          # crossed with the linked pairs as usual

Each group's axes are listed in [axes] with the same number of values; the group contributes
its i-th values together, and the groups and the other axes are crossed. Every linked key stays
an axis of its own (reports plot and label it as any other); [[exclude]] and [[include]] apply
afterwards as before, so an [[include]] can add combinations off the link (e.g. a second arm
with the epochs fixed: every size at 10 epochs).
"""

from __future__ import annotations

import itertools
from typing import Any

from bench.errors import BenchError

Combo = tuple[tuple[str, Any], ...]


def linked_groups(raw: Any, axes: dict[str, list[Any]], where: str) -> list[list[str]]:
    """The file's `link` as groups of axis names, checked: lists of two or more axes named in
    [axes], no axis in two groups, the axes of a group with equally many values."""
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(group, list) for group in raw):
        raise BenchError(f"{where}: 'link' must be a list of axis groups, e.g. "
                         "link = [[\"dataset.train_size\", \"recipe.epochs\"]]")
    seen: set[str] = set()
    for number, group in enumerate(raw, start=1):
        if len(group) < 2 or not all(isinstance(axis, str) for axis in group):
            raise BenchError(f"{where}: link group {number} must list two or more axis names (strings)")
        for axis in group:
            if axis not in axes:
                raise BenchError(f"{where}: link group {number} names '{axis}', which is not an axis; "
                                 f"the axes are {', '.join(axes)}")
            if axis in seen:
                raise BenchError(f"{where}: axis '{axis}' is in two link groups; put the keys that move "
                                 "together in one group")
            seen.add(axis)
        lengths = {axis: len(axes[axis]) for axis in group}
        if len(set(lengths.values())) > 1:
            counts = ", ".join(f"'{axis}' {n}" for axis, n in lengths.items())
            raise BenchError(f"{where}: link group {number}: its axes must have equally many values "
                             f"(the i-th values go together), but they have {counts}")
    return [list(group) for group in raw]


def linked_grid(axes: dict[str, list[Any]], groups: list[list[str]]) -> list[Combo]:
    """The grid: every axis crossed with the others, except that each group's axes take their
    i-th values together. Combinations list the axes in the file's order; with no groups this
    is the plain product, in the same order."""
    group_of = {axis: tuple(group) for group in groups for axis in group}
    units: list[tuple[str, ...]] = []
    for axis in axes:
        unit = group_of.get(axis, (axis,))
        if unit not in units:
            units.append(unit)
    # a unit's choices: tuples of (axis, value), one per axis of the unit, the i-th values together
    choices = [[tuple(zip(unit, values)) for values in zip(*(axes[a] for a in unit))] for unit in units]
    grid = []
    for picked in itertools.product(*choices):
        values = dict(pair for unit_choice in picked for pair in unit_choice)
        grid.append(tuple((axis, values[axis]) for axis in axes))
    return grid
