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
from bench.nvml_device import device_handle

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
        # to 0.1 GiB, as a machine's memory is read (it printed as 23.540279388427734)
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _gpu() -> dict[str, Any] | None:
    if not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device()  # the device this process trains on (CUDA_VISIBLE_DEVICES applied)
    props = torch.cuda.get_device_properties(index)
    info: dict[str, Any] = {
        "name": props.name,
        "count": torch.cuda.device_count(),
        "memory_gb": props.total_memory / 2**30,
        "capability": f"{props.major}.{props.minor}",
        "driver": None,
    }
    info.update(_nvml_facts(index))
    return info


def _nvml_facts(cuda_index: int) -> dict[str, Any]:
    """What bounds a GPU's speed beside its name: driver, power limit, clocks, MIG mode.
    A figure NVML cannot give is None, with the reasons under `nvml_reason`."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:  # no NVML: every figure is unknown, say why
        return {"nvml_reason": f"NVML unavailable ({type(exc).__name__})"}
    facts: dict[str, Any] = {}
    failed: list[str] = []

    def ask(key: str, query: Any, convert: Any = lambda v: v) -> None:
        try:
            facts[key] = convert(query())
        except Exception as exc:  # a query this GPU or driver does not support
            facts[key] = None
            failed.append(f"{key}: {type(exc).__name__}")

    def text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    try:
        handle = device_handle(pynvml, cuda_index)
        ask("driver", pynvml.nvmlSystemGetDriverVersion, text)
        ask("power_limit_w", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(handle), lambda mw: mw / 1000.0)
        ask("sm_clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))
        ask("max_sm_clock_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM))
        ask("memory_clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM))
        ask("max_memory_clock_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_MEM))
        # (current, pending); a GPU without MIG support raises NotSupported
        ask("mig_mode", lambda: pynvml.nvmlDeviceGetMigMode(handle),
            lambda mode: "enabled" if mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE else "disabled")
    except Exception as exc:
        failed.append(f"device {cuda_index}: {type(exc).__name__}")
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:
            pass
    if failed:
        facts["nvml_reason"] = "; ".join(failed)
    return facts


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def code_version() -> dict[str, Any]:
    out: dict[str, Any] = {"version": bench.__version__, "git_commit": None, "git_dirty": None}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10)
        if commit.returncode == 0:
            out["git_commit"] = commit.stdout.strip()
            # results/ holds what the code wrote, not what it is: a sweep writing its own cells
            # must not mark its later cells as run by modified code
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                    ":(exclude)results"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
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
        "triton": _triton_version(),
        "gpu": _gpu(),
        "cpu": {"model": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                "fast_bf16": cpu_has_fast_bf16(), "isa": cpu_isa(), "onednn_max_isa": onednn_max_isa()},
        "ram_gb": _ram_gb(),
        "dali": dali_version,
    }


# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA, or its older name DNNL_MAX_CPU_ISA) below which it has no
# native bf16 dot product: a CPU with AVX512-BF16 run under one of these computes bf16 as slowly as a
# CPU without it (containers and reproducibility set-ups cap the ISA this way; so did issue 21's AVX2
# measurements on an AVX-512 machine)
_ONEDNN_CAPS_WITHOUT_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"}


def onednn_max_isa() -> str | None:
    """The ISA cap set for oneDNN (convolutions and matmuls on CPU), or None where none is set."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return cap.strip().upper() if cap and cap.strip() else None


def cpu_isa() -> str:
    """The vector ISA torch's own CPU kernels dispatch to (AVX2, AVX512, ...): ATEN_CPU_CAPABILITY
    can cap it below what the CPU has."""
    return torch.backends.cpu.get_cpu_capability()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo); empty where the OS does not say."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return frozenset()
    return frozenset(line.split(":", 1)[-1].split())


def cpu_has_fast_bf16() -> bool:
    """bf16 pays on CPUs with native bf16 dot products (AVX512-BF16 or AMX) that oneDNN may use."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags()) and onednn_max_isa() not in _ONEDNN_CAPS_WITHOUT_BF16


def bf16_is_fast(device: torch.device) -> bool:
    """The one rule for "bf16 is this device's fast arithmetic": the trainer's precision=auto
    and the matmul rate behind MFU both follow it."""
    return device.type == "cuda" or cpu_has_fast_bf16()
