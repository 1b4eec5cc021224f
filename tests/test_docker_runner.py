"""The Docker runner itself: leftovers after a crash, Ctrl-C, entries with their own Dockerfile,
and the end-to-end graded run on the shared CIFAR-10 tarball."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.docker_support import ROOT, harness_leftovers, small_runner

pytestmark = pytest.mark.docker
HOSTILE = ROOT / "tests" / "hostile"
SHARED_TARBALL = Path(__file__).parents[2] / "shared/data/cifar10-jpeg.tar.gz"
SMALL_ENV = {"HAET_DOCKER_MEMORY": "256m", "HAET_DOCKER_CPUS": "1", "HAET_DOCKER_CHECKPOINT_LIMIT": "64m"}


def harness(*args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--runner", "docker", "--device", "cpu", *args],
        cwd=ROOT,
        env={**os.environ, **SMALL_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def wait_for_container(client, run: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if client.containers.list(filters={"label": [f"haet.run={run}", "haet.role=phase"]}, ignore_removed=True):
            return
        time.sleep(0.2)
    raise AssertionError(f"no container of run {run} started within {timeout}s")


def unique(name: str) -> str:
    """A run id no other test session on the same engine uses."""
    return f"{name}-{uuid.uuid4().hex[:6]}"


def common_args(tmp_path, image, data, run_id):
    return [
        "--image",
        image,
        "--data",
        data,
        "--train-per-class",
        "20",
        "--eval-per-class",
        "10",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--run-id",
        run_id,
    ]


def test_kill_9_of_the_harness_leaves_nothing_after_the_next_start(
    tmp_path, docker_client, runtime_image, synthetic_npz
):
    run_id = unique("killed-harness")
    proc = harness(
        "--submission",
        str(HOSTILE / "sleep-forever"),
        "--budget",
        "300",
        *common_args(tmp_path, runtime_image, synthetic_npz, run_id),
    )
    try:
        wait_for_container(docker_client, run_id)
    finally:
        proc.kill()
        proc.wait()
    assert harness_leftovers(docker_client, run_id), "the orphaned container is still there"
    runner = small_runner(runtime_image)  # what every harness start does
    assert runner.removed_leftovers >= 1
    assert harness_leftovers(docker_client, run_id) == []


def test_two_starts_removing_the_same_leftovers_both_leave_nothing(docker_client, runtime_image):
    """Harness starts on one engine clean up at once: the one that finds a removal already under
    way (409) waits until the container is gone rather than returning while it is still listed.
    The other start is ahead by a range of moments, so that some land while the engine is still
    killing the container."""
    from harness.runners.docker.handle import _ignore_gone

    runner = small_runner(runtime_image, cleanup=False)
    dead = subprocess.Popen(["sleep", "0"])
    dead.wait()
    for ahead_s in (0.0, 0.01, 0.02, 0.04, 0.08):
        run_id = unique("two-starts")
        labels = {**runner.labels("train", run_id), "haet.owner.pid": str(dead.pid)}  # a harness killed with -9
        container = docker_client.containers.run(
            runtime_image, ["sleep", "infinity"], detach=True, init=True, labels=labels
        )
        # The other start's removal, which may itself find this one's under way (409) or done (404).
        other = threading.Thread(target=_ignore_gone, args=(container.remove,), kwargs={"force": True, "v": True})
        other.start()
        time.sleep(ahead_s)
        try:
            runner.remove_leftovers()
            assert harness_leftovers(docker_client, run_id) == [], f"still listed, the other start {ahead_s}s ahead"
        finally:
            other.join()


def test_ctrl_c_stops_the_phase_and_removes_its_container(tmp_path, docker_client, runtime_image, synthetic_npz):
    run_id = unique("interrupted")
    proc = harness(
        "--submission",
        str(HOSTILE / "ignore-sigterm"),
        "--budget",
        "300",
        *common_args(tmp_path, runtime_image, synthetic_npz, run_id),
    )
    wait_for_container(docker_client, run_id)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    result = json.loads((tmp_path / "runs" / run_id / "result.json").read_text())
    assert result["status"] == "interrupted" and result["train"]["outcome"] == "interrupted"
    assert harness_leftovers(docker_client, run_id) == []


def test_live_runs_are_not_taken_for_leftovers(docker_client, runtime_image):
    mine = small_runner(runtime_image, cleanup=False)
    container = docker_client.containers.run(
        runtime_image,
        ["sleep", "60"],
        detach=True,
        entrypoint=[],
        labels=mine.labels("train", "live-run"),
        network_mode="none",
    )
    try:
        small_runner(runtime_image)  # a second harness starting beside a live one
        container.reload()
        assert container.status == "running"
    finally:
        container.remove(force=True)


def test_leftovers_are_listed_while_other_harnesses_remove_their_own(docker_client, runtime_image):
    """Every harness start lists the engine's harness containers while other harnesses remove theirs:
    one removed between the list and its inspect is gone, not an error that fails this start."""
    mine = small_runner(runtime_image, cleanup=False)
    stop, churned = threading.Event(), []

    def churn():  # another harness ending its phases, as fast as the engine allows
        while not stop.is_set():
            container = docker_client.containers.create(
                runtime_image, ["true"], entrypoint=[], labels=mine.labels("train", "churn"), network_mode="none"
            )
            container.remove(force=True)
            churned.append(container.id)

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        starts = 0
        while time.monotonic() < deadline and (starts < 30 or len(churned) < 30):
            mine.remove_leftovers()
            starts += 1
    finally:
        stop.set()
        thread.join(timeout=30)
    assert starts >= 30 and len(churned) >= 30, (starts, len(churned))


def test_a_harness_on_the_host_is_not_taken_for_a_container_while_the_engine_copies_one(docker_client, runtime_image):
    """While the engine copies out of any container, that container's /etc files show up in the
    host's mountinfo (below its overlay's merged/). A harness starting then must still know it runs
    on the host: labelled with that container as its own, its live phases were removed as leftovers
    by the next harness once that container was gone."""
    from harness.runners.docker import _own_container_id

    other = docker_client.containers.run(
        runtime_image, ["sleep", "60"], entrypoint=[], detach=True, network_mode="none"
    )
    stop, copies = threading.Event(), []

    def copy_out():  # what every phase's end does: get_archive from the holder
        while not stop.is_set():
            chunks, _ = other.get_archive("/etc/hostname")
            copies.append(len(b"".join(chunks)))

    thread = threading.Thread(target=copy_out, daemon=True)
    thread.start()
    try:
        shown, claimed = 0, set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (shown < 20 or len(copies) < 20):
            if other.id in Path("/proc/self/mountinfo").read_text():
                shown += 1  # the engine's copy is visible right now
            claimed.add(_own_container_id())
    finally:
        stop.set()
        thread.join(timeout=30)
        other.remove(force=True)
    assert shown >= 20, "the premise: the copy's mounts were seen on the host"
    assert claimed == {""}


def test_a_harness_inside_a_container_knows_which_one(docker_client, runtime_image):
    """The other side: in a container, its id is read from the engine's files at their own paths."""
    import inspect

    from harness.runners.docker import ENGINE_FILES, container_id_in

    program = f"import re\nENGINE_FILES = {ENGINE_FILES!r}\n{inspect.getsource(container_id_in)}\n"
    program += "print(container_id_in(open('/proc/self/mountinfo').read()))\n"
    container = docker_client.containers.run(
        runtime_image, ["python3", "-c", program], entrypoint=[], detach=True, network_mode="none"
    )
    try:
        assert container.wait(timeout=60)["StatusCode"] == 0, container.logs()
        assert container.logs().decode().strip() == container.id
    finally:
        container.remove(force=True)


def test_an_entry_with_its_own_dockerfile_is_built_and_run_in_its_image(
    tmp_path, docker_client, runtime_image, synthetic_npz
):
    entry = tmp_path / "own-image"
    entry.mkdir()
    (entry / "Dockerfile").write_text(
        f"FROM {runtime_image}\nUSER root\nRUN echo baked-into-the-image > /opt/marker\nUSER 10001\n"
    )
    (entry / "submission.yaml").write_text("name: own-image\ntrain: python train.py\npredict: python predict.py\n")
    (entry / "train.py").write_text(
        textwrap.dedent("""
        import os, numpy as np
        print(open("/opt/marker").read().strip())
        np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "m.npy"), np.zeros(1))
    """)
    )
    (entry / "predict.py").write_text((HOSTILE / "sleep-forever" / "predict.py").read_text())
    run_id = unique("own-image")
    proc = harness(
        "--submission", str(entry), "--budget", "30", *common_args(tmp_path, runtime_image, synthetic_npz, run_id)
    )
    out, _ = proc.communicate(timeout=300)
    run = tmp_path / "runs" / run_id
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "scored", out
    assert "baked-into-the-image" in (run / "train.log").read_text()
    assert (
        "haet-entry-own-image" in (run / "build.log").read_text()
        or "Successfully built" in (run / "build.log").read_text()
    )
    assert result["train"]["seconds"] < 10, "the image build is not timed"


@pytest.mark.skipif(not SHARED_TARBALL.is_file(), reason=f"{SHARED_TARBALL} is not here")
@pytest.mark.parametrize(
    "submission", ["tests/submissions/centroid", pytest.param("submission", marks=pytest.mark.slow)]
)
def test_graded_run_on_the_shared_cifar10_tarball(tmp_path, docker_client, runtime_image, submission):
    run_id = unique(Path(submission).name)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--submission",
            submission,
            "--runner",
            "docker",
            "--device",
            "cpu",
            "--image",
            runtime_image,
            "--data",
            f"tar:{SHARED_TARBALL}",
            "--budget",
            "30",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--run-id",
            run_id,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    run = tmp_path / "runs" / run_id
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "scored", (proc.stderr[-2000:], (run / "train.log").read_text()[-2000:])
    assert result["total"] == 1000 and result["environment"]["runner"] == "docker"
    assert result["environment"]["image"].startswith(runtime_image)
    assert result["train"]["seconds"] <= 30.5
    for name in ("train.log", "predict.log", "metrics.csv", "predictions.csv", "report.html"):
        assert (run / name).is_file(), name
    assert harness_leftovers(docker_client, run_id) == []


def test_engine_stats_stamps_keep_their_fraction():
    """CPU % divides CPU time by the engine's own clock, never by the harness's call time."""
    from harness.runners.docker.handle import _engine_time

    assert _engine_time("2026-11-25T19:43:54.5Z") - _engine_time("2026-11-25T19:43:53.25Z") == pytest.approx(1.25)
    assert _engine_time("2026-11-25T19:43:54.123456789Z") - _engine_time("2026-11-25T19:43:54Z") == pytest.approx(
        0.123456789, abs=1e-6
    )


def test_a_live_owner_is_known_by_its_start_tick_not_by_the_wall_clock():
    from harness.runners import procs
    from harness.runners.docker import _pid_alive

    me, ticks = str(os.getpid()), procs.start_ticks(os.getpid())
    assert ticks is not None and ticks == procs.start_ticks(os.getpid()), "the same process, the same tick"
    assert _pid_alive({"haet.owner.pid": me, "haet.owner.start_ticks": str(ticks)})
    assert not _pid_alive({"haet.owner.pid": me, "haet.owner.start_ticks": str(ticks - 1)}), "a reused pid"
    assert not _pid_alive({"haet.owner.pid": me, "haet.owner.start_ticks": "garbled"})
    child = subprocess.Popen(["sleep", "0"])
    child.wait()
    gone = {"haet.owner.pid": str(child.pid), "haet.owner.start_ticks": str(ticks)}
    assert procs.start_ticks(child.pid) is None and not _pid_alive(gone), "a reaped process is gone"
    assert _pid_alive({"haet.owner.pid": me}), "an older harness's label (no ticks) is left alone while its pid lives"
