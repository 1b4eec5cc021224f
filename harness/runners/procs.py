"""A phase's processes as this host sees them: found, signalled, waited for, and their priority.

The local runner's phase is the harness's whole tree, the sandbox's is everything below its pid
namespace's init, and a container's is its cgroup where this host shows it; each runner says
where to look, and these do the rest the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator

import psutil

# The entry runs at the lowest priority, so the clock wins the CPU when an entry saturates it: at
# equal priority a kill sweep through many busy processes waits for a core at every step
# (benchmarks/deadline_precision.py measures it). An otherwise idle machine gives a low-priority
# entry every cycle all the same.
ENTRY_NICENESS = 19
SWEEP_S = 0.05  # how long a SIGTERM sweep keeps listing for children forked while it is sent

_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def send(pids: Iterable[int], sig: int) -> None:
    """kill(2) each pid; one gone since it was listed is skipped. Plain kill: a process's pid is
    not reused until its parent reaps it, and no sweep reaps."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def wait(process: subprocess.Popen, timeout: float) -> int | None:
    """The exit code once `process` has exited, None if it still runs after `timeout` seconds."""
    try:
        return process.wait(timeout=max(timeout, 0.0))
    except subprocess.TimeoutExpired:
        return None


def children(pid: int) -> list[int]:
    """The children of `pid`, read from each of its threads' `children` file."""
    if not _CHILDREN_FILES:
        try:
            return [child.pid for child in psutil.Process(pid).children()]
        except psutil.Error:
            return []
    found = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(child) for child in f.read().split()]
        except (OSError, ValueError):
            continue
    return found


def descendants(root: int) -> Iterator[int]:
    """Every live process below `root`, each yielded the moment it is found.

    Read by walking the `children` files down from `root`, which touches only the phase's own
    processes, and lazily: a sweep stops or signals each process as it is found, so a storm
    calms while the walk goes on. Processes come and go while the tree is read: one that vanishes
    is left out, never the rest; zombies are left out.
    """
    if not _CHILDREN_FILES:
        yield from _descendants_by_table(root)
        return
    stack, seen = [root], {root}
    while stack:
        for pid in children(stack.pop()):
            if pid not in seen:
                seen.add(pid)
                stack.append(pid)
                if not _zombie(pid):
                    yield pid


def start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (/proc/PID/stat, field 22), or None when it is
    gone. A process is the same one exactly when its pid and its ticks are: unlike a start time in
    seconds since the epoch, the ticks never move when the wall clock is adjusted."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rpartition(b")")[2].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # gone


def _descendants_by_table(root: int) -> list[int]:
    """The same through psutil's scan of the process table, where /proc has no children files."""
    try:
        found = psutil.Process(root).children(recursive=True)
    except psutil.Error:
        return []
    alive = []
    for process in found:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process.pid)
        except psutil.Error:
            pass
    return alive


def terminate(find: Callable[[], Iterable[int]], spared: Iterable[int] = ()) -> None:
    """SIGTERM to every process `find` lists except `spared`, each as soon as it is listed; then
    list again for children forked while it was sent, until a listing finds none new or SWEEP_S
    has passed. The first listing is always sent in full, however long it takes."""
    signalled = set(spared)
    end = time.monotonic() + SWEEP_S
    while True:
        before = len(signalled)
        for pid in find():
            if pid not in signalled:
                send([pid], signal.SIGTERM)
                signalled.add(pid)
        if len(signalled) == before or time.monotonic() > end:
            return
