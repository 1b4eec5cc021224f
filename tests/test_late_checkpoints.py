"""A checkpoint written after the deadline is never scored, even if the kill comes late.

The clock kills on time (tests/test_verdict_integrity.py); this is the second line: the
harness reads each checkpoint's ctime, which the kernel sets on every write and which an
entry cannot set back, and drops what changed after the deadline. To get writes past the
deadline at all, these tests hold back the runner's SIGKILL on purpose.
"""

from __future__ import annotations

import os
import time

import pytest

from harness.console import Progress
from harness.model import Outcome, Status
from harness.options import RunOptions
from harness.run import graded_run
from harness.runners.local import LocalRunner

KILL_DELAY_S = 1.5

TRAIN_THEN_KEEP_WRITING = """
import os, signal, time, numpy as np
signal.signal(signal.SIGTERM, signal.SIG_IGN)
d = np.load(os.path.join(os.environ["HAET_DATA"], "train.npz"))
x = d["images"].reshape(len(d["images"]), -1).astype(np.float32) / 255.0
means = np.stack([x[d["labels"] == c].mean(axis=0) for c in range(len(d["classes"]))])
ckpt = os.environ["HAET_CHECKPOINTS"]
if not os.path.exists("only-late"):
    np.save(os.path.join(ckpt, "model.npy"), means)
deadline = float(os.environ["HAET_DEADLINE"])
while time.time() < deadline + 0.3:
    time.sleep(0.01)
np.save(os.path.join(ckpt, "model.npy" if os.path.exists("only-late") else "late-model.npy"), means)
old = os.path.join(ckpt, "late-model.npy")
if os.path.exists(old):
    os.utime(old, (deadline - 100, deadline - 100))  # an mtime in the past changes nothing: ctime moves on
while True:
    time.sleep(0.05)
"""


class LateKillRunner(LocalRunner):
    """The local runner with its SIGKILL held back: a clock that failed, on purpose."""

    def start(self, spec):
        handle = super().start(spec)
        kill = handle.kill

        def late_kill() -> None:
            time.sleep(KILL_DELAY_S)
            kill()

        handle.kill = late_kill
        return handle


def grade(tmp_path, submission, data, budget_s=3.0):
    options = RunOptions(
        submission=submission,
        data=data,
        budget_s=budget_s,
        grace_s=1.0,
        predict_budget_s=20.0,
        device="cpu",
        runs_dir=tmp_path / "runs",
        cache_dir=tmp_path / "cache",
        train_per_class=20,
        eval_per_class=10,
        run_id="late",
    )
    return graded_run(options, LateKillRunner(), Progress(quiet=True))


def test_a_checkpoint_written_after_the_deadline_is_not_scored(tmp_path, synthetic_npz, make_submission):
    entry = make_submission("late", TRAIN_THEN_KEEP_WRITING)
    result = grade(tmp_path, entry, synthetic_npz)
    train = result.train
    assert train.outcome is Outcome.KILLED_AT_DEADLINE
    assert train.signals[-1].at_s >= 3.0
    assert train.late_checkpoints == ["late-model.npy"]
    assert [c["name"] for c in train.checkpoints] == ["model.npy"], "only what was saved in time is scored"
    assert train.last_checkpoint_write_s is not None and train.last_checkpoint_write_s > 3.0
    assert any("after the deadline" in w for w in result.warnings)
    assert result.status is Status.SCORED  # the model saved in time still counts


def test_an_entry_whose_only_checkpoint_is_late_has_none(tmp_path, synthetic_npz, make_submission):
    entry = make_submission("only-late", TRAIN_THEN_KEEP_WRITING)
    (entry / "only-late").write_text("save nothing until after the deadline\n")
    result = grade(tmp_path, entry, synthetic_npz)
    assert result.train.late_checkpoints == ["model.npy"]
    assert result.train.outcome is Outcome.NO_CHECKPOINT
    assert "before the deadline" in result.train.detail
    assert result.status is Status.FAILED and result.predict.outcome is Outcome.NOT_STARTED


def test_file_times_cannot_be_set_back(tmp_path):
    """The premise: utime moves mtime anywhere, but ctime becomes now."""
    f = tmp_path / "f"
    f.write_text("x")
    time.sleep(0.05)
    before = time.time()
    os.utime(f, (0, 0))
    st = f.stat()
    assert st.st_mtime == 0 and st.st_ctime >= before - 0.02


HIDE_LATE_CHECKPOINT = """
import os, signal, time, numpy as np
signal.signal(signal.SIGTERM, signal.SIG_IGN)
ckpt = os.environ["HAET_CHECKPOINTS"]
np.save(os.path.join(ckpt, "model.npy"), np.zeros((10, 3072), np.float32))  # in time
deep = ckpt
if os.path.exists("deep"):  # the late file 70 folders down: past the walker's 64 levels
    for _ in range(70):
        deep = os.path.join(deep, "d")
    os.makedirs(deep)
else:  # the late file behind 10,001 empty folders: past the walker's 10,000 entries
    for i in range(10_001):
        os.mkdir(os.path.join(ckpt, f"e{i:05d}"))
    deep = os.path.join(ckpt, "zz")
    os.mkdir(deep)
deadline = float(os.environ["HAET_DEADLINE"])
while time.time() < deadline + 0.3:
    time.sleep(0.01)
np.save(os.path.join(deep, "late.npy"), np.zeros(3))
while True:
    time.sleep(0.05)
"""


@pytest.mark.parametrize("where", ["deep", "many"])
def test_a_late_checkpoint_hidden_past_the_walker_s_bounds_means_no_checkpoint_is_scored(
    tmp_path, synthetic_npz, make_submission, where
):
    """A walk that stopped at its bound and kept what it saw would miss the late file and score the
    rest: the harness cannot tell when each file was written, so it scores none and says why."""
    entry = make_submission(where, HIDE_LATE_CHECKPOINT)
    if where == "deep":
        (entry / "deep").write_text("hide it deep\n")
    # 8 s for 10,001 folders made at the lowest priority: on a loaded machine 3 s ended the phase
    # before the last of them, and the walk then saw all there was.
    result = grade(tmp_path, entry, synthetic_npz, budget_s=8.0 if where == "many" else 3.0)
    train = result.train
    assert train.outcome is Outcome.NO_CHECKPOINT and train.checkpoints == []
    assert "could not be read in full" in train.detail and "no checkpoint was scored" in train.detail
    assert result.status is Status.FAILED and result.predict.outcome is Outcome.NOT_STARTED
