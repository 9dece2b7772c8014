"""The one exception type for bad input and unmet preconditions.

A BenchError carries a single line for the user: what is wrong, where, and what
to do. The CLI prints it without a traceback and exits non-zero; anything else
that escapes is a bug and keeps its traceback.
"""


class BenchError(Exception):
    """User-facing error: its message is one line, shown as is."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))
