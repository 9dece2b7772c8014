"""The environment fingerprint recorded in every result: machine, software, accelerator."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import torch

import bench

REPO_ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _ram_gb() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def _gpu() -> dict[str, Any] | None:
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    info: dict[str, Any] = {
        "name": props.name,
        "count": torch.cuda.device_count(),
        "memory_gb": props.total_memory / 2**30,
        "capability": f"{props.major}.{props.minor}",
        "driver": None,
    }
    try:
        import pynvml

        pynvml.nvmlInit()
        driver = pynvml.nvmlSystemGetDriverVersion()
        info["driver"] = driver.decode() if isinstance(driver, bytes) else driver
    except Exception as exc:  # no NVML: the driver version is unknown, say why
        info["driver_reason"] = f"NVML unavailable ({type(exc).__name__})"
    return info


def code_version() -> dict[str, Any]:
    out: dict[str, Any] = {"version": bench.__version__, "git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                   capture_output=True, text=True, timeout=10)
            out["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def fingerprint(device: torch.device | None = None) -> dict[str, Any]:
    try:
        import nvidia.dali as dali  # optional loader
        dali_version = dali.__version__
    except ImportError:
        dali_version = None
    return {
        "device": device.type if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"),
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": _gpu(),
        "cpu": {"model": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                "fast_bf16": cpu_has_fast_bf16()},
        "ram_gb": _ram_gb(),
        "dali": dali_version,
    }


def cpu_has_fast_bf16() -> bool:
    """bf16 pays on CPUs with native bf16 dot products (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_is_fast(device: torch.device) -> bool:
    """The one rule for "bf16 is this device's fast arithmetic": the trainer's precision=auto
    and the matmul rate behind MFU both follow it."""
    return device.type == "cuda" or cpu_has_fast_bf16()
