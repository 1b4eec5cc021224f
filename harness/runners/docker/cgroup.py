"""A container's cgroup, read directly where this host shows it: CPU time, memory, its processes."""

from __future__ import annotations

import time
from pathlib import Path


class CgroupReader:
    """CPU time (ns) and memory of a container from its cgroup files; None when not visible here."""

    def __init__(self, cpu_file: Path, cpu_v2: bool, mem_usage: Path, mem_stat: Path):
        self.cpu_file, self.cpu_v2, self.mem_usage, self.mem_stat = cpu_file, cpu_v2, mem_usage, mem_stat
        self.procs_file = mem_usage.parent / "cgroup.procs"

    def processes(self) -> list[int] | None:
        """Host pids of every process in the container; None when this host does not show them."""
        try:
            return [int(line) for line in self.procs_file.read_text().split()]
        except (OSError, ValueError):
            return None

    @classmethod
    def find(cls, cid: str) -> CgroupReader | None:
        root = Path("/sys/fs/cgroup")
        for base in (root / "system.slice" / f"docker-{cid}.scope", root / "docker" / cid):
            if (base / "cpu.stat").is_file() and (base / "memory.current").is_file():
                return cls(base / "cpu.stat", True, base / "memory.current", base / "memory.stat")
        for cpu_dir in ("cpuacct", "cpu,cpuacct", "cpuacct,cpu"):
            for sub in (f"docker/{cid}", f"system.slice/docker-{cid}.scope"):
                cpu = root / cpu_dir / sub / "cpuacct.usage"
                mem = root / "memory" / sub
                if cpu.is_file() and (mem / "memory.usage_in_bytes").is_file():
                    return cls(cpu, False, mem / "memory.usage_in_bytes", mem / "memory.stat")
        return None

    def read(self) -> tuple[float, float, int] | None:
        try:
            if self.cpu_v2:
                stat = dict(line.split() for line in self.cpu_file.read_text().splitlines())
                cpu_ns = float(stat["usage_usec"]) * 1000
            else:
                cpu_ns = float(self.cpu_file.read_text())
            stamp = time.monotonic()
            usage = int(self.mem_usage.read_text())
            stats = dict(line.split() for line in self.mem_stat.read_text().splitlines())
            inactive = int(stats.get("total_inactive_file", stats.get("inactive_file", 0)))
            return stamp, cpu_ns, max(usage - inactive, 0)
        except (OSError, ValueError, KeyError):
            return None
