"""The grading directory's run folders and the resume rule every backend shares: a run is done
when its result.json is final (any status but interrupted), whoever wrote it; an unfinished
attempt is kept aside, never deleted; one grader at a time holds OUT's lock."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from harness.console import Progress
from harness.errors import UsageError
from harness.unpack import UNPACKED_PREFIX

LOCK_FILE = ".grading.lock"


class GradeError(UsageError):
    """Bad input for a grading; the message says what to do (exit code 2)."""


def run_dir(out: Path, job) -> Path:
    """The directory of one graded run (a Job: its entry id and seed)."""
    return out / job.entry.id / f"seed-{job.seed}"


def completed_result(directory: Path) -> dict | None:
    """The run's result when it finished (any status but interrupted); None otherwise."""
    try:
        result = json.loads((directory / "result.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict) or result.get("status") in (None, "interrupted"):
        return None
    return result


def set_aside(directory: Path) -> Path | None:
    """Keep an unfinished attempt under a new name; a rerun never destroys earlier results."""
    if not directory.exists():
        return None
    for n in range(1, 10000):
        target = directory.with_name(f"{directory.name}.stale-{n}")
        if not target.exists():
            os.rename(directory, target)
            return target
    raise GradeError(f"too many stale attempts next to {directory}")


def remove_unpacked(entry_dir: Path) -> int:
    """Remove the unpacked copies of an archive or a repository (harness.unpack) that runs killed
    before they could remove their own left in an entry's folder; how many. Only while no run of
    the entry is live: a live run's copy is there too."""
    removed = 0
    for copy in entry_dir.glob(f"{UNPACKED_PREFIX}*"):
        if copy.is_dir() and not copy.is_symlink():
            shutil.rmtree(copy, ignore_errors=True)
            removed += 1
    return removed


# --- the lock ----------------------------------------------------------------------


def acquire_lock(out: Path, progress: Progress, wait_s: float = 300.0) -> int:
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    deadline, told = time.monotonic() + wait_s, False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() > deadline:
            os.close(fd)
            raise GradeError(
                f"another grading of {out} is still running (it holds {out / LOCK_FILE}); wait for it or stop it first"
            )
        if not told:
            progress.say(f"waiting for the runs of an earlier grading of {out} to stop...")
            told = True
        time.sleep(0.5)
