"""The clock: owns the budget of a phase, whatever runner started it.

Time counts from the moment the command starts. SIGTERM goes out at
budget - grace, SIGKILL at the budget; the phase's seconds are measured here.

The clock's loop does nothing but wait and signal: reading the entry's events,
sampling and progress run on other threads (`harness.phase.Watcher`, the monitor),
so nothing an entry writes can keep the loop busy past a deadline.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Protocol

from harness.model import Signal


@dataclass(frozen=True)
class Deadline:
    """A phase's clock, made once, the moment before its command or container is created.

    Everything times the phase from here: SIGTERM and SIGKILL, `HAET_DEADLINE` (the SIGKILL on
    the wall clock, as the entry is told), event stamps and the checkpoints' file times. Starting
    a container takes a fraction of a second; it is the phase's, the same for every entry.
    """

    started_monotonic: float
    started_unix: float
    budget_s: float
    grace_s: float

    @classmethod
    def start(cls, budget_s: float, grace_s: float) -> Deadline:
        return cls(time.monotonic(), time.time(), budget_s, grace_s)

    @property
    def term_monotonic(self) -> float:
        return self.started_monotonic + max(self.budget_s - self.grace_s, 0.0)

    @property
    def kill_monotonic(self) -> float:
        return self.started_monotonic + self.budget_s

    @property
    def kill_unix(self) -> float:
        """HAET_DEADLINE."""
        return self.started_unix + self.budget_s

    def elapsed(self) -> float:
        return time.monotonic() - self.started_monotonic


@dataclass
class ClockResult:
    exit_code: int | None
    seconds: float
    signals: list[Signal] = field(default_factory=list)

    @property
    def hit_deadline(self) -> bool:
        return bool(self.signals)


class Supervised(Protocol):
    """What the clock needs of a started phase; every runner's PhaseHandle is one (harness.runners.base)."""

    deadline: Deadline  # the phase's clock, started just before its command

    def wait(self, timeout: float) -> int | None:
        """The exit code once the command has exited, None if still running after `timeout`."""

    def terminate(self) -> None:
        """SIGTERM to every process of the phase."""

    def kill(self) -> None:
        """SIGKILL to every process of the phase."""


class Interrupted(Exception):
    """The operator asked the harness to stop (Ctrl-C or SIGTERM to the harness)."""


def supervise(handle: Supervised) -> ClockResult:
    """Wait for the phase to exit, signalling it at its deadlines.

    A signal's `at_s` is when it left (before the runner delivers it), so a slow delivery
    shows up as lateness instead of hiding in it. On Ctrl-C the phase is killed at once
    and `Interrupted` propagates.
    """
    deadline = handle.deadline
    start = deadline.started_monotonic
    deadlines = [
        (deadline.term_monotonic, signal.SIGTERM, handle.terminate),
        (deadline.kill_monotonic, signal.SIGKILL, handle.kill),
    ]
    sent: list[Signal] = []
    try:
        while True:
            if deadlines and time.monotonic() >= deadlines[0][0]:
                _, sig, send = deadlines.pop(0)
                left = time.monotonic()
                send()
                sent.append(Signal(sig.name, round(left - start, 3)))
                continue
            wait = deadlines[0][0] - time.monotonic() if deadlines else 1.0
            code = handle.wait(max(wait, 0.0))
            if code is not None:
                return ClockResult(code, time.monotonic() - start, sent)
    except KeyboardInterrupt:
        handle.kill()
        handle.wait(10.0)
        raise Interrupted() from None
