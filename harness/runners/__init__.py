"""Runners start a phase somewhere: `local` (a process tree here) or `docker` (a container)."""

from __future__ import annotations

from harness.runners.base import ExitInfo, PhaseHandle, PhaseSpec, Runner, RunnerError

__all__ = ["ExitInfo", "PhaseHandle", "PhaseSpec", "Runner", "RunnerError", "make_runner"]


def make_runner(name: str, **options) -> Runner:
    if name == "local":
        from harness.runners.local import LocalRunner

        return LocalRunner()
    if name == "docker":
        from harness.runners.docker import DockerRunner

        return DockerRunner(**options)
    raise ValueError(f"unknown runner {name!r}; use 'local' or 'docker'")
