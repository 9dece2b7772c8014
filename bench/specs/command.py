"""`bench specs`: the command line. Parses and checks the options, measures (bench.specs.report),
writes the JSON and Markdown files (bench.specs.files) and prints the chosen view."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from rich.console import Console

from bench.destinations import check_folder, path_argument
from bench.errors import BenchError
from bench.progress import RichReporter
from bench.record.files import ResultNotWritten
from bench.specs.files import write_specs
from bench.specs.report import DEFAULT_BATCH, DEVICE_CHOICES, check_models, run_specs
from bench.specs.views import specs_csv, specs_json, specs_markdown, specs_table

DEFAULT_OUT = Path("results/specs")
FORMATS = ("table", "md", "csv", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `bench specs` options (the CLI adds the sub-command and calls `command`)."""
    parser.add_argument("--models", help="comma-separated networks (default: the whole zoo and this project's nets)")
    parser.add_argument("--device", default="all", choices=DEVICE_CHOICES,
                        help="where to measure; all = cpu plus cuda when available (default all)")
    parser.add_argument("--batch", type=int, help=f"batch size on every device (default {DEFAULT_BATCH['cuda']} on "
                                                  f"CUDA, {DEFAULT_BATCH['cpu']} on CPU; halved on out-of-memory)")
    parser.add_argument("--input", metavar="CxHxW", help="input shape for every network, e.g. 3x224x224 "
                                                         "(default: each network's usual input)")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true", help="channels-last memory format for model and input")
    parser.add_argument("--train", action="store_true", help="also measure training steps (forward+backward+SGD)")
    parser.add_argument("--format", default="table", choices=FORMATS, help="what to print (default table); "
                                                                           "JSON and Markdown files are always written")
    parser.add_argument("--repeats", type=int, default=10, help="timed batches per measurement (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="warm-up batches before timing (default 2)")
    parser.add_argument("--threads", type=int, help="torch CPU threads for the run (default: torch's choice)")
    parser.add_argument("--out", type=path_argument, default=DEFAULT_OUT, help=f"folder for the files (default {DEFAULT_OUT})")


def parse_models(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if any(not n for n in names):
        raise BenchError(f"--models: empty name in '{text}'; give names separated by single commas")
    return check_models(names)


def parse_input(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or any(int(g) < 1 for g in match.groups()):
        raise BenchError(f"--input: expected CxHxW with positive sizes, such as 3x224x224; got '{text}'")
    c, h, w = (int(g) for g in match.groups())
    return c, h, w


def command(args: argparse.Namespace, console: Console) -> int:
    """`bench specs`: measure, write the JSON and Markdown files, print in the chosen format."""
    models = parse_models(args.models)
    input_shape = parse_input(args.input)
    check_folder(args.out, "--out")  # before minutes of measuring
    stderr = Console(stderr=True, highlight=False)
    report = run_specs(models, [args.device], args.batch, input_shape, amp=args.amp,
                       channels_last=args.channels_last, train=args.train, reporter=RichReporter(stderr),
                       repeats=args.repeats, warmup=args.warmup, threads=args.threads)
    markdown = specs_markdown(report)
    try:
        json_path, md_path = write_specs(report, markdown, args.out)
    except ResultNotWritten:
        _show(report, markdown, args.format, console)  # the measurements are not lost with the files
        raise
    _show(report, markdown, args.format, console)
    stderr.print(f"wrote {json_path} and {md_path}", soft_wrap=True)
    return 0


def _show(report, markdown: str, form: str, console: Console) -> None:
    """The report on stdout in the chosen format."""
    if form == "table":
        table = specs_table(report)
        # on a terminal rich fits the table to the screen; into a file or pipe it is printed whole
        width = None if console.is_terminal else max(console.width, console.measure(table).maximum)
        console.print(table, width=width)
    elif form == "md":
        console.out(markdown, highlight=False, end="")
    elif form == "csv":
        console.out(specs_csv(report), highlight=False, end="")
    else:
        console.out(specs_json(report), highlight=False)
