"""Fixtures for the Docker tests: an engine (or a visible skip) and the offline images.

The offline base images come from docker/build-base.sh and are reused while the script is
unchanged; each runtime image is rebuilt from the root Dockerfile on top of its base (layer cache:
seconds). Nothing is pulled from a registry. The CPU base is built here when missing (about 2 min);
the CUDA base never is (`make image-cuda`, see CUDA_BUILD): without it its tests skip, saying so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BASE_IMAGE = "haet-base:bookworm-cpu"
RUNTIME_IMAGE = "haet-runtime:cpu"
CUDA_BASE_IMAGE = "haet-base:bookworm-cuda"
CUDA_RUNTIME_IMAGE = "haet-runtime:cuda"
# Why the tests do not build it (docs/benchmarks.md, "Runtime images").
CUDA_BUILD = "`make image-cuda` builds it (about 20 min and 6.2 GB on the 2-core VM: too long for CI, which skips this)"


@contextlib.contextmanager
def image_lock():
    """One image build at a time on this host: parallel test workers (and suites) would otherwise each
    debootstrap the same base at once; the next one finds it current."""
    with open(Path(tempfile.gettempdir()) / "haet-test-images.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker

        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:  # no socket, no daemon, no permission
        pytest.skip(
            f"no Docker engine answers ({type(exc).__name__}: {str(exc)[:120]}); "
            "start one with `bash docker/start-engine.sh` (as root) to run the Docker tests"
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def runtime_image(docker_client) -> str:
    """haet-runtime:cpu from the offline base; built here when missing or stale."""
    with image_lock():
        build = subprocess.run(
            ["bash", "docker/build-base.sh", "cpu", BASE_IMAGE], cwd=ROOT, capture_output=True, text=True, timeout=900
        )
        if build.returncode != 0:
            pytest.skip(f"the offline base image could not be built (no Debian mirror?): {build.stderr[-400:]}")
        docker_client.images.build(
            path=str(ROOT), tag=RUNTIME_IMAGE, buildargs={"BASE_IMAGE": BASE_IMAGE}, rm=True, forcerm=True, pull=False
        )
    return RUNTIME_IMAGE


@pytest.fixture(scope="session")
def cuda_runtime_image(docker_client) -> str:
    """haet-runtime:cuda on the base `make image-cuda` built, when that base is current; else a skip."""
    check = subprocess.run(
        ["bash", "docker/build-base.sh", "--check", "cuda", CUDA_BASE_IMAGE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check.returncode != 0:
        pytest.skip(f"{check.stderr.strip().removeprefix('[build-base] ')}: {CUDA_BUILD}")
    with image_lock():
        docker_client.images.build(
            path=str(ROOT),
            tag=CUDA_RUNTIME_IMAGE,
            buildargs={"BASE_IMAGE": CUDA_BASE_IMAGE},
            rm=True,
            forcerm=True,
            pull=False,
        )
    return CUDA_RUNTIME_IMAGE


def harness_leftovers(client, run: str | None = None) -> list[str]:
    """Containers and volumes of the harness (of one run) still on the engine."""
    label = f"haet.run={run}" if run else "haet.harness=1"
    containers = [c.name for c in client.containers.list(all=True, filters={"label": label}, ignore_removed=True)]
    volumes = [v.name for v in client.volumes.list(filters={"label": label})]
    return containers + volumes


def small_runner(image: str, log_limit: int | None = None, **options):
    """A DockerRunner with small limits so hostile runs finish fast; optionally a small log cap."""
    from harness.runners.docker import DockerRunner

    defaults = dict(
        memory="256m",
        cpus=1.0,
        pids_limit=256,
        checkpoint_limit="64m",
        output_limit="8m",
        events_limit="1m",
        shm_size="64m",
        tmp_size="64m",
    )
    defaults.update(options)

    class SmallRunner(DockerRunner):
        def start(self, spec):
            if log_limit is not None:
                spec = dataclasses.replace(spec, log_limit_bytes=log_limit)
            return super().start(spec)

    return SmallRunner(image=image, **defaults)
