"""The local runner: a phase as a process tree on this machine.

Not a sandbox: the submission runs as the harness's user and can read what that
user can (docs/security.md). Use it for development and trusted entries; the
Docker runner is the isolation boundary. What it does guarantee is the clock:
every process the phase starts is found and killed, including children that
double-fork or call setsid, because the harness makes itself a child subreaper
(orphans re-parent to it instead of to init).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import psutil

from harness.clock import Deadline
from harness.contract import phase_environment
from harness.checkpoints import checkpoint_times
from harness.walk import WalkLimit, walk
from harness.options import DEFAULT_GPU
from harness.logs import LogSink
from harness.runners.base import ExitInfo, PhaseSpec, sample_processes

PR_SET_CHILD_SUBREAPER = 36
# The entry runs at the lowest priority, so the clock wins the CPU when an entry saturates it: with
# 64 busy processes on 2 cores at equal priority, a kill sweep took 270 ms (benchmarks/deadline_precision.py).
# An otherwise idle machine gives a low-priority entry every cycle all the same.
ENTRY_NICENESS = 19
NICE = shutil.which("nice")
PASSED_THROUGH = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _phase_pids() -> list[int]:
    """Every live descendant of the harness: during a phase, the phase's whole tree."""
    return list(_walk_phase())


def _walk_phase(on_found: Callable[[int], None] = lambda pid: None) -> Iterator[int]:
    """The phase's live processes, each handed to `on_found` the moment it is found.

    The harness runs one phase at a time per process, and as a subreaper it inherits orphans,
    so its descendants are the phase's whole tree, escaped processes included. They are read by
    walking each process's `children` files down from the harness, which touches only the
    phase's processes; a kill sweep stops each process as it is found, so a storm calms while
    the walk goes on (listing 76 busy processes first took 49 ms on 2 cores). Processes come and
    go while the tree is read: one that vanishes is left out, never the rest.
    """
    if not _CHILDREN_FILES:
        for pid in _phase_pids_by_table():
            on_found(pid)
            yield pid
        return
    seen: set[int] = set()
    stack = [os.getpid()]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    children = [int(pid) for pid in f.read().split()]
            except (OSError, ValueError):
                continue
            for pid in children:
                if pid in seen:
                    continue
                seen.add(pid)
                stack.append(pid)
                if not _zombie(pid):
                    on_found(pid)
                    yield pid


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # gone


def _phase_pids_by_table() -> list[int]:
    """The same through psutil's scan of the process table, where /proc has no children files."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return []
    alive = []
    for p in children:
        try:
            if p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p.pid)
        except psutil.Error:
            pass
    return alive


_CHILDREN_FILES = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def _send(pids: list[int], sig: int) -> None:
    # Plain kill(2): a descendant's pid cannot be reused while the harness has not reaped it,
    # and the sweep reaps nothing.
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def _terminate_all(sweep_s: float = 0.05) -> None:
    """SIGTERM to every process of the phase, including those forked while it is sent."""
    signalled: set[int] = set()
    end = time.monotonic() + sweep_s
    def send(pid: int) -> None:
        if pid not in signalled:
            _send([pid], signal.SIGTERM)
            signalled.add(pid)

    while True:  # the first walk always reaches every process it finds, however long it takes
        before = len(signalled)
        for _ in _walk_phase(send):
            pass
        if len(signalled) == before or time.monotonic() > end:
            return


def _kill_all(rounds: int = 200) -> set[int]:
    """SIGKILL the phase's whole tree, however fast it forks; the pids that were killed.

    Each round stops every process it finds (a stopped process cannot fork), then kills
    them; rounds repeat until a listing finds none left. Zombies are left for `finish` to
    reap: the command's own exit status belongs to `wait`.
    """
    killed: set[int] = set()
    for _ in range(rounds):
        pids = list(_walk_phase(lambda pid: _send([pid], signal.SIGSTOP)))
        if not pids:
            break
        _send(pids, signal.SIGKILL)
        killed.update(pids)
    return killed


def _reap_orphans() -> None:
    """Collect exited orphans that were re-parented to the harness."""
    for p in psutil.Process().children():
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(p.pid, os.WNOHANG)
        except (psutil.Error, ChildProcessError):
            pass


def _set_writable(root: Path, writable: bool) -> None:
    """Predict gets the checkpoints read-only (advisory here; enforced by the Docker runner).

    Links are skipped (a chmod would change their target, wherever it is); the walk is the shared,
    bounded one, and past its bounds the rest keeps its mode: such a folder is never scored
    (harness.checkpoints.settle empties it after train)."""
    bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    found = [(root, root.stat().st_mode)]
    try:
        found += [(root / f.rel, f.st.st_mode) for f in walk(root) if f.is_file or f.is_dir]
    except (WalkLimit, OSError):
        pass
    for path, mode in found:
        try:
            path.chmod((mode | stat.S_IWUSR) if writable else (mode & ~bits))
        except OSError:
            pass  # gone since it was listed


class LocalHandle:
    def __init__(self, spec: PhaseSpec):
        self.spec = spec
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        _set_writable(spec.checkpoints_dir, spec.writable_checkpoints)
        self.sink = LogSink(spec.log_path, spec.log_limit_bytes)
        self.deadline = Deadline.start(spec.budget_s, spec.grace_s)
        env = {k: os.environ[k] for k in PASSED_THROUGH if k in os.environ}
        # `python` in a submission's command means the interpreter running the harness.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "/usr/bin:/bin")])
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # the entry's folder stays as it was (no __pycache__)
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # the same GPU numbering as NVML
        env["CUDA_VISIBLE_DEVICES"] = (spec.gpu or DEFAULT_GPU) if spec.device == "cuda" else ""
        env.update(
            phase_environment(
                spec,
                self.deadline,
                data=str(spec.data_dir),
                checkpoints=str(spec.checkpoints_dir),
                events=str(spec.events_file),
                output=str(spec.output_dir),
            )
        )
        self.process = subprocess.Popen(
            ([NICE, "-n", str(ENTRY_NICENESS)] if NICE else []) + spec.command,
            cwd=spec.submission_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._pump = self.sink.drain(self.process.stdout)
        self._cpu: dict[int, psutil.Process] = {}
        self._killed: set[int] = set()  # by the clock at the deadline: not strays

    def wait(self, timeout: float) -> Optional[int]:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def checkpoint_view(self) -> Optional[Path]:
        return self.spec.checkpoints_dir

    def terminate(self) -> None:
        _terminate_all()

    def kill(self) -> None:
        self._killed.update(_kill_all())

    def sample(self) -> tuple[Optional[float], Optional[int]]:
        cpu, rss, self._cpu = sample_processes(_phase_pids(), self._cpu)
        return cpu, rss

    def finish(self) -> ExitInfo:
        """Kill whatever outlived the command, close the log, restore write access."""
        strays = _kill_all() - self._killed - {self.process.pid}
        _reap_orphans()
        self._pump.join(timeout=5)
        self.process.stdout.close()
        self.sink.close()
        # Before any chmod: that too would move every file's ctime to now.
        times, unreadable = checkpoint_times(self.spec.checkpoints_dir) if self.spec.writable_checkpoints else (None, None)
        _set_writable(self.spec.checkpoints_dir, True)
        return ExitInfo(oom_killed=False, stray_processes_killed=len(strays), checkpoint_times=times,
                        checkpoints_unreadable=unreadable)


class LocalRunner:
    name = "local"
    isolated = False  # the entry runs as the harness's user, on this host

    def __init__(self) -> None:
        become_subreaper()  # where it fails, double-forked children escape the sweep

    def prepare(self, submission_dir: Path, run_dir: Path) -> None:
        return None  # entries run on this machine as they are: nothing to build

    def start(self, spec: PhaseSpec) -> LocalHandle:
        return LocalHandle(spec)

    def describe(self) -> dict[str, Optional[str]]:
        return {"image": None}
