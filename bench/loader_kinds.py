"""The loaders' names, apart from bench.loaders: importing bench.cli (what the `bench` script does
before main() runs) then imports no torch, so a Ctrl-C in those seconds reaches main()'s handler
(one line, exit 130) instead of printing a traceback."""

LOADER_KINDS = ("auto", "resident", "torch", "dali")
