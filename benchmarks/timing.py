"""What the runner overhead benchmarks share (docker_overhead.py, sandbox_overhead.py): a phase's
folders in a temporary directory, its end timed, the deadline's precision, and the summary of a
series of samples."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from harness.clock import supervise
from harness.runners.base import PhaseHandle, PhaseSpec, Runner

# Ignores SIGTERM, so only the SIGKILL at the deadline ends it.
STUBBORN = [
    "python",
    "-c",
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\nwhile True: time.sleep(0.01)",
]


def phase_spec(tmp: Path, phase: str, command: list[str], budget: float = 30.0, grace: float = 1.0) -> PhaseSpec:
    """A phase on CPU whose folders are made below `tmp`; predict gets an output folder."""
    for d in ("sub", "data", "ck", "ev", "out"):
        (tmp / d).mkdir(exist_ok=True)
    return PhaseSpec(
        phase=phase,
        command=command,
        submission_dir=tmp / "sub",
        data_dir=tmp / "data",
        checkpoints_dir=tmp / "ck",
        events_file=tmp / "ev" / "events.jsonl",
        output_dir=tmp / "out" if phase == "predict" else None,
        log_path=tmp / f"{phase}.log",
        budget_s=budget,
        grace_s=grace,
        seed=0,
        device="cpu",
    )


def finish_after_exit(handle: PhaseHandle) -> float:
    """Wait for the phase's command to exit, then finish the phase: the seconds finish() took."""
    code = None
    while code is None:
        code = handle.wait(5)
    exited = time.monotonic()
    handle.finish()
    return time.monotonic() - exited


def past_deadline(runner: Runner) -> float:
    """Seconds the clock measured for a STUBBORN phase (budget 3 s, grace 1 s) minus its budget."""
    with tempfile.TemporaryDirectory() as d:
        spec = phase_spec(Path(d), "train", STUBBORN, budget=3.0, grace=1.0)
        handle = runner.start(spec)
        result = supervise(handle)
        handle.finish()
        return result.seconds - spec.budget_s


def summary(values: list[float], digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} s (max {max(values):.{digits}f})"
