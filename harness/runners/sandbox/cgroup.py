"""A phase's own cgroup, where this host lets the harness make one: memory, pids and CPU limits,
the phase's processes, and whether the kernel killed one of them for memory.

cgroup v1 (a hierarchy per controller under /sys/fs/cgroup/<controller>) and v2 (one hierarchy,
/sys/fs/cgroup) are both handled. The phase's group is made under the harness's own group of each
hierarchy, so a harness that was given a delegated subtree (a Slurm job, a systemd user scope)
works without root. The bwrap child joins it before it executes bwrap; everything the entry starts
inherits it.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD_US = 100_000


def _own_groups() -> dict[str, str]:
    """controller -> this process's group path ("" key: the v2 hierarchy)."""
    groups: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                groups[controller] = path
    except (OSError, ValueError):
        pass
    return groups


def _write(path: Path, value: str) -> bool:
    try:
        path.write_text(value)
        return True
    except OSError:
        return False


def _parents() -> list[Path]:
    """The harness's own group in each hierarchy it may make phase groups in."""
    groups = _own_groups()
    found = [ROOT / c / groups[c].lstrip("/") for c in ("memory", "pids", "cpu") if c in groups and (ROOT / c).is_dir()]
    if (ROOT / "cgroup.controllers").is_file() and "" in groups:
        found.append(ROOT / groups[""].lstrip("/"))
    return [p for p in found if p.is_dir()]


def remove_leftovers() -> int:
    """Remove the phase groups of harness processes that are gone (a `kill -9` of the harness:
    bwrap's --die-with-parent ends the phase, but its empty group stays). How many were removed."""
    removed = 0
    for parent in _parents():
        for group in parent.glob("haet-*-*"):
            pid = group.name.split("-")[1]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                try:
                    group.rmdir()
                    removed += 1
                except OSError:
                    pass  # still holds a process, or not ours to remove
    return removed


class PhaseCgroup:
    """The directories of one phase's group (one per v1 controller, or one v2 group)."""

    def __init__(self, dirs: dict[str, Path], version: int):
        self.dirs, self.version = dirs, version

    @property
    def kind(self) -> str:
        return f"cgroup v{self.version}"

    @property
    def limits_pids(self) -> bool:
        return "pids" in self.dirs

    @classmethod
    def create(cls, memory: int, pids: int, cpus: float) -> PhaseCgroup | None:
        """A new group with these limits, None where no writable memory controller is here."""
        name = f"haet-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        groups = _own_groups()
        if (ROOT / "memory").is_dir() and "memory" in groups:
            return cls._create_v1(name, groups, memory, pids, cpus)
        if (ROOT / "cgroup.controllers").is_file() and "" in groups:
            return cls._create_v2(name, groups[""], memory, pids, cpus)
        return None

    @classmethod
    def _create_v1(cls, name: str, groups: dict[str, str], memory: int, pids: int, cpus: float):
        dirs: dict[str, Path] = {}
        for controller in ("memory", "pids", "cpu"):
            if controller not in groups or not (ROOT / controller).is_dir():
                continue
            path = ROOT / controller / groups[controller].lstrip("/") / name
            try:
                path.mkdir()
            except OSError:
                continue
            dirs[controller] = path
        group = cls(dirs, 1)
        memory_dir = dirs.get("memory")
        # Swap counts too where the kernel accounts it (memsw): a limit that swap can exceed is no limit.
        if memory_dir is None or not _write(memory_dir / "memory.limit_in_bytes", str(memory)):
            group.remove()
            return None
        _write(memory_dir / "memory.memsw.limit_in_bytes", str(memory))
        if "pids" in dirs and not _write(dirs["pids"] / "pids.max", str(pids)):
            dirs.pop("pids").rmdir()
        if "cpu" in dirs:
            _write(dirs["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD_US))
            if not _write(dirs["cpu"] / "cpu.cfs_quota_us", str(int(cpus * CFS_PERIOD_US))):
                dirs.pop("cpu").rmdir()
        return group

    @classmethod
    def _create_v2(cls, name: str, own: str, memory: int, pids: int, cpus: float):
        path = ROOT / own.lstrip("/") / name
        try:
            path.mkdir()
        except OSError:
            return None
        group = cls({"memory": path}, 2)
        if not (_write(path / "memory.max", str(memory)) and _write(path / "memory.swap.max", "0")):
            group.remove()
            return None
        if _write(path / "pids.max", str(pids)):
            group.dirs["pids"] = path
        if _write(path / "cpu.max", f"{int(cpus * CFS_PERIOD_US)} {CFS_PERIOD_US}"):
            group.dirs["cpu"] = path
        return group

    def procs_files(self) -> list[str]:
        """Where a process writes its pid to join the group (read by the bwrap child before exec)."""
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def processes(self) -> list[int] | None:
        try:
            return [int(pid) for pid in (self.dirs["memory"] / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return None

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the group for going over its memory limit."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        try:
            for line in (self.dirs["memory"] / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self, wait_s: float = 5.0) -> None:
        """Remove the group once its processes are gone (the kernel refuses while any is left)."""
        end = time.monotonic() + wait_s
        for path in set(self.dirs.values()):
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > end:
                        break
                    time.sleep(0.05)
