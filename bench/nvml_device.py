"""Which NVML device a CUDA device is. NVML numbers GPUs in PCI order and ignores
CUDA_VISIBLE_DEVICES, so a study worker given `CUDA_VISIBLE_DEVICES=3` whose torch sees "cuda:0"
must ask NVML for GPU 3: by the device's UUID, which both sides agree on. The environment
fingerprint and the GPU monitor both look the handle up here, so the name recorded and the
clocks, power limit and energy beside it come from one GPU.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any


def device_handle(pynvml: ModuleType, cuda_index: int) -> Any:
    """The NVML handle of CUDA device `cuda_index`: by UUID when torch knows it, else by the same
    index (older torch without `.uuid`, no CUDA runtime)."""
    uuid = None
    try:
        import torch

        uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
    except Exception:  # no .uuid or no CUDA runtime: fall back to the index
        uuid = None
    if uuid:
        try:
            return pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}")
        except pynvml.NVMLError:
            pass
    return pynvml.nvmlDeviceGetHandleByIndex(cuda_index)
