"""The clock and its one Deadline, on real processes (the local runner)."""

from __future__ import annotations

import time

from harness.clock import Deadline, supervise
from harness.runners.base import PhaseSpec
from harness.runners.local import LocalRunner


def spec(tmp_path, command: list[str], budget: float, grace: float) -> PhaseSpec:
    for name in ("sub", "data", "ckpt"):
        (tmp_path / name).mkdir(exist_ok=True)
    return PhaseSpec(
        phase="train",
        command=command,
        submission_dir=tmp_path / "sub",
        data_dir=tmp_path / "data",
        checkpoints_dir=tmp_path / "ckpt",
        events_file=tmp_path / "events.jsonl",
        output_dir=None,
        log_path=tmp_path / "train.log",
        budget_s=budget,
        grace_s=grace,
        seed=0,
        device="cpu",
    )


def test_a_deadline_is_one_start_and_its_derived_times():
    before = time.time()
    deadline = Deadline.start(budget_s=8.0, grace_s=2.0)
    assert before <= deadline.started_unix <= time.time()
    assert deadline.term_monotonic == deadline.started_monotonic + 6.0
    assert deadline.kill_monotonic == deadline.started_monotonic + 8.0
    assert deadline.kill_unix == deadline.started_unix + 8.0
    assert Deadline(0.0, 0.0, budget_s=1.0, grace_s=5.0).term_monotonic == 0.0, "grace past the budget: at once"


def test_the_phase_is_told_the_clock_s_own_deadline(tmp_path):
    handle = LocalRunner().start(spec(tmp_path, ["sh", "-c", 'echo "$HAET_DEADLINE $HAET_GRACE_S"'], 5.0, 1.5))
    result = supervise(handle)
    handle.finish()
    told, grace = (tmp_path / "train.log").read_text().split()
    assert float(told) == round(handle.deadline.kill_unix, 3) and float(grace) == 1.5
    assert result.exit_code == 0 and not result.hit_deadline


def test_signals_leave_at_their_times_and_say_so(tmp_path):
    """A process that ignores SIGTERM: SIGTERM at budget - grace, SIGKILL at the budget, each recorded when it left."""
    command = ["python3", "-c", "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"]
    handle = LocalRunner().start(spec(tmp_path, command, 1.5, 0.5))
    result = supervise(handle)
    handle.finish()
    assert [s.name for s in result.signals] == ["SIGTERM", "SIGKILL"]
    assert 1.0 <= result.signals[0].at_s < 1.1 and 1.5 <= result.signals[1].at_s < 1.6
    assert result.exit_code == -9 and 1.5 <= result.seconds < 2.0
