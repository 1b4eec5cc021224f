"""The clock: owns the budget of a phase, whatever runner started it.

Time counts from the moment the command starts. SIGTERM goes out at
budget - grace, SIGKILL at the budget; the phase's seconds are measured here.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from harness.model import Signal
from harness.runners.base import PhaseHandle

TICK_S = 0.5  # how often `on_tick` (progress, events) runs while waiting


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


def supervise(
    handle: PhaseHandle,
    budget_s: float,
    grace_s: float,
    on_tick: Callable[[float], None] = lambda elapsed: None,
) -> ClockResult:
    """Wait for the phase to exit, signalling it at its deadlines.

    On Ctrl-C the phase is killed at once and `Interrupted` propagates.
    """
    start = handle.started_monotonic
    deadlines = [
        (start + max(budget_s - grace_s, 0.0), signal.SIGTERM, handle.terminate),
        (start + budget_s, signal.SIGKILL, handle.kill),
    ]
    sent: list[Signal] = []
    next_tick = start + TICK_S
    try:
        while True:
            now = time.monotonic()
            while deadlines and now >= deadlines[0][0]:
                _, sig, send = deadlines.pop(0)
                send()
                sent.append(Signal(sig.name, round(time.monotonic() - start, 3)))
            wake = min([next_tick] + [d[0] for d in deadlines])
            code = handle.wait(max(wake - time.monotonic(), 0.0))
            if code is not None:
                return ClockResult(code, time.monotonic() - start, sent)
            if time.monotonic() >= next_tick:
                on_tick(time.monotonic() - start)
                next_tick += TICK_S
    except KeyboardInterrupt:
        handle.kill()
        handle.wait(10.0)
        raise Interrupted() from None
