"""GPU monitoring through NVML (pynvml, from nvidia-ml-py) over a region of code.

    with GpuMonitor(device_index=0) as monitor:
        train()
        monitor.pause(); log_only_work(); monitor.resume()   # paused out, like the stopwatch
        train()
    figures = monitor.summary()

A background thread samples the device's used memory, utilization and power every
`interval_s` while the region is running (not while paused). Energy is the sum over the
running stretches of NVML's total-energy counter (millijoules since the driver loaded),
read at each start/resume and pause/stop; on GPUs whose counter is not supported
(pre-Volta, some virtualised GPUs) it falls back to trapezoid integration of the sampled
power within each stretch, and `energy_method` says which one was used. Mean power is
energy / running seconds. Power samples come from NVML's instantaneous power field
(NVML_FI_DEV_POWER_INSTANT) where the driver has it: nvmlDeviceGetPowerUsage is a one-second
moving average on recent GPUs, too slow for a region of a few seconds; `power_source` says
which was read.

Where a figure cannot be measured (no CUDA, no NVML library, a query the GPU does not
support) it is None and `reason` says why -- never 0 and never a guess. Without NVML or
CUDA no thread is started, nothing raises, and the reason is told once per process
through the reporter, not once per monitor.

Cost: a sample is three NVML calls, and each (a ctypes call) releases the GIL and must
win it back from the busy main thread. On an idle machine that is microseconds; on an
oversubscribed CPU the main thread waits for the sampler to be scheduled, and
tests/perf/test_monitor_overhead.py measured a CPU-bound loop 20-30% slower at a 50 ms
interval (against ~1% with no-op queries). Prefer a long interval where the CPU is busy.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from bench.nvml_device import device_handle
from bench.progress import Reporter

log = logging.getLogger(__name__)

BYTES_PER_MB = 2**20  # "MB" in this project's memory figures means MiB, as torch.cuda reports them

# Reasons already told, so a loop of monitors on a machine without a GPU says it once.
_told: set[str] = set()
_told_lock = threading.Lock()


def _tell_once(reason: str, reporter: Reporter | None) -> None:
    with _told_lock:
        if reason in _told:
            return
        _told.add(reason)
    message = f"GPU monitor: {reason}; GPU memory, utilization, power and energy are null"
    if reporter is not None:
        reporter.notice(message)
    else:
        log.info(message)


@dataclass(frozen=True)
class Sample:
    """One reading; a field is None when its query is not supported on this device."""

    t: float                      # time.perf_counter() seconds
    memory_used_bytes: int | None
    utilization_pct: float | None
    power_w: float | None


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


class GpuMonitor:
    """Samples one GPU through NVML while the `with` block runs; see the module docstring.

    `device_index` is the CUDA device index; it is mapped to the NVML device by UUID
    where torch can say the UUID (CUDA_VISIBLE_DEVICES may renumber devices), else used
    as the NVML index directly.
    """

    def __init__(self, device_index: int = 0, interval_s: float = 0.05, reporter: Reporter | None = None):
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.device_index = device_index
        self.interval_s = interval_s
        self._reporter = reporter
        self._nvml: ModuleType | None = None
        self._handle: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._samples: list[Sample] = []
        # Query name -> why it is not available; a query that fails once is not asked again.
        self._unsupported: dict[str, str] = {}
        self._reason: str | None = None
        self._expected = False  # no CUDA device at all: the record says why the GPU figures are null
        self._lock = threading.Lock()       # a sample is kept only while the region runs
        self._running = False
        self._stretch_start: float | None = None
        self._stretch_energy_mj: int | None = None
        self._stretches: list[tuple[int, int]] = []  # (first, end) sample positions of each running stretch
        self._running_s = 0.0
        self._energy_mj: int | None = 0       # None once a stretch's counter reading failed
        self._power_source: str | None = None
        self._t_start: float | None = None
        self._t_end: float | None = None

    # ------------------------------------------------------------------ region

    def __enter__(self) -> "GpuMonitor":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def samples(self) -> tuple[Sample, ...]:
        """The readings so far, oldest first (complete once the monitor has stopped)."""
        return tuple(self._samples)

    @property
    def active(self) -> bool:
        """True while NVML is open for this monitor (between a successful start and stop)."""
        return self._handle is not None

    def start(self) -> None:
        if self._thread is not None or self._t_start is not None:
            raise RuntimeError("a GpuMonitor measures one region; make a new one for the next")
        self._t_start = time.perf_counter()
        self._open()
        if self._handle is None:
            if self._expected:  # a CPU run: no GPU to monitor is what was asked for, not news
                log.info("GPU monitor: %s", self._reason)
            else:
                _tell_once(self._reason or "NVML unavailable", self._reporter)
            return
        self.resume()
        self._thread = threading.Thread(target=self._run, name=f"gpu-monitor-{self.device_index}", daemon=True)
        self._thread.start()

    def resume(self) -> None:
        """Starts a running stretch: energy counted and samples kept from here."""
        if self._handle is None or self._running:
            return
        energy = self._query("energy", self._nvml.nvmlDeviceGetTotalEnergyConsumption)
        with self._lock:
            self._stretch_energy_mj = energy
            self._stretch_start = time.perf_counter()
            self._stretches.append((len(self._samples), len(self._samples)))
            self._running = True
        self._keep(self._sample())  # the stretch's first reading, before the thread's next wait

    def pause(self) -> None:
        """Ends a running stretch (the stopwatch pauses for work outside the timed region)."""
        if self._handle is None or not self._running:
            return
        self._keep(self._sample())  # a last reading at the stretch's end, so integration covers it all
        energy = self._query("energy", self._nvml.nvmlDeviceGetTotalEnergyConsumption)
        with self._lock:
            self._running = False
            self._running_s += time.perf_counter() - self._stretch_start
            if energy is None or self._stretch_energy_mj is None or self._energy_mj is None:
                self._energy_mj = None
            else:
                self._energy_mj += energy - self._stretch_energy_mj

    def stop(self) -> None:
        if self._t_end is not None:
            return
        try:
            self.pause()
        finally:
            if self._thread is not None:
                self._stop.set()
                self._thread.join()
                self._thread = None
            if self._handle is not None:
                self._close()
            self._t_end = time.perf_counter()

    def _keep(self, sample: "Sample") -> None:
        with self._lock:
            if self._running:
                self._samples.append(sample)
                first, _ = self._stretches[-1]
                self._stretches[-1] = (first, len(self._samples))

    # ------------------------------------------------------------------ NVML

    def _open(self) -> None:
        if not _cuda_available():
            self._reason = "no CUDA device (torch.cuda.is_available() is False)"
            self._expected = True
            return
        try:
            import pynvml
        except ImportError:
            self._reason = "pynvml is not installed (pip install nvidia-ml-py)"
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:  # NVMLError_LibraryNotFound where no driver is installed
            self._reason = f"NVML unavailable ({type(exc).__name__}: {exc})"
            return
        try:
            self._handle = device_handle(pynvml, self.device_index)
        except pynvml.NVMLError as exc:
            self._reason = f"NVML has no device {self.device_index} ({type(exc).__name__}: {exc})"
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError:
                pass
            return
        self._nvml = pynvml

    def _close(self) -> None:
        try:
            self._nvml.nvmlShutdown()  # NVML counts inits: this releases only our own
        except self._nvml.NVMLError:
            pass
        self._handle = None

    def _query(self, name: str, fn: Callable[[Any], Any]) -> Any:
        """One NVML query, or None once it has failed (and the failure is kept as a reason)."""
        if name in self._unsupported:
            return None
        try:
            return fn(self._handle)
        except self._nvml.NVMLError as exc:
            self._unsupported[name] = f"{type(exc).__name__}: {exc}"
            return None

    def _sample(self) -> Sample:
        nvml = self._nvml
        memory = self._query("memory", nvml.nvmlDeviceGetMemoryInfo)
        utilization = self._query("utilization", nvml.nvmlDeviceGetUtilizationRates)
        return Sample(
            t=time.perf_counter(),
            memory_used_bytes=None if memory is None else int(memory.used),
            utilization_pct=None if utilization is None else float(utilization.gpu),
            power_w=self._power_w(),
        )

    def _power_w(self) -> float | None:
        """Instantaneous power where NVML has the field, else the (averaged) power usage."""
        if self._power_source in (None, "instant"):
            milliwatts = self._query("instant power", self._instant_power_mw)
            if milliwatts is not None:
                self._power_source = "instant"
                return milliwatts / 1000.0
        milliwatts = self._query("power", self._nvml.nvmlDeviceGetPowerUsage)
        if milliwatts is None:
            return None
        self._power_source = "power-usage (1 s average on recent GPUs)"
        return milliwatts / 1000.0

    def _instant_power_mw(self, handle: Any) -> float:
        nvml = self._nvml
        field = getattr(nvml, "NVML_FI_DEV_POWER_INSTANT", None)
        if field is None or not hasattr(nvml, "nvmlDeviceGetFieldValues"):
            raise nvml.NVMLError("this pynvml has no instantaneous power field")
        value = nvml.nvmlDeviceGetFieldValues(handle, [field])[0]
        if value.nvmlReturn != 0:
            raise nvml.NVMLError(f"field value query returned {value.nvmlReturn}")
        return float(value.value.uiVal)

    def _run(self) -> None:
        # Event.wait rather than sleep: stop() wakes the thread at once instead of after an interval.
        while not self._stop.wait(self.interval_s):
            if self._running:
                self._keep(self._sample())

    # ------------------------------------------------------------------ figures

    def summary(self) -> dict[str, Any]:
        """The region's figures (stop the monitor first); None with `reason` where not measured."""
        if self._thread is not None:
            raise RuntimeError("summary() while the monitor is running; leave the `with` block first")
        duration = None if self._t_start is None or self._t_end is None else self._t_end - self._t_start
        out: dict[str, Any] = {
            "device_index": self.device_index,
            "interval_s": self.interval_s,
            "duration_s": duration,
            "running_s": self._running_s,
            "stretches": len(self._stretches),
            "samples": len(self._samples),
            "peak_memory_used_mb": None,
            "mean_utilization_pct": None,
            "max_utilization_pct": None,
            "mean_power_w": None,
            "max_power_w": None,
            "power_source": self._power_source,
            "energy_j": None,
            "energy_method": None,
            "reason": None,
        }
        if self._t_start is None:
            out["reason"] = "the monitor was never started"
            return out
        if self._reason is not None:
            out["reason"] = self._reason
            return out

        memory = [s.memory_used_bytes for s in self._samples if s.memory_used_bytes is not None]
        utilization = [s.utilization_pct for s in self._samples if s.utilization_pct is not None]
        power_by_stretch = [[(s.t, s.power_w) for s in self._samples[first:end] if s.power_w is not None]
                            for first, end in self._stretches]
        power = [point for stretch in power_by_stretch for point in stretch]
        if memory:
            out["peak_memory_used_mb"] = max(memory) / BYTES_PER_MB
        if utilization:
            out["mean_utilization_pct"] = sum(utilization) / len(utilization)
            out["max_utilization_pct"] = max(utilization)
        if power:
            out["max_power_w"] = max(w for _, w in power)

        integrable = [stretch for stretch in power_by_stretch if len(stretch) >= 2]
        if self._energy_mj is not None and "energy" not in self._unsupported:
            out["energy_j"] = self._energy_mj / 1000.0
            out["energy_method"] = "counter"
        elif integrable:
            out["energy_j"] = sum(_trapezoid(stretch) for stretch in integrable)
            out["energy_method"] = "power-integration"
        if out["energy_j"] is not None and self._running_s > 0:
            out["mean_power_w"] = out["energy_j"] / self._running_s
        elif power:
            out["mean_power_w"] = sum(w for _, w in power) / len(power)

        why = [f"{name} query failed ({error})" for name, error in self._unsupported.items()
               if not (name == "energy" and out["energy_j"] is not None)
               and not (name == "instant power" and self._power_source is not None)]
        if out["energy_j"] is None and "energy" not in self._unsupported and "power" not in self._unsupported:
            why.append("too few power samples to integrate energy")
        out["reason"] = "; ".join(why) or None
        return out


def _trapezoid(points: list[tuple[float, float]]) -> float:
    """Integral of (t, watts) points over t, in joules."""
    return sum((t1 - t0) * (w0 + w1) / 2 for (t0, w0), (t1, w1) in zip(points, points[1:]))
