"""Fused kernels, each beside a plain-torch reference that CPU runs and tests use."""
