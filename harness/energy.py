"""CPU package energy from RAPL (Linux powercap), where this machine lets the harness read it.

Each package (`intel-rapl:N`, also on AMD under recent kernels) has a cumulative counter
`energy_uj` that wraps at `max_energy_range_uj`. A reading is the sum over packages since
`start()`, wraparound included as long as two readings are less than one wrap apart (a wrap
is about 262 kJ: over 40 minutes at 100 W). Where the counters are missing or unreadable (most
VMs and containers; unprivileged users since Linux 5.10), energy is None, "not available",
never 0. The GPU's board energy comes from NVML (harness.monitor).
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

RAPL_ROOT = Path("/sys/class/powercap")
PACKAGE = re.compile(r"^intel-rapl:\d+$")  # packages; intel-rapl:N:M are their sub-domains (cores, dram)


class Rapl:
    """The packages' energy counters, read as joules since `start()`."""

    def __init__(self, counters: list[tuple[Path, int]]):
        self.counters = counters  # (energy_uj file, max_energy_range_uj)
        self._lock = threading.Lock()
        self._last: list[int] = []
        self._total_uj = 0

    @classmethod
    def open(cls, root: Path = RAPL_ROOT) -> tuple[Rapl | None, str]:
        """The readable package counters under `root`, or None and why not."""
        try:
            domains = sorted(p for p in Path(root).iterdir() if PACKAGE.match(p.name))
        except OSError:
            domains = []
        if not domains:
            return None, f"CPU energy not available: no RAPL package counters under {root}"
        counters = []
        for domain in domains:
            try:
                _read_uj(domain / "energy_uj")
                counters.append((domain / "energy_uj", _read_uj(domain / "max_energy_range_uj")))
            except (OSError, ValueError) as exc:
                return (
                    None,
                    f"CPU energy not available: {domain / 'energy_uj'} cannot be read ({exc.__class__.__name__})",
                )
        return cls(counters), ""

    def start(self) -> Rapl:
        with self._lock:
            self._last = [_read_uj(path) for path, _ in self.counters]
            self._total_uj = 0
        return self

    def read(self) -> float | None:
        """Joules since `start()`; None when a counter stopped being readable."""
        with self._lock:
            try:
                now = [_read_uj(path) for path, _ in self.counters]
            except (OSError, ValueError):
                return None
            for i, ((_, wrap), value) in enumerate(zip(self.counters, now)):
                delta = value - self._last[i]
                self._total_uj += delta + wrap if delta < 0 else delta
            self._last = now
            return self._total_uj / 1e6


def _read_uj(path: Path) -> int:
    return int(Path(path).read_text().strip())
