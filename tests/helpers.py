"""What the tests share: paths, the harness as a real process, fixture entries, small data files.

Fixtures live in conftest.py; everything else here, imported as `from tests.helpers import ...`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

from PIL import Image

from harness.synthetic import colour_images, write_synthetic_npz

ROOT = Path(__file__).resolve().parents[1]
SHARED_TARBALL = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
CENTROID = ROOT / "tests" / "submissions" / "centroid"
MINIMAL = ROOT / "examples" / "minimal"
ENTRIES = ROOT / "tests" / "entries"
NO_ENGINE = "unix:///nonexistent/haet-test-docker.sock"  # a Docker socket no engine answers on


def run_harness(*args, cwd: Path = ROOT, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` in a real child process, as a user runs it; `env` adds to this one's."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def ahead_of_other_workers(niceness: int = -10):
    """This thread, and the harness it runs or starts, ahead of the suite's other workers.

    A deadline's precision is measured against a harness that wins the CPU over everything but
    itself, as on a grading machine, where the entry runs at the lowest priority and nothing else
    runs. On parallel workers the other tests' harnesses are no entry's doing, yet at equal
    priority they left a SIGKILL 0.2 s late on these 2 cores. Niceness is per thread on Linux and a
    child inherits it; lowering it needs root (the suite's Docker and sandbox tests run as root),
    and without root the measurement shares the cores as they come."""
    tid = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, tid)
    try:
        os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except PermissionError:
        pass
    try:
        yield
    finally:
        os.setpriority(os.PRIO_PROCESS, tid, before)


def folder_state(directory: Path) -> list[tuple]:
    """What a phase must not change in a folder it was given: each entry's name, type, mode, size,
    times and owner, and the content of every file up to 16 MiB.

    Larger files are known by their status alone: any write, truncate, chmod or utime sets the
    change time (ctime), which no process can set back. Reading them whole cost the sandbox's
    big-file test a 3 GiB read of a sparse file, twice."""
    state = []
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        row = (str(path.relative_to(directory)), st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_uid)
        if path.is_file() and not path.is_symlink() and st.st_size <= 16 * 2**20:
            row += (hashlib.sha256(path.read_bytes()).hexdigest(),)
        state.append(row)
    return state


# A sleeper that prints each new worst lateness of its 5 ms naps, in seconds.
_WAKE_UP_PROBE = """
import time
worst = 0.0
while True:
    due = time.monotonic() + 0.005
    time.sleep(0.005)
    if time.monotonic() - due > worst:
        worst = time.monotonic() - due
        print(f"{worst:.4f}", flush=True)
"""


class WakeUps:
    worst_s = 0.0  # the latest this machine woke the probe while the block ran


@contextlib.contextmanager
def machine_wake_ups():
    """How late this machine wakes a process at this thread's priority while the block runs.

    A deadline's precision is the harness's only beyond that. On parallel workers the other tests'
    harnesses, the engine and the kernel's work for them are no entry's doing, yet they delay every
    wake-up, the clock's included. The probe is a process of its own: a harness that blocks its own
    clock (a lock, a long call holding the interpreter) is not excused by it."""
    probe = subprocess.Popen([sys.executable, "-c", _WAKE_UP_PROBE], stdout=subprocess.PIPE, text=True)
    wake_ups = WakeUps()
    try:
        yield wake_ups
    finally:
        probe.kill()
        out, _ = probe.communicate()
        wake_ups.worst_s = max((float(line) for line in out.split()), default=0.0)


@contextlib.contextmanager
def measured_deadline():
    """A run whose deadline is measured: its harness ahead of the other workers, and the machine's
    wake-ups beside it (yielded: the allowance is read once the block ends)."""
    with ahead_of_other_workers(), machine_wake_ups() as wake_ups:
        yield wake_ups


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def only_run_dir(runs: Path) -> Path:
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    return run


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")


# --- data ---------------------------------------------------------------------------------------


def synthetic_data(tmp: Path, noise: float = 500.0) -> str:
    """A learnable-but-not-trivial dataset: centroid scores ~70%, the minimal entry ~25%."""
    return f"npz:{write_synthetic_npz(tmp / 'synthetic.npz', 60, 30, seed=0, noise=noise)}"


# --- command lines ------------------------------------------------------------------------------


def small_run_options(tmp: Path, budget: float = 6, noise: float = 500.0) -> list:
    """The options of a small graded run on this host's CPU: synthetic_data (written into `tmp`),
    30 training and 20 held-out images per class, `budget` seconds, the local runner."""
    return [
        "--data",
        synthetic_data(tmp, noise=noise),
        "--budget",
        str(budget),
        "--cache-dir",
        tmp / "cache",
        *"--train-per-class 30 --eval-per-class 20 --device cpu --runner local".split(),
    ]


def grade_args(
    tmp: Path, out: Path, *entries, repeats: int = 3, budget: float = 6, noise: float = 500.0, extra=()
) -> list:
    """`grade ENTRIES --out OUT` over `repeats` seeds of small runs; `extra` comes last, so it wins."""
    return ["grade", *entries, "--out", out, "--repeats", str(repeats), *small_run_options(tmp, budget, noise), *extra]


def write_image_tree(root: Path, per_class: dict[str, int], fmt: str = "PNG") -> None:
    images, labels = colour_images(max(per_class.values()), n_classes=3)
    for split, count in per_class.items():
        for c, name in enumerate(["cat", "dog", "frog"]):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(images[labels == c][i]).save(folder / f"{i:04d}.{fmt.lower()}", fmt)


def write_tar(path: Path, tree: Path, prefix: str = "set") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(tree, arcname=prefix)
    return path


# --- entries ------------------------------------------------------------------------------------


def copy_entry(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


HOSTILE = ROOT / "tests" / "hostile"
SHARED = HOSTILE / "shared"  # modules several hostile entries import: the deadline witnesses, the sampler copy


def stage_hostile(name: str, dst: Path) -> Path:
    """A hostile entry copied where it can run, with each shared module it imports beside it
    (Docker mounts only the entry's folder, so they must be inside it)."""
    copy_entry(HOSTILE / name, dst)
    code = "\n".join(p.read_text() for p in dst.glob("*.py"))
    for module in SHARED.glob("*.py"):
        if re.search(rf"^\s*(import|from) {module.stem}\b", code, re.M):
            shutil.copy(module, dst / module.name)
    return dst


# Entries broken in exactly one way: colour-mean with one file replaced, so each fails one check.
BROKEN = {
    "bad-manifest": {"submission.yaml": "name: My Entry\ntrain: python train.py\n"},
    "missing-script": {"submission.yaml": "name: missing-script\ntrain: python train.py\npredict: python infer.py\n"},
    "predict-crash": {  # looks for a checkpoint under another name than train saved
        "predict.py": "import os\nimport numpy as np\n"
        "np.load(os.path.join(os.environ['HAET_CHECKPOINTS'], 'weights.npy'))\n"
    },
    "bad-predictions": {  # predictions for only the first 10 images
        "predict.py": "import os\nwith open(os.path.join(os.environ['HAET_OUTPUT'], 'predictions.csv'), 'w') as f:\n"
        "    f.write('index,label\\n' + ''.join(f'{i},0\\n' for i in range(10)))\n"
    },
}


def entry(name: str, tmp: Path) -> Path:
    """A fixture entry: one under tests/entries, or a broken variant of colour-mean written into tmp."""
    if name not in BROKEN:
        return ENTRIES / name
    directory = copy_entry(MINIMAL, tmp / name)
    for file, text in BROKEN[name].items():
        (directory / file).write_text(text)
    return directory
