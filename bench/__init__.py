"""bench: a time-to-accuracy benchmark harness for PyTorch image classifiers."""

__version__ = "0.1.0"
