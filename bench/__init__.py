"""bench: a time-to-accuracy benchmark harness for PyTorch image classifiers.

The Python API (bench.api) is reached from here lazily: `import bench` loads neither torch nor
pandas; `bench.run` loads torch when it trains, `bench.read_results` pandas when it reads.
"""

__version__ = "0.1.0"

_API = ("run", "load_suite", "read_results", "RunResult", "ResultTables")
__all__ = [*_API, "BenchError", "__version__"]


def __getattr__(name: str):
    if name in _API:
        from bench import api

        return getattr(api, name)
    if name == "BenchError":
        from bench.errors import BenchError

        return BenchError
    raise AttributeError(f"module 'bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
