"""One phase in one bubblewrap sandbox: started, timed by the clock, sampled, stopped, cleaned up.

The process tree on the host: the harness -> bwrap (the phase's process) -> bwrap's init, pid 1
of the phase's pid namespace -> the command, pid 2, and everything it starts. Orphans re-parent
to that init, never out of the namespace, and when the command exits, init exits and the kernel
kills whatever is left in the namespace. SIGTERM goes to every process below init (init itself
would die of it and take the grace period with it); SIGKILL goes to init and bwrap, and the
kernel does the rest.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from harness import text
from harness.checkpoints import checkpoint_times
from harness.clock import Deadline
from harness.contract import phase_environment
from harness.hostfiles import MAX_WALK, folder_bytes, keep_regular, trim_to_cap
from harness.logs import LogSink
from harness.runners import procs
from harness.runners.base import ExitInfo, PhaseSpec, RunnerError, sample_processes
from harness.runners.limits import C_CHECKPOINTS, C_DATA, C_EVENTS, C_OUTPUT, events_over_cap
from harness.runners.sandbox import mounts, user
from harness.runners.sandbox.cgroup import PhaseCgroup
from harness.walk import MAX_DEPTH, WalkLimit, walk

if TYPE_CHECKING:
    from harness.runners.sandbox import SandboxRunner

WATCH_S = 0.25  # how often the caps (memory without a cgroup, disk, events) are checked


def _reap_inits() -> None:
    """Collect the namespace's init where it was left to the harness. bwrap exits as soon as the
    command does, without waiting for init, which its --die-with-parent then kills: on a harness
    that is a subreaper (it ran the local runner), that init becomes the harness's zombie. The
    harness runs one phase at a time, so once bwrap has exited, every bwrap child of the harness
    is that phase's init, dead or dying of the kill; wait_procs reaps it."""
    inits = []
    for child in psutil.Process().children():
        try:
            if child.name() == "bwrap":
                inits.append(child)
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(inits, timeout=2)
    for child in alive:
        procs.send([child.pid], signal.SIGKILL)
    psutil.wait_procs(alive, timeout=2)


class SandboxHandle:
    def __init__(self, runner: SandboxRunner, spec: PhaseSpec):
        self.runner, self.spec = runner, spec
        self.notes: list[str] = []
        self._oom_by_monitor = False
        self._init: int | None = None  # host pid of the namespace's init, once seen
        self._cpu: dict[int, psutil.Process] = {}
        limits = runner.limits
        self._capped: dict[str, tuple[Path, int]] = {}  # path inside -> (host folder, cap)
        if spec.writable_checkpoints:
            self._capped[C_CHECKPOINTS] = (spec.checkpoints_dir, limits.checkpoint_limit)
        if spec.output_dir is not None:
            self._capped[C_OUTPUT] = (spec.output_dir, limits.output_limit)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        spec.events_file.parent.mkdir(parents=True, exist_ok=True)
        spec.events_file.touch(exist_ok=True)
        writable = [spec.events_file]
        for directory, _ in self._capped.values():
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o755)  # the sandbox's uid outside owns it and writes; the harness reads
            writable.append(directory)
        if runner.user:  # bwrap runs as the sandbox's own host uid: give it what the entry may write, only that
            blocked = user.unreadable(spec.submission_dir)
            if blocked:
                raise RunnerError(
                    "the harness runs as root, so the sandbox runs the entry as the unprivileged uid "
                    f"{runner.user[0]}, which cannot read {blocked} in {spec.submission_dir}: "
                    f"make the entry readable by all users (chmod -R o+rX {spec.submission_dir})"
                )
            for path in writable:
                os.chown(path, *runner.user)
        self.cgroup = PhaseCgroup.create(limits.memory, limits.pids_limit, limits.cpus) if runner.use_cgroup else None
        if runner.use_cgroup and self.cgroup is None:
            self.notes.append("no cgroup could be made for the phase; memory was enforced by sampling")

        pipes = {path: os.pipe() for path in mounts.FILES}
        for path, (_, write_end) in pipes.items():
            os.write(write_end, mounts.FILES[path].encode())  # a few bytes: never fills a pipe
            os.close(write_end)
        readers = {path: read_end for path, (read_end, _) in pipes.items()}
        argv = mounts.phase_argv(runner.bwrap, spec, runner.limits, runner.dirs, runner.gpu_for(spec), readers)
        staging = user.Staging(argv) if runner.user else None  # root's child binds the sources (sandbox.user)
        preexec = _limiter(self.cgroup, runner, staging)
        self.sink = LogSink(spec.log_path, spec.log_limit_bytes)
        try:
            self.deadline = Deadline.start(spec.budget_s, spec.grace_s)  # bwrap's set-up is the phase's
            env = mounts.phase_env(
                runner.gpu_for(spec),
                phase_environment(
                    spec, self.deadline, data=C_DATA, checkpoints=C_CHECKPOINTS, events=C_EVENTS, output=C_OUTPUT
                ),
            )
            self.process = subprocess.Popen(
                staging.argv if staging else argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=list(readers.values()),
                preexec_fn=preexec,
            )
        except BaseException as exc:
            self.sink.close()
            if self.cgroup:
                self.cgroup.remove(0)
            if isinstance(exc, subprocess.SubprocessError) and "preexec" in str(exc):
                raise RunnerError(
                    "the sandbox's process could not be set up (its cgroup, limits, or, under a root "
                    "harness, the mounts and the switch to uid 10001); the probe passed, so something "
                    "changed since: check that the entry and the runs directory still exist"
                ) from None
            raise
        finally:
            for fd in readers.values():
                os.close(fd)
        self._pump = self.sink.drain(self.process.stdout)
        self._stopped = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name=f"caps:{spec.phase}", daemon=True)
        self._watcher.start()

    # --- the namespace's processes ---------------------------------------------------

    def _init_pid(self) -> int | None:
        if self._init is None:
            children = procs.children(self.process.pid)
            self._init = children[0] if children else None
        return self._init

    def _entry_pids(self) -> Iterable[int]:
        """Every process of the entry: all below the namespace's init."""
        init = self._init_pid()
        return procs.descendants(init) if init else ()

    # --- the clock's interface ---------------------------------------------------

    def wait(self, timeout: float) -> int | None:
        return procs.wait(self.process, timeout)

    def terminate(self) -> None:
        procs.terminate(self._entry_pids)

    def kill(self) -> None:
        """The namespace's init: the kernel kills every process of the namespace, and bwrap, which
        waits for init, exits and reaps it. Before init exists, bwrap itself (--die-with-parent
        takes init along). Killing both at once would orphan init to a subreaper harness as a zombie."""
        init = self._init_pid()
        procs.send([init or self.process.pid], signal.SIGKILL)

    def checkpoint_view(self) -> Path | None:
        return self.spec.checkpoints_dir  # bound into the sandbox: the entry writes here directly

    def sample(self) -> tuple[float | None, int | None]:
        cpu, rss, self._cpu = sample_processes(self._entry_pids(), self._cpu)
        return cpu, rss

    def _watch(self) -> None:
        """The caps no kernel enforces here: memory without a cgroup, the writable folders' and
        the events file's sizes. Over one, the phase is killed with a note saying which. On a
        thread of its own: the entry decides how much there is to read, the clock never waits."""
        while not self._stopped.wait(WATCH_S) and self.process.poll() is None:
            self._check()

    def _check(self) -> None:
        if self.cgroup is None:
            rss = self._resident()
            if rss > self.runner.limits.memory:
                self._oom_by_monitor = True
                self._over(
                    f"the phase held {rss} bytes of memory, over its limit of {self.runner.limits.memory} "
                    "(no cgroup here: enforced by sampling every 0.25 s)"
                )
        for note in self._over_caps():
            self._over(note)

    def _resident(self) -> int:
        total = 0
        for pid in self._entry_pids():
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.Error:
                pass
        return total

    def _over_caps(self) -> list[str]:
        """A note for each writable place past its cap."""
        notes = []
        for inside, (directory, cap) in self._capped.items():
            used = folder_bytes(directory)
            if used < 0 or used > cap:
                notes.append(
                    f"{inside} is full: it passed its cap of {cap} bytes or {MAX_WALK} files and "
                    f"folders ({MAX_DEPTH} levels deep, all readable); the phase was killed"
                )
        events = events_over_cap(self.spec.events_file, self.runner.limits.events_limit)
        return notes + [events] if events else notes

    def _over(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)
        self.kill()

    def finish(self) -> ExitInfo:
        """Kill what is left, make the writable folders safe to read, remove the cgroup."""
        try:
            if self.process.poll() is None:
                self.kill()
            self.process.wait(15)
            _reap_inits()
            self._stopped.set()
            self._watcher.join()
            self._pump.join(timeout=5)
            # A burst can pass a cap between two checks, up to the file-size limit: say so all the same.
            self.notes += [note for note in self._over_caps() if note not in self.notes]
            # Read before the trim below: the late-checkpoint check needs the entry's own ctimes.
            times, unreadable = (
                checkpoint_times(self.spec.checkpoints_dir) if self.spec.writable_checkpoints else (None, None)
            )
            for inside, (directory, cap) in self._capped.items():
                try:
                    removed = keep_regular(directory)
                except (WalkLimit, OSError) as exc:
                    self.notes.append(
                        f"{inside} was emptied: the harness could not read it in full ({exc}; at most "
                        f"{MAX_WALK} files and folders, {MAX_DEPTH} levels deep)"
                    )
                    continue
                if removed:
                    self.notes.append(
                        f"removed from {inside} (only regular files count): "
                        + ", ".join(text.file_name(n) for n in removed[:5])
                    )
                removed = trim_to_cap(directory, cap)
                if removed:
                    self.notes.append(
                        f"{inside} held more than its cap of {cap} bytes: {len(removed)} file(s) cut "
                        "or removed where the cap was passed, e.g. " + ", ".join(text.file_name(n) for n in removed[:3])
                    )
            if times is not None:
                kept = {found.rel for found in walk(self.spec.checkpoints_dir, MAX_WALK) if found.is_file}
                times = {name: t for name, t in times.items() if name in kept}
            oom = self._oom_by_monitor or bool(self.cgroup and self.cgroup.oom_killed())
            for note in self.notes:
                self.sink.write(f"\n[harness] {note}\n".encode())
        finally:
            self.process.stdout.close()
            self.sink.close()
            if self.cgroup:
                self.cgroup.remove()
        return ExitInfo(
            oom_killed=oom,
            stray_processes_killed=0,
            notes=list(self.notes),
            checkpoint_times=times,
            checkpoints_unreadable=unreadable,
        )


def _limiter(cgroup: PhaseCgroup | None, runner: SandboxRunner, staging: user.Staging | None):
    """What bwrap's process does between fork and exec: join the phase's cgroup and take the limits
    no cgroup gives here; then, when the harness is root, bind bwrap's sources where the sandbox's
    unprivileged user can reach them and become that user (last: both need root). Everything it
    computes is computed before the fork."""
    cgroup_files = cgroup.procs_files() if cgroup else []
    nproc = None if cgroup and cgroup.limits_pids else runner.limits.pids_limit
    fsize, niceness = runner.limits.file_size, procs.ENTRY_NICENESS
    cpus = None if cgroup and "cpu" in cgroup.dirs else runner.cpu_set
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    open_files = runner.open_files if hard == resource.RLIM_INFINITY else min(runner.open_files, hard)

    def limit() -> None:
        pid = str(os.getpid())
        for path in cgroup_files:
            with open(path, "w") as f:
                f.write(pid)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if nproc is not None:
            resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        if cpus:
            os.sched_setaffinity(0, cpus)
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
        if staging is not None:
            staging.enter()
            user.become(runner.user)

    return limit
