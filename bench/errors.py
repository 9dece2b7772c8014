"""The one exception type for bad input and unmet preconditions, and the one table of exit codes.

A BenchError carries a single line for the user: what is wrong, where, and what
to do. The CLI prints it without a traceback and exits non-zero; anything else
that escapes is a bug and keeps its traceback.
"""

# Exit codes of every bench command (bench run, bench sweep, the launcher, the reports).
EXIT_OK = 0             # PASS, or a command that did what it was asked
EXIT_FAIL = 1           # a verdict FAIL, or a check that found a regression
EXIT_BAD_INPUT = 2      # bad input: one line, no traceback, nothing run
EXIT_BROKEN = 3         # a run diverged or failed, a cell failed, a rank died, a bench bug
EXIT_VIEW_NOT_SAVED = 4  # the runs and verdict stand, but a view asked for (weights, MLPerf log) was not saved
EXIT_INCONCLUSIVE = 5   # bench check: no regression found, but a time could not be judged (the machine was busy)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it); finished runs kept
EXIT_TERMINATED = 143   # SIGTERM (128 + 15), taken as a Ctrl-C: finished runs kept


class BenchError(Exception):
    """User-facing error: its message is one line, shown as is."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


def did_you_mean(name: str, known, otherwise: str, cutoff: float = 0.4) -> str:
    """The end of an unknown-name error: up to three close names, else `otherwise` (where to look)."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3, cutoff=cutoff)
    return f"did you mean {', '.join(close)}?" if close else otherwise
