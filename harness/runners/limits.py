"""What the isolating runners (Docker and the sandbox) give a phase alike: the user and paths an
entry sees, so it cannot tell the two apart by where things are, and the limits it runs under,
each read the same way (an explicit option, else $HAET_<RUNNER>_<NAME>, else the default)."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from harness.errors import RunnerError

DOCKER_PREFIX = "HAET_DOCKER"  # of the environment variables that set the Docker runner's options
UID = GID = 10001  # the entry's user inside, and outside wherever the harness can choose
USER = f"{UID}:{GID}"

C_SUBMISSION = "/submission"
C_DATA = "/data"
C_CHECKPOINTS = "/checkpoints"
C_OUTPUT = "/output"
C_EVENTS = "/haet/events.jsonl"

GIB, MIB = 2**30, 2**20
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_NOT_SIZES = {"cpus": float, "pids_limit": int}


def parse_size(value: int | str) -> int:
    """`12g`, `256m`, `2GiB` or a number of bytes -> bytes."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise RunnerError(f"not a size: {value!r} (use e.g. 512m, 12g or a number of bytes)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** " kmgt".index(unit or " "))


def option(prefix: str, value, name: str, default):
    """An explicit option, else $<prefix>_<NAME> where set and not empty, else the default."""
    if value is not None:
        return value
    return os.environ.get(f"{prefix}_{name.upper()}") or default


@dataclass(frozen=True)
class PhaseLimits:
    """What a phase may use; each option is given to the runner by this name (sizes as `512m`,
    `12g` or bytes), or as $HAET_DOCKER_<NAME> / $HAET_SANDBOX_<NAME>, e.g. HAET_DOCKER_MEMORY=256m."""

    memory: int = 12 * GIB  # the competition host's RAM; no swap
    cpus: float = 8.0  # at most the CPUs the runner has
    pids_limit: int = 4096  # processes and threads
    tmp_size: int = 1 * GIB  # the /tmp tmpfs
    shm_size: int = 2 * GIB  # /dev/shm
    checkpoint_limit: int = 2 * GIB  # bytes in /checkpoints in train
    output_limit: int = 64 * MIB  # bytes in /output in predict
    events_limit: int = 16 * MIB  # the events file's size before the phase is killed

    @classmethod
    def read(cls, prefix: str, cpus_there: float, given: dict) -> PhaseLimits:
        """The limits from the runner's keyword options `given` and the environment; `cpus_there`
        is how many CPUs the runner can give. An option no runner has is a TypeError, as a wrong
        keyword is."""
        unknown = set(given) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown runner option(s): {', '.join(sorted(unknown))}")
        values = {}
        for f in dataclasses.fields(cls):
            value = option(prefix, given.get(f.name), f.name, f.default)
            values[f.name] = _NOT_SIZES.get(f.name, parse_size)(value)
        values["cpus"] = min(values["cpus"], cpus_there)
        return cls(**values)

    @property
    def file_size(self) -> int:
        """RLIMIT_FSIZE: no one file may outgrow the largest place it can be written to."""
        return max(self.checkpoint_limit, self.output_limit, self.events_limit)


def events_over_cap(events_file: Path, cap: int) -> str | None:
    """The note for a phase whose events file grew past `cap` bytes (it is then killed); None if not."""
    try:
        size = events_file.stat().st_size
    except OSError:
        return None
    return f"the events file passed its cap of {cap} bytes; the phase was killed" if size > cap else None
