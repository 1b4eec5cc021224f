"""Every walk of a checkpoint folder is the shared walker's: bounded, never led out of the folder,
and a folder it cannot read in full is never scored (harness/checkpoints.py, the runners' caps)."""

from __future__ import annotations

import os
import time

import pytest

from harness.checkpoints import WALK_LIMIT, checkpoint_times, drop_late_checkpoints, list_checkpoints, settle
from harness.clock import Deadline
from harness.files import change_times
from harness.hostfiles import folder_bytes, keep_regular, trim_to_cap
from harness.model import Outcome, PhaseResult
from harness.walk import MAX_DEPTH, WalkLimit


def phase() -> PhaseResult:
    return PhaseResult(phase="train", outcome=Outcome.COMPLETED, seconds=1.0, budget_s=1.0)


def host_folder(tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    (host / "model.bin").write_text("HOST-SECRET")
    return host


def nest(root, levels: int):
    deep = root
    for _ in range(levels):
        deep = deep / "d"
    deep.mkdir(parents=True)
    return deep


def test_a_late_checkpoint_behind_a_swapped_folder_never_removes_a_host_file(tmp_path):
    """The times were read while `sub` was a folder; by the time late files are removed it is a
    link to a host folder. A path-based unlink (the old code) removed the host's file."""
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "sub").mkdir(parents=True)
    (checkpoints / "sub" / "model.bin").write_bytes(b"late")
    deadline = Deadline.start(0.01, 0.0)
    time.sleep(0.05)
    os.utime(checkpoints / "sub" / "model.bin")  # a ctime past the deadline
    times = change_times(checkpoints)
    host = host_folder(tmp_path)
    os.rename(checkpoints / "sub", tmp_path / "moved")
    os.symlink(host, checkpoints / "sub")
    drop_late_checkpoints(phase(), times, checkpoints, deadline)
    assert (host / "model.bin").read_text() == "HOST-SECRET"


@pytest.mark.parametrize("trick", ["many", "deep"])
def test_a_folder_past_the_bounds_has_no_times_and_is_emptied_unscored(tmp_path, trick):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "model.npy").write_bytes(b"saved in time")
    if trick == "many":
        for i in range(WALK_LIMIT):
            (checkpoints / f"e{i}").mkdir()
    else:
        (nest(checkpoints, MAX_DEPTH + 1) / "late.npy").write_bytes(b"hidden")
    with pytest.raises(WalkLimit):
        change_times(checkpoints)  # the old os.walk read it all, however big
    times, unreadable = checkpoint_times(checkpoints)
    assert times is None and "could not be read in full" in unreadable
    result = phase()
    assert settle(result, times, unreadable, checkpoints, Deadline.start(10, 1)) == unreadable
    assert list(checkpoints.iterdir()) == [] and list_checkpoints(checkpoints) == ([], 0)


def test_a_folder_that_grew_past_the_bounds_after_the_runner_read_it_is_emptied_too(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    nest(checkpoints, MAX_DEPTH + 1)
    (checkpoints / "model.npy").write_bytes(b"x")
    why = settle(phase(), {}, None, checkpoints, Deadline.start(10, 1))
    assert why and "nested more than 64 deep" in why and list(checkpoints.iterdir()) == []


def test_list_checkpoints_hashes_only_the_listed_files_and_never_a_link(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    (checkpoints / "sub").mkdir(parents=True)
    (checkpoints / "sub" / "model.bin").write_bytes(b"weights")
    host = host_folder(tmp_path)
    os.symlink(host / "model.bin", checkpoints / "host.bin")
    os.symlink(host, checkpoints / "host-folder")
    listed, count = list_checkpoints(checkpoints)
    assert count == 1 and [c["name"] for c in listed] == [os.path.join("sub", "model.bin")]
    assert listed[0]["bytes"] == 7 and listed[0]["sha256"]


def test_the_sandbox_caps_never_follow_a_link_and_fail_closed_past_the_bounds(tmp_path):
    folder = tmp_path / "checkpoints"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "model.bin").write_bytes(b"m" * 100)
    host = host_folder(tmp_path)
    os.symlink(host, folder / "host-folder")
    os.symlink(host / "model.bin", folder / "host.bin")
    os.mkfifo(folder / "pipe")
    assert folder_bytes(folder) < 1000, "the host folder behind the link is not counted"
    assert sorted(keep_regular(folder)) == ["host-folder", "host.bin", "pipe"]
    assert (host / "model.bin").read_text() == "HOST-SECRET"
    assert trim_to_cap(folder, 10) == [os.path.join("sub", "model.bin")]
    assert (folder / "sub" / "model.bin").stat().st_size == 10
    nest(folder, MAX_DEPTH + 1)
    assert folder_bytes(folder) == -1
    with pytest.raises(WalkLimit):
        keep_regular(folder)
    assert list(folder.iterdir()) == [], "past the bounds the folder is emptied: nothing unread is used"
