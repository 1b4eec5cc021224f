"""The train phase's checkpoints, as the harness sees them: listed, timed, and how they were saved.

An entry names, links, swaps and nests its checkpoints as it likes, so every name is escaped and
every walk goes through the shared walker (harness.walk: bounded, never led out of the folder).
File times are the kernel's ctimes, which an entry cannot set back. Fail closed: a checkpoint
folder the walker cannot read in full (past WALK_LIMIT entries, folders nested past its depth,
a folder the harness may not open) could hide a late checkpoint, so none of it is scored.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from harness import text
from harness.clock import Deadline
from harness.files import change_times
from harness.model import PhaseResult
from harness.walk import MAX_DEPTH, MAX_ENTRIES, WalkLimit, open_beneath, remove_beneath, walk

HASHED_CHECKPOINT_LIMIT = 2**30  # bigger checkpoints are listed without a sha256
LISTED_CHECKPOINTS = 100  # result.json names at most this many checkpoint files; the count covers all
FILE_CLOCK_SLACK_S = 0.02  # file times come from the kernel's coarse clock (one tick late at most)
WATCHED_FILES = 1_000  # files whose saves the watcher follows
WALK_LIMIT = MAX_ENTRIES  # files and folders in HAET_CHECKPOINTS that the harness reads (Docker's tmpfs holds as many)


def _unreadable(exc: Exception) -> str:
    """Why a checkpoint folder cannot be scored, for the phase's detail."""
    why = str(exc) if isinstance(exc, WalkLimit) else f"a folder in it could not be read ({exc.strerror or exc})"
    return (
        f"HAET_CHECKPOINTS could not be read in full ({text.clean(why, 200)}; the harness reads at most "
        f"{WALK_LIMIT} files and folders, {MAX_DEPTH} levels deep): no checkpoint was scored, since one "
        "written after the deadline could hide in what was not read"
    )


def checkpoint_times(directory: Path) -> tuple[dict[str, float] | None, str | None]:
    """(ctime by relative name, None), or (None, why) when the folder cannot be read in full: a
    runner passes both on in its ExitInfo, read where the entry wrote, before any copy or chmod."""
    try:
        return change_times(directory), None
    except (WalkLimit, OSError) as exc:
        return None, _unreadable(exc)


def settle(
    phase: PhaseResult, times: dict[str, float] | None, unreadable: str | None, checkpoints: Path, deadline: Deadline
) -> str | None:
    """After train, before predict: what may be scored is what is left in `checkpoints`.

    A folder that could not be read in full, where the entry wrote it (`unreadable`, from the
    runner) or as the harness now holds it, is emptied: no checkpoint is scored, and the reason
    comes back for the phase's detail. Otherwise the checkpoints written after the deadline are
    removed (drop_late_checkpoints)."""
    if unreadable is None:
        try:
            for _ in walk(checkpoints, WALK_LIMIT):
                pass
        except (WalkLimit, OSError) as exc:
            unreadable = _unreadable(exc)
    if unreadable is not None:
        shutil.rmtree(checkpoints, ignore_errors=True)  # never follows a link (fd-based on Linux)
        checkpoints.mkdir(parents=True, exist_ok=True)
        return unreadable
    if times is not None:
        drop_late_checkpoints(phase, times, checkpoints, deadline)
    return None


def list_checkpoints(directory: Path) -> tuple[list[dict], int]:
    """The first LISTED_CHECKPOINTS regular files by name (size, sha256) and how many there are.

    Names are the entry's choice, in any bytes: they are listed escaped (harness.text). Links are
    not followed, nor counted. A folder the walker cannot read in full lists nothing (settle has
    emptied it already: this is the last guard before predict)."""
    count, first = 0, []
    try:
        for found in walk(directory, WALK_LIMIT):  # keeps at most 2 x LISTED_CHECKPOINTS, however many there are
            if not found.is_file:
                continue
            count += 1
            first.append(found)
            if len(first) > 2 * LISTED_CHECKPOINTS:
                first = sorted(first, key=_order)[:LISTED_CHECKPOINTS]
    except (WalkLimit, OSError):
        return [], 0
    listed = []
    for found in sorted(first, key=_order)[:LISTED_CHECKPOINTS]:
        size = found.st.st_size
        sha = None
        if size <= HASHED_CHECKPOINT_LIMIT:
            sha = _sha256(directory, found.rel, found.same_file)
        listed.append({"name": text.file_name(found.rel), "bytes": size, "sha256": sha})
    return listed, count


def _order(found) -> list[str]:
    return found.rel.split(os.sep)


def _sha256(directory: Path, rel: str, expect: tuple[int, int]) -> str | None:
    """The file that was listed, opened beneath the folder; None when it is not there any more."""
    try:
        fd = open_beneath(directory, rel, expect)
    except OSError:
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(2**20):
            digest.update(chunk)
    return digest.hexdigest()


def drop_late_checkpoints(phase: PhaseResult, times: dict[str, float], checkpoints: Path, deadline: Deadline) -> None:
    """A checkpoint written after the deadline is never scored: it is removed before predict.

    `times` are the files' ctimes (checkpoint_times): the kernel's clock, which an entry cannot
    set back. Removed beneath the folder with no link followed."""
    if not times:
        return
    phase.last_checkpoint_write_s = round(max(times.values()) - deadline.started_unix, 3)
    cutoff = deadline.kill_unix + FILE_CLOCK_SLACK_S
    late = sorted(name for name, changed in times.items() if changed > cutoff)
    for name in late:
        remove_beneath(checkpoints, name)
    phase.late_checkpoints = [text.file_name(name) for name in late[:LISTED_CHECKPOINTS]]


State = tuple[tuple[str, tuple[int, int], int, int], ...]  # (relative name, (device, inode), size, mtime_ns), by name


def watched_state(root: Path) -> tuple[State, bool]:
    """The folder's first WATCHED_FILES regular files (links skipped), and whether that is all of
    them: not past WATCHED_FILES files, nor past 2 x WATCHED_FILES entries (an entry's million empty
    folders must not cost every look), nor with a folder that could not be read. The watcher walks
    the folder once a tick for both SaveWatch and the snapshots: it looks often, so what it reads
    is small; what it misses costs a note or a curve point, never a score."""
    files, complete = [], True
    try:
        for found in walk(root, 2 * WATCHED_FILES):
            if not found.is_file:
                continue
            if len(files) == WATCHED_FILES:
                complete = False
                break
            files.append((found.rel, found.same_file, found.st.st_size, found.st.st_mtime_ns))
    except (WalkLimit, OSError):
        complete = False
    return tuple(sorted(files)), complete


class SaveWatch:
    """Notices checkpoints rewritten in place: the same file (inode) changed between two looks.

    An atomic save (a temporary file, then a rename) gives the name a new inode every time; a
    file rewritten in place keeps its inode, and a kill in mid-write leaves it half written.
    """

    def __init__(self) -> None:
        self.in_place: set[str] = set()
        self._seen: dict[str, tuple[str, tuple[int, int], int, int]] = {}  # name -> its entry in the last state

    def look(self, state: State) -> None:
        """One look (watched_state: also a folder read only in part)."""
        for file in state:
            before = self._seen.get(file[0])
            if before and before[1] == file[1] and before[2:] != file[2:]:  # same inode, other size or mtime
                self.in_place.add(text.file_name(file[0]))
            self._seen[file[0]] = file
