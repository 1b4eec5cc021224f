"""Runners start a phase somewhere: `local` (a process tree here) or `docker` (a container)."""

from __future__ import annotations

from harness.errors import RunnerError, UsageError
from harness.options import RunOptions
from harness.runners.base import ExitInfo, PhaseHandle, PhaseSpec, Runner

__all__ = ["ExitInfo", "PhaseHandle", "PhaseSpec", "Runner", "RunnerError", "make_runner", "runner_for"]

NO_ISOLATION = ("no isolated runner is available: no Docker engine answers. Start one (bash docker/start-engine.sh, "
                "or point DOCKER_HOST at it), or pass --runner local to run the entry on this host without isolation "
                "(it can then read and write what you can)")


def make_runner(name: str, **options) -> Runner:
    if name == "local":
        from harness.runners.local import LocalRunner

        return LocalRunner()
    if name == "docker":
        from harness.runners.docker import DockerRunner

        return DockerRunner(**options)
    raise ValueError(f"unknown runner {name!r}; use 'local' or 'docker'")


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:  # no SDK, no socket, no daemon, no permission
        return False


def runner_name(requested: str, *, isolation_required: bool) -> str:
    """`auto` -> the most isolated runner that works here.

    Organizer commands (`isolation_required`) never fall back to running an entry on the host:
    that takes an explicit --runner local.
    """
    if requested != "auto":
        return requested
    if docker_answers():
        return "docker"
    if isolation_required:
        raise UsageError(NO_ISOLATION)
    return "local"


def runner_for(options: RunOptions, *, isolation_required: bool = False) -> Runner:
    name = runner_name(options.runner, isolation_required=isolation_required)
    if name == "docker":
        return make_runner("docker", image=options.runtime_image, build_network=options.build_network or None,
                           build_timeout_s=options.build_timeout_s)
    return make_runner("local")
