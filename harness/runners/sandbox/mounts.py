"""What a sandboxed phase sees: the bwrap command line that builds its namespaces and mounts.

Inside, the paths and the user are the Docker runner's (harness.runners.limits), so an entry
cannot tell the two apart by where things are. Besides them the sandbox holds only what the
runtime needs, read-only: /usr (and the /bin, /lib* links or folders beside it), the loader's
cache, the harness's interpreter (its prefix) and the folders on its `sys.path` (the virtual
environment's site-packages and any it names in .pth files). Never the harness's own source, the
runs directory, $HOME, or any label: those are simply not mounted.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import harness
from harness.errors import RunnerError
from harness.runners.base import PhaseSpec
from harness.runners.limits import C_CHECKPOINTS, C_DATA, C_EVENTS, C_OUTPUT, C_SUBMISSION, GID, UID, PhaseLimits

TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")  # links into /usr (merged /usr) or folders
ETC_FILES = ("ld.so.cache", "ld.so.conf", "localtime")  # the loader's cache; nothing about the host's users or network
PASSWD = f"root:x:0:0:root:/root:/usr/sbin/nologin\nhaet:x:{UID}:{GID}:haet:/tmp:/usr/sbin/nologin\n"
GROUP = f"root:x:0:\nhaet:x:{GID}:\n"
# The driver's user-space libraries a CUDA program opens (libcuda, NVML, the JIT and its helpers).
DRIVER_LIBRARY = re.compile(r"^\s*(libcuda\.so|libcudadebugger\.so|libnvidia-[\w.-]+\.so|libnvcuvid\.so)")


# Every namespace (network: loopback only), none nested inside (an entry's own user namespace
# would make it root there, with every namespaced kernel interface in reach: tests/hostile/nested-userns),
# a new session (no terminal to push input into), uid/gid 10001, no capabilities.
NAMESPACES = (
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--die-with-parent",
    "--new-session",
    "--uid",
    str(UID),
    "--gid",
    str(GID),
    "--cap-drop",
    "ALL",
)


@dataclass(frozen=True)
class Gpu:
    """The one GPU a phase may use: its device node's minor number and what CUDA calls it inside."""

    minor: int
    visible_as: str  # CUDA_VISIBLE_DEVICES inside: the UUID where NVML gave it, else "0"
    libraries: tuple[str, ...] = ()  # driver libraries outside the folders already bound
    dev: Path = Path("/dev")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def runtime_dirs(search_path: list[str] | None = None) -> list[Path]:
    """The interpreter's prefixes and the site folders on its search path (site-packages or
    dist-packages, e.g. another environment's that a .pth file names), fewest covering set.

    Other folders on the path (the current directory, a test runner's, the harness's source tree
    for an editable install) are not the runtime and are left out, as is anything inside the
    harness's source tree that is not inside a prefix."""
    prefixes = [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve()]
    source_root = Path(harness.__file__).resolve().parent.parent
    found: list[Path] = []
    for entry in sys.path if search_path is None else search_path:
        path = Path(entry).resolve() if entry else None
        if path is None or not path.is_dir():
            continue
        if path.name in ("site-packages", "dist-packages") or any(_inside(path, p) for p in prefixes):
            found.append(path)
    found = [p for p in prefixes + found if p.is_dir() and p != Path("/") and not _inside(p, Path("/usr"))]
    found = [
        p for p in found if not _inside(p, source_root) or any(_inside(p, q) for q in prefixes if q != source_root)
    ]
    return sorted({p for p in found if not any(q != p and _inside(p, q) for q in found)})


def runtime_binds(dirs: list[Path]) -> list[str]:
    """bwrap arguments for the read-only runtime: /usr and its siblings, the loader, `dirs`."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in TOP_LEVEL:
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    if Path("/etc/ld.so.conf.d").is_dir():
        args += ["--ro-bind", "/etc/ld.so.conf.d", "/etc/ld.so.conf.d"]
    for path in dirs:
        args += ["--ro-bind", str(path), str(path)]
    for package in _harness_copies(dirs):  # an installed (not editable) harness: hide its files
        args += ["--tmpfs", str(package), "--remount-ro", str(package)]
    return args


def _harness_copies(dirs: list[Path]) -> list[Path]:
    """This harness's package, and any installed copy of it, inside the folders bound in."""
    copies = {Path(harness.__file__).resolve().parent}
    for d in dirs:
        for site in [d, *d.glob("lib/python3*/site-packages"), *d.glob("lib/python3*/dist-packages")]:
            if (site / "harness" / "run.py").is_file():
                copies.add(site / "harness")
    return sorted(p for p in copies if any(_inside(p, d) for d in dirs))


def gpu_binds(gpu: Gpu) -> list[str]:
    """The pinned GPU's device node, the control and UVM nodes, and the driver's libraries."""
    args = []
    for node in (f"nvidia{gpu.minor}", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools"):
        args += ["--dev-bind-try", str(gpu.dev / node), f"/dev/{node}"]
    for library in gpu.libraries:
        args += ["--ro-bind-try", library, library]
    return args


def ensure_uvm(gpu: Gpu) -> None:
    """Make sure the UVM node exists before a phase binds it. The driver creates /dev/nvidia-uvm on
    the first CUDA use by any process, so a fresh node may lack it; bwrap's --dev-bind-try then skips
    it silently and the entry's CUDA fails to initialise with an error that does not say why.
    nvidia-modprobe (setuid root, shipped with the driver) creates it; without it, refuse."""
    node = gpu.dev / "nvidia-uvm"
    tool = shutil.which("nvidia-modprobe")
    if not node.exists() and tool:
        try:
            subprocess.run([tool, "-u", "-c=0"], capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            pass  # the check below says what to do
    if not node.exists():
        raise RunnerError(
            f"{node} does not exist (the driver creates it on the first CUDA use), so a sandboxed "
            "phase could not use CUDA; create it once as root with `nvidia-modprobe -u -c=0` "
            "(or run any CUDA program once as root), then run again"
        )


def driver_libraries(bound: list[Path]) -> tuple[str, ...]:
    """The driver libraries `ldconfig -p` knows that lie outside the folders already bound."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = set()
    for line in listing.splitlines():
        if DRIVER_LIBRARY.match(line) and "=>" in line:
            target = Path(line.split("=>", 1)[1].strip())
            for path in (target, target.resolve()):
                if path.exists() and not any(_inside(path, d) for d in [Path("/usr"), *bound]):
                    found.add(str(path))
    return tuple(sorted(found))


def find_gpu(selector: str, nvml=None) -> Gpu:
    """The GPU named by index or UUID (NVML's numbering), as its /dev node's minor number."""
    from harness.monitor import load_nvml

    try:
        nvml = nvml or load_nvml()
        nvml.nvmlInit()
        try:
            handle = (
                nvml.nvmlDeviceGetHandleByIndex(int(selector))
                if selector.isdigit()
                else nvml.nvmlDeviceGetHandleByUUID(selector)
            )
            minor = int(nvml.nvmlDeviceGetMinorNumber(handle))
            uuid = nvml.nvmlDeviceGetUUID(handle)
        finally:
            nvml.nvmlShutdown()
    except Exception:  # no NVML: an index is taken as the node's number
        if not selector.isdigit():
            raise
        return Gpu(minor=int(selector), visible_as="0")
    return Gpu(minor=minor, visible_as=uuid.decode() if isinstance(uuid, bytes) else str(uuid))


FILES = {"/etc/passwd": PASSWD, "/etc/group": GROUP}  # written into the sandbox from pipes (--ro-bind-data)


def phase_argv(
    bwrap: str, spec: PhaseSpec, limits: PhaseLimits, dirs: list[Path], gpu: Gpu | None, files: dict[str, int]
) -> list[str]:
    """The bwrap argv for one phase; `files` maps a path inside to the fd bwrap reads it from."""
    argv = [bwrap, *NAMESPACES, "--hostname", "haet"]
    argv += runtime_binds(dirs)
    # /proc read-only: the namespaces' own sysctls (hostname, ipc) stay as made.
    argv += [
        "--proc",
        "/proc",
        "--remount-ro",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(limits.tmp_size),
        "--tmpfs",
        "/tmp",
        "--size",
        str(limits.shm_size),
        "--tmpfs",
        "/dev/shm",
    ]
    if gpu is not None:
        argv += gpu_binds(gpu)
    argv += [
        "--ro-bind",
        str(spec.submission_dir),
        C_SUBMISSION,
        "--ro-bind",
        str(spec.data_dir),
        C_DATA,
        "--bind" if spec.writable_checkpoints else "--ro-bind",
        str(spec.checkpoints_dir),
        C_CHECKPOINTS,
        "--bind",
        str(spec.events_file),
        C_EVENTS,
    ]
    if spec.output_dir is not None:
        argv += ["--bind", str(spec.output_dir), C_OUTPUT]
    for path, fd in files.items():
        argv += ["--ro-bind-data", str(fd), path]
    return argv + ["--remount-ro", "/", "--chdir", C_SUBMISSION, "--"] + spec.command


def phase_env(gpu: Gpu | None, environment: dict[str, str]) -> dict[str, str]:
    """What the entry's processes get in their environment: nothing of the harness's own."""
    python_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "USER": "haet",
        "LOGNAME": "haet",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "CUDA_VISIBLE_DEVICES": gpu.visible_as if gpu is not None else "",
        **environment,
    }
