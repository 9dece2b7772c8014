"""GpuMonitor: the no-NVML path for real (this machine has no driver), and the sampling and
energy logic against a scripted fake pynvml module injected through sys.modules."""

from __future__ import annotations

import itertools
import sys
import threading
import types
from types import SimpleNamespace

import pytest

from bench import gpu_monitor
from bench.gpu_monitor import BYTES_PER_MB, GpuMonitor
from bench.progress import RecordingReporter

FIGURES = ("peak_memory_used_mb", "mean_utilization_pct", "max_utilization_pct", "mean_power_w", "max_power_w",
           "energy_j", "energy_method")


class FakeNvml(types.ModuleType):
    """A stand-in for the pynvml module: each query returns the next scripted value (the last
    one repeats), or raises NVMLError_NotSupported where `unsupported` names it.

    `call_cost_s` makes each query sleep, as a real NVML call (a ctypes call that releases the
    GIL) takes tens of microseconds.
    """

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    class NVMLError_LibraryNotFound(NVMLError):
        pass

    def __init__(self, memory_mb=(100,), utilization=(50,), power_mw=(200_000,), energy_mj=(1_000_000, 1_250_000),
                 unsupported=(), call_cost_s: float = 0.0):
        super().__init__("pynvml")
        self.scripts = {"memory": list(memory_mb), "utilization": list(utilization), "power": list(power_mw),
                        "energy": list(energy_mj)}
        self.calls = {name: 0 for name in self.scripts}     # answered queries
        self.attempts = {name: 0 for name in self.scripts}  # answered or refused
        self.unsupported = set(unsupported)
        self.call_cost_s = call_cost_s
        self.inits = 0
        self.shutdowns = 0
        self._lock = threading.Lock()

    def _next(self, name: str):
        if self.call_cost_s:
            import time
            time.sleep(self.call_cost_s)
        with self._lock:
            self.attempts[name] += 1
        if name in self.unsupported:
            raise self.NVMLError_NotSupported("Not Supported")
        with self._lock:
            script = self.scripts[name]
            value = script[min(self.calls[name], len(script) - 1)]
            self.calls[name] += 1
        return value

    def nvmlInit(self):
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetHandleByIndex(self, index):
        return ("handle", index)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        raise self.NVMLError("unknown UUID")

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(used=self._next("memory") * BYTES_PER_MB, total=80 * 1024 * BYTES_PER_MB)

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=self._next("utilization"), memory=0)

    def nvmlDeviceGetPowerUsage(self, handle):
        return self._next("power")

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        return self._next("energy")


class FakeNvmlWithInstantPower(FakeNvml):
    """A newer driver: the instantaneous power field (milliwatts) beside the averaged reading."""

    NVML_FI_DEV_POWER_INSTANT = 186

    def __init__(self, instant_mw=(150_000,), **script):
        super().__init__(**script)
        self.scripts["instant"] = list(instant_mw)
        self.calls["instant"] = self.attempts["instant"] = 0

    def nvmlDeviceGetFieldValues(self, handle, field_ids):
        assert field_ids == [self.NVML_FI_DEV_POWER_INSTANT]
        return [SimpleNamespace(nvmlReturn=0, value=SimpleNamespace(uiVal=self._next("instant")))]


@pytest.fixture(autouse=True)
def fresh_notices(monkeypatch):
    monkeypatch.setattr(gpu_monitor, "_told", set())


@pytest.fixture
def fake_gpu(monkeypatch):
    """Install a FakeNvml as `pynvml` and pretend CUDA is there; returns a function that makes one."""
    def install(**script) -> FakeNvml:
        fake = FakeNvml(**script)
        monkeypatch.setitem(sys.modules, "pynvml", fake)
        monkeypatch.setattr(gpu_monitor, "_cuda_available", lambda: True)
        return fake
    return install


def fake_clock(monkeypatch, step_s: float = 0.5) -> None:
    """Every clock reading is `step_s` later than the one before, whichever thread reads it."""
    ticks = itertools.count()
    monkeypatch.setattr(gpu_monitor, "time", SimpleNamespace(perf_counter=lambda: next(ticks) * step_s))


def monitor_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("gpu-monitor")]


# ------------------------------------------------------------------ without NVML or CUDA, for real

def test_without_cuda_every_figure_is_null_with_reason_and_no_thread():
    reporter = RecordingReporter()
    threads_before = threading.active_count()
    with GpuMonitor(reporter=reporter) as monitor:
        assert monitor_threads() == [] and threading.active_count() == threads_before
    summary = monitor.summary()
    if gpu_monitor._cuda_available():
        pytest.skip("this machine has CUDA")
    assert all(summary[key] is None for key in FIGURES)
    assert summary["samples"] == 0
    assert "no CUDA device" in summary["reason"]
    # a CPU run asked for no GPU: the record says why the figures are null, the progress display
    # says nothing (it printed "GPU monitor: no CUDA device" inside every CPU run's progress bar)
    assert reporter.notices == []


def test_real_pynvml_without_driver_says_library_not_found_once(monkeypatch):
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    monkeypatch.setattr(gpu_monitor, "_cuda_available", lambda: True)  # get past the CUDA check to NVML
    reporter = RecordingReporter()
    summaries = []
    for _ in range(3):
        with GpuMonitor(reporter=reporter) as monitor:
            assert not monitor.active and monitor_threads() == []
        summaries.append(monitor.summary())
    assert all(s[key] is None for s in summaries for key in FIGURES)
    assert all("NVMLError_LibraryNotFound" in s["reason"] for s in summaries)
    assert len(reporter.notices) == 1 and "NVMLError_LibraryNotFound" in reporter.notices[0]


def test_missing_pynvml_package_is_a_reason_not_a_crash(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    monkeypatch.setattr(gpu_monitor, "_cuda_available", lambda: True)
    with GpuMonitor() as monitor:
        pass
    assert "nvidia-ml-py" in monitor.summary()["reason"]


# ------------------------------------------------------------------ sampling and energy, fake NVML

def test_counter_energy_peak_memory_and_utilization(fake_gpu):
    fake = fake_gpu(memory_mb=(100, 300, 700, 250), utilization=(10, 90, 50), energy_mj=(5_000_000, 5_123_456))
    with GpuMonitor(interval_s=0.001) as monitor:
        while fake.calls["memory"] < 5:  # let the thread take a few readings
            threading.Event().wait(0.001)
    s = monitor.summary()
    assert s["energy_method"] == "counter"
    assert s["energy_j"] == pytest.approx(123.456)
    assert s["peak_memory_used_mb"] == pytest.approx(700)
    assert s["max_utilization_pct"] == 90
    n = s["samples"]
    utilization = [10, 90] + [50] * (n - 2)
    assert s["mean_utilization_pct"] == pytest.approx(sum(utilization) / n)
    assert s["max_power_w"] == pytest.approx(200.0)
    # mean power is the counter's energy over the running seconds, not an average of power readings
    assert s["mean_power_w"] == pytest.approx(123.456 / s["running_s"])
    assert s["power_source"].startswith("power-usage")  # this fake NVML has no instantaneous field
    assert s["reason"] is None
    assert fake.inits == fake.shutdowns == 1


def test_energy_falls_back_to_power_integration_when_counter_not_supported(fake_gpu, monkeypatch):
    step = 0.5
    fake_clock(monkeypatch, step)
    # power ramps 100 W, 110 W, 120 W ... one value per reading
    fake = fake_gpu(power_mw=[100_000 + 10_000 * k for k in range(1000)], unsupported={"energy"})
    with GpuMonitor(interval_s=0.001) as monitor:
        while fake.calls["power"] < 4:
            threading.Event().wait(0.001)
    s = monitor.summary()
    assert s["energy_method"] == "power-integration"
    readings = [sample.power_w for sample in monitor.samples]
    n = len(readings)
    assert readings == [100.0 + 10.0 * k for k in range(n)]
    # consecutive readings are one clock step apart: trapezoids of a linear ramp, by hand
    by_hand = sum(step * ((100 + 10 * k) + (100 + 10 * (k + 1))) / 2 for k in range(n - 1))
    assert s["energy_j"] == pytest.approx(by_hand)
    assert s["mean_power_w"] == pytest.approx(by_hand / s["running_s"])
    assert s["max_power_w"] == pytest.approx(100.0 + 10.0 * (n - 1))
    assert s["reason"] is None  # energy is measured, only by the other method


def test_no_energy_counter_and_no_power_leaves_energy_null_with_reason(fake_gpu):
    fake_gpu(unsupported={"energy", "power"})
    with GpuMonitor(interval_s=0.001) as monitor:
        pass
    s = monitor.summary()
    assert s["energy_j"] is None and s["energy_method"] is None and s["mean_power_w"] is None
    assert "power query failed" in s["reason"] and "energy query failed" in s["reason"]
    assert s["peak_memory_used_mb"] == pytest.approx(100)  # what is supported is still measured


def test_unsupported_query_is_not_asked_again(fake_gpu):
    fake = fake_gpu(unsupported={"utilization"})
    with GpuMonitor(interval_s=0.001) as monitor:
        while fake.calls["memory"] < 5:
            threading.Event().wait(0.001)
    assert monitor.summary()["mean_utilization_pct"] is None
    assert fake.attempts["utilization"] == 1  # refused once, then never asked again
    assert fake.attempts["memory"] >= 5


def test_thread_stops_at_exit_even_when_the_region_raises(fake_gpu):
    fake_gpu()
    with pytest.raises(KeyError):
        with GpuMonitor(interval_s=0.001) as monitor:
            assert monitor.active and len(monitor_threads()) == 1
            raise KeyError("boom")
    assert monitor_threads() == []
    assert not monitor.active
    count = monitor.summary()["samples"]
    threading.Event().wait(0.01)
    assert monitor.summary()["samples"] == count  # nothing samples after the region


def test_a_monitor_measures_one_region(fake_gpu):
    fake_gpu()
    monitor = GpuMonitor()
    with monitor:
        with pytest.raises(RuntimeError, match="running"):
            monitor.summary()
    with pytest.raises(RuntimeError, match="one region"):
        monitor.start()


def test_never_started_monitor_says_so():
    assert GpuMonitor().summary()["reason"] == "the monitor was never started"


def test_missing_device_index_is_a_reason(fake_gpu, monkeypatch):
    fake = fake_gpu()

    def no_such_device(index):
        raise fake.NVMLError("Invalid Argument")
    monkeypatch.setattr(fake, "nvmlDeviceGetHandleByIndex", no_such_device)
    with GpuMonitor(device_index=7) as monitor:
        assert monitor_threads() == []
    assert "NVML has no device 7" in monitor.summary()["reason"]
    assert fake.inits == fake.shutdowns == 1


def test_paused_stretches_count_no_energy_and_keep_no_samples(fake_gpu):
    # counter readings: start 1,000 J, pause 1,100 J, resume 5,000 J, stop 5,050 J (in mJ)
    fake = fake_gpu(energy_mj=(1_000_000, 1_100_000, 5_000_000, 5_050_000))
    monitor = GpuMonitor(interval_s=0.001)
    monitor.start()
    while fake.calls["memory"] < 3:
        threading.Event().wait(0.001)
    monitor.pause()
    kept = len(monitor.samples)
    asked = fake.calls["memory"]
    threading.Event().wait(0.02)  # the thread keeps nothing (and asks nothing) while paused
    assert len(monitor.samples) == kept and fake.calls["memory"] == asked
    monitor.resume()
    monitor.stop()
    s = monitor.summary()
    assert s["energy_j"] == pytest.approx(150.0)  # 100 J + 50 J: the paused 3,900 J are not the region's
    assert s["stretches"] == 2 and s["running_s"] < s["duration_s"]
    assert s["mean_power_w"] == pytest.approx(150.0 / s["running_s"])


def test_instantaneous_power_field_is_preferred_to_the_averaged_reading(monkeypatch):
    fake = FakeNvmlWithInstantPower(instant_mw=(150_000, 250_000), power_mw=(999_000,), unsupported={"energy"})
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.setattr(gpu_monitor, "_cuda_available", lambda: True)
    with GpuMonitor(interval_s=0.001) as monitor:
        while fake.calls["instant"] < 3:
            threading.Event().wait(0.001)
    s = monitor.summary()
    assert s["power_source"] == "instant" and fake.attempts["power"] == 0
    assert s["max_power_w"] == pytest.approx(250.0)
    assert s["energy_method"] == "power-integration"


def test_monitor_pauses_with_the_stopwatch(fake_gpu):
    from bench.measure import Stopwatch, TimedRegion

    fake_gpu(energy_mj=(0, 10_000, 500_000, 520_000))
    region = TimedRegion(Stopwatch(torch_cpu()), GpuMonitor(interval_s=0.001))
    region.start()
    region.pause()
    region.resume()
    seconds = region.stop()
    s = region.monitor.summary()
    assert s["energy_j"] == pytest.approx(30.0) and s["stretches"] == 2
    assert seconds == pytest.approx(s["running_s"], abs=0.05)


def torch_cpu():
    import torch

    return torch.device("cpu")
