"""What every runner provides: start one phase of a submission, hand back a handle.

A runner knows *where* a command runs (a local process tree, a container); the
clock (`harness.clock`) decides *when* it is stopped, the same way for every runner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil

from harness.clock import Supervised
from harness.errors import RunnerError  # noqa: F401 - runners raise it from here
from harness.logs import LogSink
from harness.model import BuildInfo


@dataclass(frozen=True)
class PhaseSpec:
    """Everything a runner needs to start one phase; paths are host paths."""

    phase: str  # "train" | "predict"
    command: list[str]  # argv from submission.yaml, run in the submission directory
    submission_dir: Path
    data_dir: Path  # HAET_DATA, read-only: train.npz (train) or test.npz without labels (predict)
    checkpoints_dir: Path  # HAET_CHECKPOINTS: writable in train, read-only in predict
    events_file: Path  # HAET_EVENTS: JSON lines the submission may append
    output_dir: Path | None  # HAET_OUTPUT: predict only
    log_path: Path  # the phase's stdout+stderr, capped at log_limit_bytes
    budget_s: float
    grace_s: float
    seed: int
    device: str  # "cuda" | "cpu"
    gpu: str | None = None  # index or UUID of the one GPU this phase may use
    predict_budget_s: float | None = None  # train: the predict phase's budget, told to the entry to plan with
    log_limit_bytes: int = 50 * 2**20

    @property
    def writable_checkpoints(self) -> bool:
        return self.phase == "train"


@dataclass
class ExitInfo:
    """What a runner can say about how a started phase ended, beyond its exit code."""

    oom_killed: bool = False
    stray_processes_killed: int = 0
    notes: list[str] = field(default_factory=list)  # what the runner saw, e.g. a full checkpoint volume
    # Train only: when each checkpoint file last changed (its ctime, wall clock), by relative name,
    # read where the entry wrote it; None where the runner cannot see that (see docs/security.md).
    checkpoint_times: dict[str, float] | None = None
    # Train only: why the checkpoint folder could not be read in full where the entry wrote it
    # (harness.checkpoints.checkpoint_times); then none of it is scored.
    checkpoints_unreadable: str | None = None


class PhaseHandle(Supervised, Protocol):
    """A started phase: what the clock waits on and signals (harness.clock.Supervised), and the rest."""

    sink: LogSink  # the phase's log; its tail goes into the result

    def checkpoint_view(self) -> Path | None:
        """Where the harness can watch the checkpoints being written (train), None where it cannot."""

    def sample(self) -> tuple[float | None, int | None]:
        """CPU percent (100 = one core) and resident bytes of the whole phase, now."""

    def finish(self) -> ExitInfo:
        """After exit: kill what is left, release resources, say what happened."""


class Runner(Protocol):
    name: str
    isolated: bool  # False: the entry runs on the host with the harness's rights (recorded in every result)

    def prepare(self, submission_dir: Path, run_dir: Path) -> BuildInfo | None:
        """Untimed set-up before the train phase (building an entry's own image); None if none."""

    def start(self, spec: PhaseSpec) -> PhaseHandle: ...

    def describe(self) -> dict[str, str | None]:
        """Facts for the result's `environment`: `image` (in words) and, where there is one, `image_digest`."""


def sample_processes(pids: Iterable[int], known: dict[int, psutil.Process]) -> tuple[float, int, dict]:
    """CPU percent and resident bytes summed over `pids`, for a runner's `sample()`.

    `known` holds the psutil handles of the last sample (CPU percent is measured between two
    calls on one handle, 0.0 on the first); the handles of the live processes come back for the
    next call. A process that exits while it is read is left out."""
    cpu, rss, alive = 0.0, 0, {}
    for pid in pids:
        try:
            process = known.get(pid) or psutil.Process(pid)
            cpu += process.cpu_percent()
            rss += process.memory_info().rss
            alive[pid] = process
        except psutil.Error:
            pass
    return round(cpu, 1), rss, alive
