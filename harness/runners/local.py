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
from collections.abc import Iterator
from pathlib import Path

import psutil

from harness.checkpoints import checkpoint_times
from harness.clock import Deadline
from harness.contract import phase_environment
from harness.logs import LogSink
from harness.options import DEFAULT_GPU
from harness.runners import procs
from harness.runners.base import ExitInfo, PhaseSpec, sample_processes
from harness.walk import WalkLimit, walk

PR_SET_CHILD_SUBREAPER = 36
NICE = shutil.which("nice")
PASSED_THROUGH = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME")


def _entry_increment() -> int:
    """nice(1) adds to the starting thread's niceness: the increment that lands the entry on
    ENTRY_NICENESS itself, the lowest priority, also under a harness that runs ahead of others."""
    return max(procs.ENTRY_NICENESS - os.getpriority(os.PRIO_PROCESS, 0), 0)


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _phase_pids() -> Iterator[int]:
    """The phase's live processes: the harness runs one phase at a time per process and, as a
    subreaper, inherits orphans, so its descendants are the phase's whole tree, escaped ones included."""
    return procs.descendants(os.getpid())


def _kill_all(rounds: int = 200) -> set[int]:
    """SIGKILL the phase's whole tree, however fast it forks; the pids that were killed.

    Each round stops every process as it finds it (a stopped process cannot fork), then kills
    them; rounds repeat until a listing finds none left. Zombies are left for `finish` to
    reap: the command's own exit status belongs to `wait`.
    """
    killed: set[int] = set()
    for _ in range(rounds):
        pids = []
        for pid in _phase_pids():
            procs.send([pid], signal.SIGSTOP)
            pids.append(pid)
        if not pids:
            break
        procs.send(pids, signal.SIGKILL)
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
            ([NICE, "-n", str(_entry_increment())] if NICE else []) + spec.command,
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

    def wait(self, timeout: float) -> int | None:
        return procs.wait(self.process, timeout)

    def checkpoint_view(self) -> Path | None:
        return self.spec.checkpoints_dir

    def terminate(self) -> None:
        procs.terminate(_phase_pids)

    def kill(self) -> None:
        self._killed.update(_kill_all())

    def sample(self) -> tuple[float | None, int | None]:
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
        times, unreadable = (
            checkpoint_times(self.spec.checkpoints_dir) if self.spec.writable_checkpoints else (None, None)
        )
        _set_writable(self.spec.checkpoints_dir, True)
        return ExitInfo(
            oom_killed=False,
            stray_processes_killed=len(strays),
            checkpoint_times=times,
            checkpoints_unreadable=unreadable,
        )


class LocalRunner:
    name = "local"
    isolated = False  # the entry runs as the harness's user, on this host

    def __init__(self) -> None:
        become_subreaper()  # where it fails, double-forked children escape the sweep

    def prepare(self, submission_dir: Path, run_dir: Path) -> None:
        return None  # entries run on this machine as they are: nothing to build

    def start(self, spec: PhaseSpec) -> LocalHandle:
        return LocalHandle(spec)

    def describe(self) -> dict[str, str | None]:
        return {"image": None}
