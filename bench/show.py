"""`bench show`: a suite as bench runs it, and the reference of every suite key.

`bench show SUITE|FILE [--set KEY=VALUE ...]` prints the resolved suite (every default filled
in, the overrides applied), its file, hash, target and where the target comes from.
`bench show --keys` prints every key a suite may set, with its type, default and meaning
(bench.suite_keys, the table docs/suite-keys.md is generated from).
"""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.errors import EXIT_OK, BenchError
from bench.record.calibration import source_text
from bench.suite_keys import key_rows, resolved_lines
from bench.suites import Suite, load_suite


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", nargs="?", help="a suite name from 'bench list', or a path to a .toml file")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a suite key as 'bench run --set' does, e.g. --set recipe.epochs=2")
    parser.add_argument("--keys", action="store_true",
                        help="list every key a suite may set: type, default, allowed values, meaning")


def command(args: argparse.Namespace, console: Console) -> int:
    if args.keys:
        if args.suite is not None:
            raise BenchError("bench show: give a suite or --keys, not both")
        console.print(keys_table())
        return EXIT_OK
    if args.suite is None:
        raise BenchError("bench show: give a suite name (see 'bench list') or a .toml file, or --keys")
    suite = load_suite(args.suite, args.overrides)
    console.print(suite_table(suite))
    return EXIT_OK


def _value(value: object) -> str:
    if value is None:
        return "—"
    return value if isinstance(value, str) else json.dumps(value)


def suite_table(suite: Suite) -> Table:
    """The resolved suite, key by key; overridden keys marked, the target's source in words."""
    overridden = set(suite.overrides)
    table = Table(title=f"suite {suite.name}", caption=f"file {suite.path}  ·  hash {suite.hash}"
                  + ("  ·  * set by --set" if overridden else ""), show_header=True, title_justify="left",
                  caption_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")  # a calibration path is one long word
    for key, value in resolved_lines(suite.resolved):
        mark = "*" if key in overridden or any(key.startswith(k + ".") for k in overridden) else ""
        table.add_row(escape(key + mark), escape(_value(value)))
    try:
        source = source_text(suite)
    except BenchError as exc:
        source = f"invalid: {exc}"
    table.add_section()
    table.add_row("[bold]target[/bold]", escape(f"{suite.target:g} ({suite.mode} mode; "
                                                  f"pass rule {suite.resolved['pass_rule']})"))
    table.add_row("[bold]target source[/bold]", escape(source))
    return table


def keys_table() -> Table:
    rows = key_rows()
    table = Table(title=f"suite keys ({len(rows)}; docs/suite-keys.md holds the same)", title_justify="left")
    table.add_column("key", no_wrap=True)
    table.add_column("type", max_width=10)
    table.add_column("default", max_width=12, overflow="fold")
    table.add_column("meaning (allowed values)", ratio=1)
    for row in rows:
        meaning = row.meaning + (f" ({row.allowed})" if row.allowed else "")
        table.add_row(escape(row.key), escape(row.type), escape(row.default), escape(meaning))
    return table
