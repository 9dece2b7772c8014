import sys

from bench.cli import main
from bench.distributed import exit_rank, launched

code = main()
# A torchrun rank that finished skips the interpreter's teardown (see exit_rank). A failed or
# interrupted one keeps it: exiting at once would close its connections before the other ranks
# have seen their own Ctrl-C, and they would record a peer's failure instead of the interrupt.
if launched() and code == 0:
    exit_rank(code)
sys.exit(code)
