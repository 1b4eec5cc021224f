"""The clock: owns the budget of a phase, whatever runner started it.

Time counts from the moment the command starts. SIGTERM goes out at
budget - grace, SIGKILL at the budget; the phase's seconds are measured here.

The clock's loop does nothing but wait and signal: reading the entry's events,
sampling and progress run on other threads (`harness.run.Watcher`, the monitor),
so nothing an entry writes can keep the loop busy past a deadline.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Optional

from harness.model import Signal
from harness.runners.base import PhaseHandle


@dataclass
class ClockResult:
    exit_code: Optional[int]
    seconds: float
    signals: list[Signal] = field(default_factory=list)

    @property
    def hit_deadline(self) -> bool:
        return bool(self.signals)


class Interrupted(Exception):
    """The operator asked the harness to stop (Ctrl-C or SIGTERM to the harness)."""


def supervise(handle: PhaseHandle, budget_s: float, grace_s: float) -> ClockResult:
    """Wait for the phase to exit, signalling it at its deadlines.

    A signal's `at_s` is when it left (before the runner delivers it), so a slow delivery
    shows up as lateness instead of hiding in it. On Ctrl-C the phase is killed at once
    and `Interrupted` propagates.
    """
    start = handle.started_monotonic
    deadlines = [
        (start + max(budget_s - grace_s, 0.0), signal.SIGTERM, handle.terminate),
        (start + budget_s, signal.SIGKILL, handle.kill),
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
