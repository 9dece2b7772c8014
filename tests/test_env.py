"""The environment fingerprint: what bounds a GPU's speed is recorded beside its name."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch

from bench import env
from tests.test_gpu_monitor import FakeNvml


class FakeNvmlWithFacts(FakeNvml):
    NVML_CLOCK_SM, NVML_CLOCK_MEM, NVML_DEVICE_MIG_ENABLE = 1, 2, 1

    def nvmlSystemGetDriverVersion(self):
        return b"580.65.06"

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        return 700_000

    def nvmlDeviceGetClockInfo(self, handle, kind):
        return {1: 1980, 2: 2619}[kind]

    def nvmlDeviceGetMaxClockInfo(self, handle, kind):
        return {1: 1980, 2: 2619}[kind]

    def nvmlDeviceGetMigMode(self, handle):
        raise self.NVMLError_NotSupported("Not Supported")


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(
        name="NVIDIA H100 80GB HBM3", total_memory=80 * 2**30, major=9, minor=0))


def test_gpu_fingerprint_has_driver_power_limit_clocks_and_mig_mode(fake_cuda, monkeypatch):
    fake = FakeNvmlWithFacts()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    gpu = env._gpu()
    assert gpu["name"] == "NVIDIA H100 80GB HBM3" and gpu["count"] == 1
    assert gpu["driver"] == "580.65.06"
    assert gpu["power_limit_w"] == 700.0
    assert gpu["sm_clock_mhz"] == 1980 and gpu["max_memory_clock_mhz"] == 2619
    assert gpu["mig_mode"] is None and "mig_mode: NVMLError_NotSupported" in gpu["nvml_reason"]
    assert fake.inits == fake.shutdowns == 1  # NVML released after the questions


def test_gpu_fingerprint_without_nvml_says_why(fake_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    gpu = env._gpu()
    assert gpu["name"].startswith("NVIDIA") and "NVML unavailable" in gpu["nvml_reason"]


def test_fingerprint_names_the_software_versions():
    info = env.fingerprint(torch.device("cpu"))
    for key in ("torch", "cuda", "cudnn", "triton", "dali", "python"):
        assert key in info
    try:
        import triton
    except ImportError:
        assert info["triton"] is None
    else:
        assert info["triton"] == triton.__version__


@pytest.mark.parametrize("cap, fast", [(None, True), ("AVX512_CORE_BF16", True), ("avx512_core_amx", True),
                                        ("AVX2", False), ("avx512_core", False), ("AVX2_VNNI", False)])
def test_a_onednn_isa_cap_below_bf16_makes_bf16_slow(monkeypatch, cap, fast):
    """A CPU with AVX512-BF16 under ONEDNN_MAX_CPU_ISA=AVX2 computes bf16 as slowly as one without it:
    the fingerprint, the speed gate's threshold and the MFU peak must not call it fast."""
    monkeypatch.setattr(env, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    assert env.cpu_has_fast_bf16() is fast
    cpu = env.fingerprint(torch.device("cpu"))["cpu"]
    assert cpu["fast_bf16"] is fast and cpu["onednn_max_isa"] == (cap.upper() if cap else None)
    assert cpu["isa"] == torch.backends.cpu.get_cpu_capability()


def test_a_cpu_without_bf16_flags_is_never_fast(monkeypatch):
    monkeypatch.setattr(env, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    assert env.cpu_has_fast_bf16() is False


def test_git_dirty_is_about_the_code_not_the_results_it_wrote(tmp_path, monkeypatch):
    """A sweep writes result files into the repository's results/ as it goes: its later cells
    must still say they ran clean code, while an edited source file makes the code dirty."""
    import subprocess

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "a.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(env, "REPO_ROOT", tmp_path)
    assert env.code_version()["git_dirty"] is False
    (tmp_path / "results" / "a.json").write_text('{"cell": 1}')
    (tmp_path / "results" / "b.json").write_text("{}")
    assert env.code_version()["git_dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert env.code_version()["git_dirty"] is True


def test_gpu_fingerprint_asks_nvml_about_the_gpu_this_process_trains_on(fake_cuda, monkeypatch):
    # CUDA_VISIBLE_DEVICES=3: torch's device 0 is NVML's GPU 3, found by UUID. By index 0 the
    # record held GPU 3's name beside GPU 0's clocks and power limit.
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: SimpleNamespace(
        name="NVIDIA H100 80GB HBM3", total_memory=80 * 2**30, major=9, minor=0, uuid="abc-3"))

    class ByUuid(FakeNvmlWithFacts):
        def nvmlDeviceGetHandleByUUID(self, uuid):
            return ("handle", uuid)

        def nvmlDeviceGetEnforcedPowerLimit(self, handle):
            return {("handle", "GPU-abc-3"): 350_000}.get(handle, 700_000)

    monkeypatch.setitem(sys.modules, "pynvml", ByUuid())
    assert env._gpu()["power_limit_w"] == 350.0


def test_ram_is_given_to_a_tenth_of_a_gib():
    from bench.env import _ram_gb

    ram = _ram_gb()
    assert ram is None or (ram > 0 and ram == round(ram, 1) and len(repr(ram).split(".")[-1]) == 1)
