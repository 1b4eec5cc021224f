"""The run's environment: what it ran on, recorded so that a rerun can say what changed.

GPU facts come from NVML at the run's start (harness.monitor.Gpus.fingerprint); the CPU from
/proc/cpuinfo; the installed Python packages go to `packages.txt` in the run directory with
their sha256 in the result; the harness's git commit is read from its checkout's files (no git
binary needed), None when it is not one.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import re
import socket
from pathlib import Path
from typing import Any

from harness import __version__
from harness.files import atomic_write_text
from harness.model import Environment

PACKAGES_FILE = "packages.txt"
CHECKOUT = Path(__file__).resolve().parents[1]
COMPARED = (
    "harness",
    "git_commit",
    "python",
    "packages_sha256",
    "platform",
    "kernel",
    "cpu_model",
    "cpu_cores",
    "runner",
    "isolated",
    "device",
    "torch",
    "cuda",
    "driver",
    "image",
    "image_digest",
    "gpus",
)


def environment(runner: Any, device: str, gpus: Any, run_dir: Path | None = None) -> Environment:
    """`gpus` is harness.monitor.Gpus or None; `run_dir` receives packages.txt."""
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = None
    described = runner.describe()
    image = described.get("image")
    env = Environment(
        harness=__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        runner=runner.name,
        device=device,
        torch=torch_version,
        image=image,
        hostname=socket.gethostname(),
        isolated=runner.isolated,
        cpu_model=cpu_model(),
        cpu_cores=os.cpu_count(),
        kernel=platform.release(),
        git_commit=git_commit(),
        image_digest=described.get("image_digest"),
        memory_enforced=described.get("memory_enforced"),
    )
    if run_dir is not None:
        listing = packages()
        atomic_write_text(run_dir / PACKAGES_FILE, listing)
        env.packages_file, env.packages_sha256 = PACKAGES_FILE, hashlib.sha256(listing.encode()).hexdigest()
    if gpus:
        env.gpus = [f"{g['index']}: {g['name']} ({g['uuid']})" for g in gpus.info]
        env.gpu_details = gpus.fingerprint()
        env.driver = gpus.driver()
        cuda = getattr(gpus.nvml, "nvmlSystemGetCudaDriverVersion", None)
        try:
            version = cuda() if cuda else None
            env.cuda = f"{version // 1000}.{version % 1000 // 10}" if version else None
        except Exception:  # an old driver without the call
            env.cuda = None
    return env


def packages() -> str:
    """`name==version`, one a line, sorted: the harness's Python environment."""
    found = {f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions() if d.metadata["Name"]}
    return "".join(f"{line}\n" for line in sorted(found, key=str.lower))


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_commit(checkout: Path = CHECKOUT) -> str | None:
    """HEAD's commit, read from .git (a worktree's .git file, a packed ref); None outside a checkout."""
    git = checkout / ".git"
    try:
        if git.is_file():  # a worktree: "gitdir: PATH"
            git = (checkout / git.read_text().partition("gitdir:")[2].strip()).resolve()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head if re.fullmatch(r"[0-9a-f]{40}", head) else None
        ref = head.partition(":")[2].strip()
        common = Path(git / "commondir").read_text().strip() if (git / "commondir").is_file() else "."
        for base in (git, (git / common).resolve()):
            if (base / ref).is_file():
                return (base / ref).read_text().strip()
            packed = base / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split()[0]
    except OSError:
        pass
    return None


def differences(before: Environment, after: Environment) -> list[str]:
    """What differs between two runs' environments, in words (empty: the same)."""
    out = []
    for name in COMPARED:
        a, b = getattr(before, name), getattr(after, name)
        if a != b:
            out.append(f"{name}: {_show(a)} -> {_show(b)}")
    for i, (a, b) in enumerate(zip(before.gpu_details, after.gpu_details)):
        for key in ("power_limit_w", "sm_clock_mhz", "memory_clock_mhz", "temperature_c"):
            if a.get(key) != b.get(key):
                out.append(f"gpu {i} {key} at start: {_show(a.get(key))} -> {_show(b.get(key))}")
    return out


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "none"
    return "none" if value is None else str(value)
