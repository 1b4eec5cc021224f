"""The train phase's checkpoints, as the harness sees them: listed, timed, and how they were saved.

An entry names and writes its checkpoints as it likes, so every name is escaped and every
listing is bounded. File times are the kernel's ctimes, which an entry cannot set back.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional

from harness import text
from harness.clock import Deadline
from harness.model import PhaseResult

HASHED_CHECKPOINT_LIMIT = 2**30  # bigger checkpoints are listed without a sha256
LISTED_CHECKPOINTS = 100  # result.json names at most this many checkpoint files; the count covers all
FILE_CLOCK_SLACK_S = 0.02  # file times come from the kernel's coarse clock (one tick late at most)
WATCHED_FILES = 1_000  # files whose saves the watcher follows


def list_checkpoints(directory: Path) -> tuple[list[dict], int]:
    """The first LISTED_CHECKPOINTS regular files by name (size, sha256) and how many there are.

    Names are the entry's choice, in any bytes: they are listed escaped (harness.text).
    """
    def files():
        for dirpath, _, filenames in os.walk(directory):
            for name in filenames:
                path = Path(dirpath) / name
                if path.is_file() and not path.is_symlink():
                    yield path

    count, first = 0, []
    for path in files():  # keeps at most 2 x LISTED_CHECKPOINTS names, however many files there are
        count += 1
        first.append(path)
        if len(first) > 2 * LISTED_CHECKPOINTS:
            first = sorted(first)[:LISTED_CHECKPOINTS]
    found = []
    for file in sorted(first)[:LISTED_CHECKPOINTS]:
        size = file.stat().st_size
        sha = None
        if size <= HASHED_CHECKPOINT_LIMIT:
            digest = hashlib.sha256()
            with open(file, "rb") as f:
                while chunk := f.read(2**20):
                    digest.update(chunk)
            sha = digest.hexdigest()
        found.append({"name": text.file_name(file.relative_to(directory)), "bytes": size, "sha256": sha})
    return found, count


def drop_late_checkpoints(phase: PhaseResult, times: dict[str, float], checkpoints: Path, deadline: Deadline) -> None:
    """A checkpoint written after the deadline is never scored: it is removed before predict.

    `times` are the files' ctimes (harness.runners.local.change_times): the kernel's clock,
    which an entry cannot set back.
    """
    if not times:
        return
    phase.last_checkpoint_write_s = round(max(times.values()) - deadline.started_unix, 3)
    cutoff = deadline.kill_unix + FILE_CLOCK_SLACK_S
    late = sorted(name for name, changed in times.items() if changed > cutoff)
    for name in late:
        (checkpoints / name).unlink(missing_ok=True)
    phase.late_checkpoints = [text.file_name(name) for name in late[:LISTED_CHECKPOINTS]]


class SaveWatch:
    """Notices checkpoints rewritten in place: the same file (inode) changed between two looks.

    An atomic save (a temporary file, then a rename) gives the name a new inode every time; a
    file rewritten in place keeps its inode, and a kill in mid-write leaves it half written.
    """

    def __init__(self, view: Optional[Path]):
        self.view = view
        self.in_place: set[str] = set()
        self._seen: dict[str, tuple[int, int, int]] = {}  # name -> (inode, size, mtime_ns)

    def look(self) -> None:
        if self.view is None:
            return
        try:
            entries = list(_files(self.view, WATCHED_FILES))
        except OSError:
            return
        for name, st in entries:
            now = (st.st_ino, st.st_size, st.st_mtime_ns)
            before = self._seen.get(name)
            if before and before[0] == now[0] and before[1:] != now[1:]:
                self.in_place.add(text.file_name(name))
            self._seen[name] = now


def _files(root: Path, limit: int):
    count, stack = 0, [root]
    while stack and count < limit:
        folder = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    count += 1
                    yield os.path.relpath(entry.path, root), entry.stat(follow_symlinks=False)
                    if count >= limit:
                        return
