"""Snapshots of the train phase's checkpoints, for the off-clock curve (harness.curve).

The watcher thread (harness.phase.Watcher) calls `look()` every tick with the folder it walked;
nothing here runs in the clock's loop or in the entry's processes, so a snapshot never stalls
the entry nor costs it budget (benchmarks/snapshot_overhead.py measures the entry's saves with
and without). The copy is read from the runner's `checkpoint_view()` (the host side of the mount
under Docker) into the run's work folder, outside the entry's reach, stamped with the harness's
clock.

Complete, never torn:
  * the folder is copied only once two looks in a row saw the same files (name, inode, size,
    mtime): a save in progress (a growing temporary file) is never copied;
  * the copy is stat'ed again afterwards and dropped if anything moved meanwhile;
  * a snapshot whose file (same name, same inode, not replaced in between) changes within the
    next PROBATION_LOOKS looks, or by the phase's end, caught an in-place rewrite half way
    (docs/submission-contract.md asks for atomic saves): it is dropped. The check stops there: a
    slower in-place writer costs a curve point at worst, never the official score.
Bounded: at most `limit` snapshots, thinned to stay spread over the run (`thin`), each at most
`max_bytes / limit` bytes and `WATCHED_FILES` files (checkpoints.watched_state: the watcher's one
walk a tick); the files an entry names are never followed out of the folder (symlinks are skipped).
"""

from __future__ import annotations

import filecmp
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.checkpoints import State, watched_state
from harness.walk import open_beneath

DEFAULT_LIMIT = 12
DEFAULT_MAX_BYTES = 4 * 2**30  # all snapshots together (a ResNet-9 folder of two checkpoints: ~52 MB)
PROBATION_LOOKS = 10  # 5 s at the watcher's tick


@dataclass
class Snapshot:
    name: str  # folder under the store
    seconds: float  # harness clock: the phase's seconds when this state was first seen
    state: State
    gpu_energy_j: float | None = None
    cpu_energy_j: float | None = None
    final: bool = False
    probation: int = PROBATION_LOOKS
    replaced: set[str] = field(default_factory=set)  # names since seen gone or on another inode

    @property
    def bytes(self) -> int:
        return sum(f[2] for f in self.state)


@dataclass
class Snapshots:
    view: Path | None  # where the entry's checkpoints can be read (None: no snapshots)
    store: Path  # the harness's own folder
    elapsed: Callable[[], float]  # the phase's clock
    energy: Callable[[], tuple[float | None, float | None]] = lambda: (None, None)
    limit: int = DEFAULT_LIMIT
    max_bytes: int = DEFAULT_MAX_BYTES
    kept: list[Snapshot] = field(default_factory=list)
    seen: int = 0  # complete states copied, before thinning
    notes: list[str] = field(default_factory=list)
    _previous: State | None = None
    _first_seen: float = 0.0
    _first_energy: tuple[float | None, float | None] = (None, None)
    _count: int = 0

    def __post_init__(self) -> None:
        if self.view is None:
            self._note(
                "the runner gives the harness no view of the checkpoints while train runs "
                "(docs/security.md): the curve has the final point only"
            )

    @property
    def per_snapshot_bytes(self) -> int:
        return self.max_bytes // self.limit

    def look(self, state: State | None) -> None:
        """One observation of the view (None: the watcher could not read all of it); copies the
        folder when it has stood still since the last one."""
        if state is None:
            return
        now = self.elapsed()
        self._drop_torn(state)
        if state != self._previous:
            self._previous, self._first_seen, self._first_energy = state, now, self.energy()
            return
        if not state or (self.kept and self.kept[-1].state == state):
            return
        if self.kept and any(s.state == state for s in self.kept):
            return
        self._copy(self.view, state, self._first_seen, self._first_energy)

    def final(
        self, directory: Path, seconds: float, energy: tuple[float | None, float | None] = (None, None)
    ) -> Snapshot | None:
        """The folder the official score used (the entry has exited): always kept, as the last point;
        `energy` is the whole phase's."""
        state = _state(directory)
        if not state:
            return None
        self._drop_torn(state, ending=True)
        if self.kept and self._same(self.kept[-1], directory, state):
            self.kept[-1].final = True
            return self.kept[-1]
        return self._copy(directory, state, max([seconds] + [s.seconds for s in self.kept]), energy, final=True)

    # --- internals ---------------------------------------------------------------------------

    def _copy(
        self, source: Path, state: State, seconds: float, energy: tuple[float | None, float | None], final: bool = False
    ) -> Snapshot | None:
        size = sum(f[2] for f in state)
        if size > self.per_snapshot_bytes:
            self._note(
                f"a checkpoint folder of {size} bytes is over the snapshot cap of {self.per_snapshot_bytes} "
                "bytes (--curve keeps at most 12 snapshots in 4 GiB); not copied"
            )
            return None
        self._count += 1
        name = f"snapshot-{self._count:03d}"
        target = self.store / name
        try:
            target.mkdir(parents=True)
            for folder in (self.store, target):  # modes are the harness's, never the entry's, whatever the umask
                folder.chmod(0o755)  # (a curve point's predict reads them as the entry's uid)
            for rel, same_file, size_, _ in state:
                destination = target / rel
                for folder in reversed([p for p in destination.parents if target in p.parents]):
                    if not folder.is_dir():
                        folder.mkdir()
                        folder.chmod(0o755)
                _copy_at_most(source, rel, destination, size_, same_file)
        except OSError as exc:
            shutil.rmtree(target, ignore_errors=True)
            self._note(f"a snapshot could not be copied ({exc.__class__.__name__}: {exc.strerror or exc})")
            return None
        if _state(source) != state:  # something moved while it was copied: torn, never used
            shutil.rmtree(target, ignore_errors=True)
            return None
        gpu_j, cpu_j = energy
        snapshot = Snapshot(name, round(seconds, 3), state, gpu_j, cpu_j, final, 0 if final else PROBATION_LOOKS)
        self.seen += 1
        self.kept.append(snapshot)
        for dropped in thin(self.kept, self.limit):
            shutil.rmtree(self.store / dropped.name, ignore_errors=True)
        return snapshot

    def _same(self, snapshot: Snapshot, directory: Path, state: State) -> bool:
        """The same files with the same bytes (under Docker the scored folder is a copy of the
        watched volume: other inodes and times, the same checkpoint)."""
        if [(f[0], f[2]) for f in snapshot.state] != [(f[0], f[2]) for f in state]:
            return False
        try:
            return all(filecmp.cmp(self.store / snapshot.name / f[0], directory / f[0], shallow=False) for f in state)
        except OSError:
            return False

    def _drop_torn(self, state: State, ending: bool = False) -> None:
        """A snapshot on probation whose file (same name, same inode, never replaced in between) has
        changed since was taken mid-rewrite. A name seen gone or on another inode was saved anew
        (atomically): its old inode may come back later, recycled, and means nothing then."""
        now = {f[0]: f for f in state}
        for snapshot in list(self.kept):
            if snapshot.final or snapshot.probation <= 0:
                continue
            snapshot.probation = 0 if ending else snapshot.probation - 1
            torn = False
            for name, inode, *meta in snapshot.state:
                current = now.get(name)
                if name in snapshot.replaced or current is None or current[1] != inode:
                    snapshot.replaced.add(name)
                elif list(current[2:]) != meta:
                    torn = True
            if torn:
                self.kept.remove(snapshot)
                shutil.rmtree(self.store / snapshot.name, ignore_errors=True)
                self._note(
                    "a checkpoint was rewritten in place after it was copied: that snapshot was dropped "
                    "(save to a temporary file and rename it)"
                )

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


def thin(kept: list[Snapshot], limit: int) -> list[Snapshot]:
    """Drop snapshots until at most `limit` remain, each time the one whose neighbours are closest
    together (the densest spot), never the first or the newest: the kept set stays spread evenly
    over the run however many checkpoints the entry writes. Returns those dropped."""
    dropped = []
    while len(kept) > max(limit, 2):
        inner = range(1, len(kept) - 1)
        i = min(inner, key=lambda j: (kept[j + 1].seconds - kept[j - 1].seconds, j))
        dropped.append(kept.pop(i))
    return dropped


def _state(root: Path) -> State | None:
    """The folder's files (checkpoints.watched_state), or None when that is not all of them."""
    state, complete = watched_state(root)
    return state if complete else None


def _copy_at_most(root: Path, rel: str, destination: Path, size: int, same_file: tuple[int, int]) -> None:
    """Copy `size` bytes at most (a file growing meanwhile is caught by the state check) of the very
    file that was listed: a folder swapped for a symlink since the listing would lead the harness
    (root, under Docker) to a host file, so the file is opened beneath the folder with no link
    followed on the way, and must be the listed one (device and inode)."""
    try:
        fd = open_beneath(root, rel, same_file)
    except OSError as exc:
        raise OSError(0, f"a checkpoint file was replaced while it was copied ({exc.strerror or exc})") from None
    with os.fdopen(fd, "rb") as src:
        out = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        os.fchmod(out, 0o644)  # the copy's mode is the harness's: never the entry's set-id bits, whatever the umask
        with os.fdopen(out, "wb") as dst:
            left = size
            while left > 0:
                chunk = src.read(min(left, 2**20))
                if not chunk:
                    break
                dst.write(chunk)
                left -= len(chunk)
