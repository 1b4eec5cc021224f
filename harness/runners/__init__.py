"""Runners start a phase somewhere: `local` (a process tree here), `docker` (a container) or
`sandbox` (a bubblewrap sandbox, for hosts without a Docker engine)."""

from __future__ import annotations

from harness.errors import RunnerError, UsageError
from harness.options import RunOptions
from harness.runners.base import ExitInfo, PhaseHandle, PhaseSpec, Runner

__all__ = ["ExitInfo", "PhaseHandle", "PhaseSpec", "Runner", "RunnerError", "make_runner", "runner_for"]

NO_ISOLATION = (
    "no isolated runner is available: no Docker engine answers, and {sandbox}. Start an engine "
    "(bash docker/start-engine.sh, or point DOCKER_HOST at it), make the sandbox work, or pass --runner local "
    "to run the entry on this host without isolation (it can then read and write what you can)"
)


def make_runner(name: str, **options) -> Runner:
    if name == "local":
        from harness.runners.local import LocalRunner

        return LocalRunner()
    if name == "docker":
        from harness.runners.docker import DockerRunner

        return DockerRunner(**options)
    if name == "sandbox":
        from harness.runners.sandbox import SandboxRunner

        return SandboxRunner(**options)
    raise ValueError(f"unknown runner {name!r}; use 'local', 'docker' or 'sandbox'")


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        client.close()
        return True
    except Exception:  # no SDK, no socket, no daemon, no permission
        return False


def sandbox_refusal() -> str | None:
    """None when the bubblewrap sandbox works here (probed once per process), else why not."""
    from harness.runners.sandbox import find_bwrap, probe

    return probe(find_bwrap())


def runner_name(requested: str, *, isolation_required: bool) -> str:
    """`auto` -> the most isolated runner that works here: docker, else sandbox, else local.

    Organizer commands (`isolation_required`) never fall back to running an entry on the host:
    that takes an explicit --runner local.
    """
    if requested != "auto":
        return requested
    if docker_answers():
        return "docker"
    refused = sandbox_refusal()
    if refused is None:
        return "sandbox"
    if isolation_required:
        raise UsageError(NO_ISOLATION.format(sandbox=refused))
    return "local"


def runner_for(options: RunOptions, *, isolation_required: bool = False) -> Runner:
    name = runner_name(options.runner, isolation_required=isolation_required)
    if name == "docker":
        return make_runner(
            "docker",
            image=options.runtime_image,
            build_network=options.build_network or None,
            build_timeout_s=options.build_timeout_s,
        )
    if name == "sandbox":
        return make_runner("sandbox")
    return make_runner("local")
