"""Nothing an entry writes is usable on the host with special rights, under every runner.

The `setuid-shell` entry (tests/hostile/setuid-shell) copies /bin/sh into /checkpoints and /output
as 4755, 2755 and 6755, in a setgid folder, on the folder itself, on its events file, as a hard
link and a rename made after SIGTERM; tries mknod, mkfifo and a socket. While the phase runs, this
test looks at the host: the run's work folder must be 0700 and another local user (uid 20002)
must not reach the shell; under the sandbox (the harness is root here, as in CI) the shell must
be owned by the unprivileged uid 10001, never root. After train (when the curve's progress line
comes, before the work folder is removed), no file kept or read by the harness may carry a set-id
bit or be a device, fifo or socket, and the snapshots must be the harness's own 0644/0755 copies.
`make_safe` itself is checked on real files, links out of the folder included.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.console import Progress
from harness.hostfiles import make_safe, private_dir
from harness.options import RunOptions
from harness.run import graded_run
from harness.runners.limits import UID
from harness.runners.local import LocalRunner
from tests.helpers import MINIMAL, ROOT, stage_hostile
from tests.hostile_outcomes import DEFAULTS, EXPECTED, RUNNER_LIMITS, log, set_id_problems

OTHER_USER = 20002  # a local user with no business in any run
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the harness runs as root here only where the tests do (CI)")


# --- make_safe on real files -------------------------------------------------------------------


def _shell(path: Path, mode: int) -> Path:
    path.write_bytes(Path("/bin/sh").read_bytes())
    path.chmod(mode)
    return path


def test_make_safe_strips_every_set_id_bit_and_removes_special_files(tmp_path):
    root = tmp_path / "checkpoints"
    (root / "deep" / "er").mkdir(parents=True)
    for name, mode in (("suid", 0o4755), ("sgid", 0o2755), ("both", 0o6755), ("deep/er/hidden", 0o4711)):
        _shell(root / name, mode)
    _shell(root / "unreadable", 0o4000)  # no read bit for anyone: stripped all the same
    os.link(root / "suid", root / "deep" / "hard-link")
    (root / "deep").chmod(0o2775)
    root.chmod(0o6777)
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "deep" / "socket"))
    sock.close()
    if os.geteuid() == 0:
        os.mknod(root / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    outside = _shell(tmp_path / "host-shell", 0o4755)  # a host file the entry links to: never touched
    (root / "link-out").symlink_to(outside)

    notes = make_safe(root, "/checkpoints")

    assert stat.S_IMODE(outside.stat().st_mode) == 0o4755, "a link was followed out of the folder"
    assert (root / "link-out").is_symlink(), "links are each runner's business"
    left = [p for p in [root, *root.rglob("*")] if p.lstat().st_mode & 0o6000 and not p.is_symlink()]
    assert left == []
    assert sorted(p.name for p in root.rglob("*") if not (p.is_symlink() or p.is_file() or p.is_dir())) == []
    assert stat.S_IMODE((root / "both").stat().st_mode) == 0o755 and stat.S_IMODE(root.stat().st_mode) == 0o777
    assert any(
        n.startswith("set-user-ID/set-group-ID bits removed in /checkpoints: .,") and "more" in n for n in notes
    ), notes
    assert any("fifo" in n and "removed" in n for n in notes), notes


def test_make_safe_takes_one_file_and_says_nothing_when_nothing_was_wrong(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    events.chmod(0o6755)
    assert make_safe(events, "the events file") and stat.S_IMODE(events.stat().st_mode) == 0o755
    assert make_safe(events, "the events file") == []
    assert make_safe(tmp_path / "missing", "/output") == []


def test_private_dir_is_0700_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        work = private_dir(tmp_path / "run" / ".work")
    finally:
        os.umask(old)
    assert stat.S_IMODE(work.stat().st_mode) == 0o700


# --- the host while a phase runs --------------------------------------------------------------------


def other_user_reaches(path: Path) -> str:
    """What uid 20002 gets trying to read and run `path`: empty when it cannot reach it."""
    done = subprocess.run(
        ["/bin/sh", "-c", 'test -e "$1" && echo EXISTS; "$1" -c "id -u" 2>/dev/null', "sh", str(path)],
        user=OTHER_USER,
        group=OTHER_USER,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=10,
        cwd="/",
    )
    return done.stdout.strip()


class HostWatch(threading.Thread):
    """Looks at the host while the run goes on: the work folder's modes, and, once the entry's
    shell is there, its owner and whether another user can reach it."""

    def __init__(self, run_dir: Path, shell: Callable[[], Path | None]):
        super().__init__(daemon=True)
        self.run_dir, self.shell = run_dir, shell
        self.work_modes: set[int] = set()
        self.shell_seen: dict | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.work_modes.add(stat.S_IMODE((self.run_dir / ".work").stat().st_mode))
            except OSError:
                pass
            path = self.shell() if self.shell_seen is None else None
            if path is not None and path.exists():
                st = path.stat()
                time.sleep(0.2)  # the entry sets its bits right after the copy
                self.shell_seen = {"owner": st.st_uid, "mode": path.stat().st_mode, "other": other_user_reaches(path)}
            time.sleep(0.05)


class AfterTrain(Progress):
    """The console, quiet; when the curve's line comes (after predict, before the work folder is
    removed) it records what the harness keeps there."""

    def __init__(self, run_dir: Path):
        super().__init__(quiet=True)
        self.run_dir, self.kept = run_dir, None

    def say(self, text: str) -> None:
        if "curve:" in text:
            work = self.run_dir / ".work"
            self.kept = {str(p.relative_to(work)): p.lstat().st_mode for p in work.rglob("*")}
        super().say(text)


def grade(
    runner, tmp_path: Path, synthetic_npz: str, shell: Callable[[str, Path], Path | None], run_id: str = "setuid-shell"
):
    entry = stage_hostile("setuid-shell", tmp_path / "entry")
    runs = tmp_path / "runs"
    options = RunOptions(
        **DEFAULTS,
        submission=entry,
        data=synthetic_npz,
        device="cpu",
        runs_dir=runs,
        cache_dir=tmp_path / "cache",
        run_id=run_id,
        curve=True,
        curve_per_class=5,
    )
    run_dir = runs / run_id
    watch = HostWatch(run_dir, lambda: shell(run_id, run_dir))
    watch.start()
    progress = AfterTrain(run_dir)
    try:
        result = graded_run(options, runner, progress)
    finally:
        watch.done.set()
        watch.join()
    return result, run_dir, watch, progress


def assert_kept_files_are_plain(progress: AfterTrain) -> None:
    assert progress.kept, "the curve ran, so the kept folders were looked at"
    bad = {
        name: oct(mode)
        for name, mode in progress.kept.items()
        if mode & 0o6000 or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
    }
    assert bad == {}, "set-id or special files kept after the phase"
    snapshots = {name: stat.S_IMODE(mode) for name, mode in progress.kept.items() if name.startswith("snapshots/")}
    assert snapshots and set(snapshots.values()) <= {0o644, 0o755}, snapshots


def assert_private_while_running(watch: HostWatch) -> None:
    assert watch.work_modes == {0o700}, f"the work folder was {sorted(map(oct, watch.work_modes))} during the run"
    assert watch.shell_seen, "the entry's shell was seen on the host while the phase ran"
    assert watch.shell_seen["mode"] & 0o4000, "it stood set-user-ID (the trick ran)"
    assert watch.shell_seen["other"] == "", f"uid {OTHER_USER} reached the shell: {watch.shell_seen['other']}"


def host_checkpoint(run_id: str, run_dir: Path) -> Path:
    return run_dir / ".work" / "checkpoints" / "sh"


@root_only
def test_set_id_shell_under_the_sandbox_as_root(tmp_path, synthetic_npz):
    from harness.runners.sandbox import SandboxRunner, find_bwrap, probe

    refused = probe(find_bwrap())
    if refused:
        pytest.skip(f"the sandbox cannot run here: {refused}")
    result, run, watch, progress = grade(SandboxRunner(**RUNNER_LIMITS), tmp_path, synthetic_npz, host_checkpoint)
    assert_private_while_running(watch)
    assert watch.shell_seen["owner"] == UID, "the entry's files are the unprivileged uid's on the host, never root's"
    EXPECTED["setuid-shell"].check(result, run, tmp_path / "entry")
    assert "set-user-ID/set-group-ID bits removed in /checkpoints" in result.train.detail
    assert "set-user-ID/set-group-ID bits removed in the events file" in result.train.detail
    assert "set-user-ID/set-group-ID bits removed in /output" in result.predict.detail
    assert_kept_files_are_plain(progress)


@root_only
def test_set_id_shell_under_the_local_runner(tmp_path, synthetic_npz):
    """Not a sandbox: the entry runs as the harness's user (root here, so mknod works). The work
    folder stays private, and the strip and the removal of devices hold all the same."""
    result, run, watch, progress = grade(LocalRunner(), tmp_path, synthetic_npz, host_checkpoint)
    assert_private_while_running(watch)
    assert result.status.value == "scored", result.reason
    problems = set_id_problems(run)
    assert not problems, problems
    assert "set-user-ID/set-group-ID bits removed in /checkpoints" in result.train.detail
    if "MADE null-device" in log(run, "train"):  # root: the device was made, and must be gone
        assert "device files, fifos or sockets removed from /checkpoints" in result.train.detail
        assert "null-device" in result.train.detail
    assert_kept_files_are_plain(progress)


@pytest.mark.docker
def test_set_id_shell_under_docker(tmp_path, synthetic_npz, docker_client, runtime_image):
    from tests.docker_support import small_runner

    def volume_shell(run_id: str, run_dir: Path) -> Path | None:
        for volume in docker_client.volumes.list(filters={"label": [f"haet.run={run_id}", "haet.mount=/checkpoints"]}):
            return Path(volume.attrs["Mountpoint"]) / "sh"
        return None

    run_id = f"setuid-shell-{os.getpid()}-{time.monotonic_ns() % 10**6}"  # unique on a shared engine
    result, run, watch, progress = grade(small_runner(runtime_image), tmp_path, synthetic_npz, volume_shell, run_id)
    assert_private_while_running(watch)
    assert watch.shell_seen["owner"] == UID
    EXPECTED["setuid-shell"].check(result, run, tmp_path / "entry")
    assert_kept_files_are_plain(progress)


@root_only
def test_an_entry_file_only_root_can_read_runs_from_its_staged_copy(tmp_path, synthetic_npz):
    """Under a root harness the entry runs as uid 10001: a file only root can read (a umask of 077)
    would fail inside with a bare PermissionError; the phases run the staged copy (harness.staging),
    whose files are 0644, so the entry runs as it would from a readable folder."""
    from harness.runners.sandbox import SandboxRunner, find_bwrap, probe

    if probe(find_bwrap()):
        pytest.skip(f"the sandbox cannot run here: {probe(find_bwrap())}")
    entry = stage_hostile("setuid-shell", tmp_path / "entry")
    (entry / "tricks.py").chmod(0o600)
    options = RunOptions(
        **DEFAULTS,
        submission=entry,
        data=synthetic_npz,
        device="cpu",
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        run_id="owner-only",
    )
    result = graded_run(options, SandboxRunner(**RUNNER_LIMITS), Progress(quiet=True))
    train_log = (tmp_path / "runs" / "owner-only" / "train.log").read_text()
    assert "Permission denied" not in train_log and "tricks.py" not in result.train.detail, train_log[-2000:]
    assert result.status.value == "scored", result.reason


@root_only
def test_a_runtime_the_sandbox_s_uid_cannot_read_is_refused_with_the_fix(tmp_path, synthetic_npz):
    """A harness run as root from a virtual environment only root can enter: the sandbox refuses at
    its probe (exit 2), naming the folder and the chmod, before any run directory is made."""
    from harness.runners.sandbox import find_bwrap, probe

    if probe(find_bwrap()):
        pytest.skip(f"the sandbox cannot run here: {probe(find_bwrap())}")
    venv = tmp_path / "private-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (site,) = (venv / "lib").glob("python3*/site-packages")
    (site / "deps.pth").write_text("".join(f"{p}\n" for p in sys.path if p.endswith("site-packages")))
    venv.chmod(0o700)
    done = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "harness",
            "run",
            "--submission",
            str(MINIMAL),
            "--runner",
            "sandbox",
            "--device",
            "cpu",
            "--data",
            synthetic_npz,
            "--runs-dir",
            str(tmp_path / "runs"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "uid 10001" in done.stderr and "chmod -R o+rX" in done.stderr and str(venv) in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "runs").exists()
