"""Monitoring: the phase's CPU and memory, and the GPU through NVML, sampled on a thread.

Samples go to `metrics.csv` (rewritten atomically every few seconds, so a killed
harness still leaves a readable file) and are summarised into a MonitorSummary.
NVML comes from the `nvidia-ml-py` package (module `pynvml`); tests may pass a
stand-in module with the same functions, since this machine has no GPU.
"""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.energy import RAPL_ROOT, Rapl
from harness.files import atomic_write_text
from harness.model import GpuSummary, MonitorSummary

IDLE_GPU_PERCENT = 5.0  # a "cuda" run whose GPU averages below this did not really use it
FLUSH_EVERY_S = 5.0
GPU_FIELDS = ("util", "mem_used_bytes", "power_w", "temp_c", "sm_clock_mhz", "energy_j")


def load_nvml():
    import pynvml

    return pynvml


class Gpus:
    """The GPUs one run may use, read through NVML; `None` from `open` when there are none."""

    def __init__(self, nvml: Any, handles: list[Any]):
        self.nvml = nvml
        self.handles = handles
        self.info = [self._describe(i, h) for i, h in enumerate(handles)]
        self.start_energy()

    def start_energy(self) -> None:
        """Count energy from now on (the GPUs are opened once per run, monitored per phase)."""
        self._energy_start = [self._energy_mj(h) for h in self.handles]
        self._power_energy_j = [0.0] * len(self.handles)  # integrated power, where no energy counter exists
        self._last: list[tuple[float, float] | None] = [None] * len(self.handles)

    @classmethod
    def open(cls, selector: str | None, nvml: Any = None) -> tuple[Gpus | None, str]:
        """The GPU named by index or UUID (all GPUs if None), or None and why not."""
        try:
            nvml = nvml or load_nvml()
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ImportError...
            return None, f"No GPU was visible to the harness (NVML: {exc}); GPU metrics are not available"
        try:
            count = nvml.nvmlDeviceGetCount()
            if count == 0:
                return None, "NVML found no GPU; GPU metrics are not available"
            if selector is None:
                handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            elif selector.isdigit():
                handles = [nvml.nvmlDeviceGetHandleByIndex(int(selector))]
            else:
                handles = [nvml.nvmlDeviceGetHandleByUUID(selector)]
            return cls(nvml, handles), ""
        except Exception as exc:
            return None, f"GPU {selector!r} could not be opened through NVML ({exc})"

    def _describe(self, position: int, handle) -> dict[str, Any]:
        nvml = self.nvml
        name = nvml.nvmlDeviceGetName(handle)
        uuid = nvml.nvmlDeviceGetUUID(handle)
        return {
            "index": _try(lambda: nvml.nvmlDeviceGetIndex(handle), position),
            "name": name.decode() if isinstance(name, bytes) else name,
            "uuid": uuid.decode() if isinstance(uuid, bytes) else uuid,
            "memory_total_bytes": int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
        }

    def driver(self) -> str | None:
        version = _try(self.nvml.nvmlSystemGetDriverVersion)
        return version.decode() if isinstance(version, bytes) else version

    def energy_method(self, i: int) -> str:
        """How GPU i's board energy is measured: NVML's counter (Volta and newer), else integrated power."""
        return "nvml_energy_counter" if self._energy_start[i] is not None else "integrated_power"

    def fingerprint(self) -> list[dict[str, Any]]:
        """Each GPU as it is now (the run's start): what a rerun compares against."""
        nvml, out = self.nvml, []
        for info, h in zip(self.info, self.handles):
            limit = _try(lambda: nvml.nvmlDeviceGetPowerManagementLimit(h) / 1000.0)
            out.append(
                {
                    **{k: info[k] for k in ("index", "name", "uuid")},
                    "power_limit_w": limit,
                    "sm_clock_mhz": _try(lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM)),
                    "memory_clock_mhz": _try(lambda: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_MEM)),
                    "temperature_c": _try(lambda: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU)),
                }
            )
        return out

    def _energy_mj(self, handle) -> float | None:
        return _try(lambda: float(self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle)))

    def read(self, now: float) -> list[dict[str, float | None]]:
        nvml, rows = self.nvml, []
        for i, h in enumerate(self.handles):
            power = _try(lambda: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0)
            energy_mj = self._energy_mj(h)
            if energy_mj is not None and self._energy_start[i] is not None:
                energy = (energy_mj - self._energy_start[i]) / 1000.0
            else:
                last = self._last[i]
                if power is not None and last is not None:
                    self._power_energy_j[i] += (power + last[1]) / 2 * (now - last[0])
                energy = self._power_energy_j[i] if power is not None else None
            if power is not None:
                self._last[i] = (now, power)
            rows.append(
                {
                    "util": _try(lambda: float(nvml.nvmlDeviceGetUtilizationRates(h).gpu)),
                    "mem_used_bytes": _try(lambda: float(nvml.nvmlDeviceGetMemoryInfo(h).used)),
                    "power_w": power,
                    "temp_c": _try(lambda: float(nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU))),
                    "sm_clock_mhz": _try(lambda: float(nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM))),
                    "energy_j": energy,
                }
            )
        return rows

    def close(self) -> None:
        _try(self.nvml.nvmlShutdown)


def _try(read: Callable[[], Any], default: Any = None) -> Any:
    """One NVML field; a field the GPU does not support is None, not an error."""
    try:
        return read()
    except Exception:
        return default


@dataclass
class Sample:
    t_s: float
    cpu_percent: float | None
    rss_bytes: int | None
    gpus: list[dict[str, float | None]]


class Monitor:
    """Samples `sample_tree` (the phase's CPU %, RSS) and the GPUs every `interval_s`."""

    def __init__(
        self,
        sample_tree: Callable[[], tuple[float | None, int | None]],
        gpus: Gpus | None,
        gpu_note: str,
        interval_s: float,
        csv_path: Path | None,
        rapl_root: Path = RAPL_ROOT,
    ):
        self.sample_tree = sample_tree
        self.gpus = gpus
        self.gpu_note = gpu_note
        self.interval_s = interval_s
        self.csv_path = Path(csv_path) if csv_path is not None else None  # None: summarised only (predict)
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="monitor", daemon=True)
        self._start = 0.0
        self.rapl, self.rapl_note = Rapl.open(rapl_root)

    def energy_so_far(self) -> tuple[float | None, float | None]:
        """(GPU board J, CPU package J) since the phase started: the GPUs as of the latest sample,
        RAPL read now; None where not measured."""
        latest = self.latest
        gpu = [g["energy_j"] for g in latest.gpus] if latest and latest.gpus else []
        gpu_j = sum(gpu) if gpu and None not in gpu else None
        return gpu_j, self.rapl.read() if self.rapl else None

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def start(self, started_monotonic: float) -> Monitor:
        self._start = started_monotonic
        if self.gpus:
            self.gpus.start_energy()
        if self.rapl:
            self.rapl.start()
        self._thread.start()
        return self

    def _loop(self) -> None:
        next_at, last_flush = time.monotonic(), time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            cpu, rss = self.sample_tree()
            gpus = self.gpus.read(now) if self.gpus else []
            self.samples.append(Sample(round(now - self._start, 3), cpu, rss, gpus))
            if now - last_flush >= FLUSH_EVERY_S:
                self.write_csv()
                last_flush = now
            next_at += self.interval_s
            self._stop.wait(max(next_at - time.monotonic(), 0.0))

    def stop(self) -> MonitorSummary:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.gpus:  # the GPUs read once more at the phase's end: the energy counters' closing value
            now = time.monotonic()
            self.samples.append(Sample(round(now - self._start, 3), None, None, self.gpus.read(now)))
        self.write_csv()
        return self.summary()

    def compute(self) -> tuple[float | None, float | None]:
        """(CPU seconds, GPU-busy seconds) over the samples so far: each sample's CPU % (and GPU
        utilization, summed over the GPUs) times the time since the previous sample. Sampled, so a
        process that lives between two samples is missed; None where nothing was read."""
        cpu_s = gpu_s = None
        previous = 0.0
        for s in self.samples:
            dt = max(s.t_s - previous, 0.0)
            previous = s.t_s
            if s.cpu_percent is not None:
                cpu_s = (cpu_s or 0.0) + s.cpu_percent / 100 * dt
            utils = [g["util"] for g in s.gpus if g.get("util") is not None]
            if utils:
                gpu_s = (gpu_s or 0.0) + sum(utils) / 100 * dt
        return (round(cpu_s, 2) if cpu_s is not None else None, round(gpu_s, 2) if gpu_s is not None else None)

    def write_csv(self) -> None:
        if self.csv_path is None:
            return
        samples = list(self.samples)
        n_gpus = len(self.gpus.handles) if self.gpus else 0
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(
            ["t_s", "cpu_percent", "rss_bytes"] + [f"gpu{i}_{f}" for i in range(n_gpus) for f in GPU_FIELDS]
        )
        for s in samples:
            row = [s.t_s, _cell(s.cpu_percent), _cell(s.rss_bytes)]
            for g in s.gpus:
                row += [_cell(g[f]) for f in GPU_FIELDS]
            writer.writerow(row)
        atomic_write_text(self.csv_path, out.getvalue())

    def summary(self) -> MonitorSummary:
        cpu = [s.cpu_percent for s in self.samples if s.cpu_percent is not None]
        rss = [s.rss_bytes for s in self.samples if s.rss_bytes is not None]
        summary = MonitorSummary(
            interval_s=self.interval_s,
            samples=len(self.samples),
            cpu_percent_mean=round(sum(cpu) / len(cpu), 1) if cpu else None,
            cpu_percent_max=round(max(cpu), 1) if cpu else None,
            rss_peak_bytes=max(rss) if rss else None,
            gpu_note=self.gpu_note,
            cpu_energy_j=round(cpu_j, 1) if self.rapl and (cpu_j := self.rapl.read()) is not None else None,
            cpu_energy_note="RAPL package energy" if self.rapl else self.rapl_note,
        )
        if self.gpus:
            summary.gpus = [self._gpu_summary(i) for i in range(len(self.gpus.handles))]
            for gpu in summary.gpus:
                if gpu.util_mean is not None and gpu.util_mean < IDLE_GPU_PERCENT:  # GPUs are opened for cuda runs only
                    summary.warnings.append(
                        f"the run claims cuda but GPU {gpu.index} ({gpu.name}) stayed idle "
                        f"(mean utilization {gpu.util_mean:.1f}%)"
                    )
        return summary

    def _gpu_summary(self, i: int) -> GpuSummary:
        def series(field: str) -> list[float]:
            return [s.gpus[i][field] for s in self.samples if s.gpus and s.gpus[i][field] is not None]

        util, mem, power = series("util"), series("mem_used_bytes"), series("power_w")
        temp, clock, energy = series("temp_c"), series("sm_clock_mhz"), series("energy_j")
        return GpuSummary(
            **self.gpus.info[i],
            util_mean=_mean(util),
            util_max=max(util) if util else None,
            memory_used_peak_bytes=int(max(mem)) if mem else None,
            power_mean_w=_mean(power),
            power_max_w=max(power) if power else None,
            energy_j=round(energy[-1], 1) if energy else None,
            energy_method=self.gpus.energy_method(i) if energy else None,
            temperature_max_c=max(temp) if temp else None,
            sm_clock_mean_mhz=_mean(clock),
        )


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return round(value, 3) if isinstance(value, float) else value
