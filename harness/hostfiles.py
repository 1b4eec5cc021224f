"""What an entry leaves on the host: the run's private work folder, and its files made harmless.

An entry writes its checkpoints, output and events into host folders (bound into the sandbox,
copied out of a container, or written directly by the local runner). Whatever it did to them,
nothing it leaves may carry special rights on the host:

  * the run's work folder (`.work`) is private: mode 0700 (a sandbox that runs the entry as
    another uid reaches its mounts without it: harness.runners.sandbox.user);
  * after every phase, `make_safe` strips set-user-ID and set-group-ID bits from every file and
    folder the entry wrote, and removes device files, fifos and sockets (the harness reads these
    folders as itself, often root: a fifo would block it, a device node would be a door to the
    host's disks). Symlinks are left to each runner's own rule (the sandbox and Docker refuse
    them; the harness never follows them);
  * the sandbox's writable folders, which the entry writes on the host itself, are capped here:
    `folder_bytes` measures them while the phase runs; after it, `keep_regular` removes links and
    whatever else is not a regular file or a folder, and `trim_to_cap` cuts them to their caps as a
    full disk would have.

The walk, and the way to each file it lists, are harness/walk.py's: bounded, never led out of its
root. Each change is made from a descriptor reached with no link followed, and checked to be the
inode that was listed where it changes a file, so an entry that swaps a file for a link cannot make
the harness chmod, cut or remove anything outside the folder.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from harness import text
from harness.walk import MAX_ENTRIES, WalkLimit, open_beneath, open_parent, remove_beneath, walk

SET_ID = stat.S_ISUID | stat.S_ISGID
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
SHOWN = 5  # names quoted in a note
MAX_WALK = MAX_ENTRIES  # entries counted in a capped folder; past it (or MAX_DEPTH deep), the folder is over its cap


def private_dir(path: Path) -> Path:
    """`path` made (if needed) and made private to the harness's user, 0700 whatever the umask."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def make_safe(path: Path, shown_as: str) -> list[str]:
    """Strip set-id bits below (and on) `path`, a folder or one file, and remove device files,
    fifos and sockets; notes saying what was done, naming the place `shown_as` (as the entry sees
    it), for the phase's detail. Never raises for what the entry left: a folder past the walker's
    bounds is noted (the runners' caps come first, and the folder stays private until removed)."""
    try:
        root = os.lstat(path)
    except OSError:
        return []
    stripped, removed = [], []
    if not stat.S_ISDIR(root.st_mode):
        try:
            if _special(root.st_mode):
                os.unlink(path)
                removed.append(path.name)
            elif _strip(str(path), None, root):
                stripped.append(path.name)
        except OSError:
            pass  # gone meanwhile
        return _notes(shown_as, stripped, removed, None)
    try:
        if _strip(str(path), None, root):
            stripped.append(".")
    except OSError:
        pass
    limit = None
    try:
        for found in walk(path):
            if not (found.st.st_mode & SET_ID or _special(found.st.st_mode)):
                continue
            try:
                if _special(found.st.st_mode):
                    if remove_beneath(path, found.rel, found.same_file):
                        removed.append(found.rel)
                elif _strip_beneath(path, found.rel, found.st):
                    stripped.append(found.rel)
            except OSError:
                pass  # gone or swapped since it was listed: nothing of the entry's left there to fix
    except WalkLimit as exc:
        limit = str(exc)
    except OSError:
        pass
    return _notes(shown_as, stripped, removed, limit)


def _special(mode: int) -> bool:
    """A device file, fifo or socket: nothing a checkpoint or an output may be."""
    return stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _strip(name: str, dir_fd: int | None, listed: os.stat_result) -> bool:
    """Clear the set-id bits of the file or folder `name` if it is still the inode that was listed.

    Through an O_PATH descriptor and its /proc/self/fd link: that changes the very inode that was
    opened (never a link's target), and needs no read access to it (an entry's 0000 file)."""
    if not listed.st_mode & SET_ID or stat.S_ISLNK(listed.st_mode):
        return False
    fd = os.open(name, _PATH_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (listed.st_dev, listed.st_ino) or stat.S_ISLNK(st.st_mode):
            return False
        os.chmod(f"/proc/self/fd/{fd}", stat.S_IMODE(st.st_mode) & ~SET_ID)
        return True
    finally:
        os.close(fd)


def _strip_beneath(root: Path, rel: str, listed: os.stat_result) -> bool:
    """_strip for `rel` below `root`, reached with no link followed."""
    dir_fd, name = open_parent(root, rel)
    try:
        return _strip(name, dir_fd, listed)
    finally:
        os.close(dir_fd)


def _notes(place: str, stripped: list[str], removed: list[str], limit: str | None) -> list[str]:
    notes = []

    def names(found: list[str]) -> str:
        more = f" and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
        return ", ".join(text.file_name(n) for n in found[:SHOWN]) + more

    if stripped:
        notes.append(f"set-user-ID/set-group-ID bits removed in {place}: {names(stripped)}")
    if removed:
        notes.append(
            f"device files, fifos or sockets removed from {place} (only regular files count): {names(removed)}"
        )
    if limit:
        notes.append(f"{place} was made safe only in part: {limit}")
    return notes


# --- the sandbox's capped folders ---------------------------------------------------------------


def folder_bytes(root: Path) -> int:
    """Apparent bytes of everything under `root` (links not followed); -1 past the walker's bounds
    (MAX_WALK entries, harness.walk.MAX_DEPTH levels) or where a folder cannot be read: over the cap."""
    try:
        return sum(found.st.st_size for found in walk(root, MAX_WALK) if not found.is_dir)
    except (WalkLimit, OSError):
        return -1


def _listed(root: Path) -> list:
    """Everything under `root` (harness.walk.Found). Past the walker's bounds, or where a folder
    cannot be read, the folder is emptied and the WalkLimit or OSError raised: fail closed, since
    what was not read may be a link that the harness would follow later."""
    try:
        return list(walk(root, MAX_WALK))
    except (WalkLimit, OSError):
        shutil.rmtree(root, ignore_errors=True)  # never follows a link (fd-based on Linux)
        root.mkdir(mode=0o755, exist_ok=True)
        raise


def keep_regular(root: Path) -> list[str]:
    """Remove what is neither a regular file nor a folder (links, fifos, sockets) under `root`:
    the harness reads these folders as itself, outside the sandbox. The removed names, relative.
    Past the walker's bounds the folder is emptied and WalkLimit (or OSError) raised."""
    removed = [found.rel for found in _listed(root) if not (found.is_file or found.is_dir)]
    for rel in removed:
        remove_beneath(root, rel)
    return removed


def trim_to_cap(root: Path, cap: int) -> list[str]:
    """Make `root` hold at most `cap` bytes (apparent size) as a full disk would have: files in the
    order they last changed, the one that crosses the cap cut there, the later ones removed. The
    names cut or removed, relative."""
    files = [found for found in _listed(root) if found.is_file]
    total, over = 0, []
    for count, found in enumerate(sorted(files, key=lambda f: (f.st.st_ctime, f.rel))):
        size, name = found.st.st_size, found.rel
        room = cap - total if count < MAX_WALK else 0
        if size > room:
            over.append(name)
            if room > 0:
                try:
                    fd = open_beneath(root, name, found.same_file, os.O_WRONLY)
                except OSError:
                    continue
                try:
                    os.ftruncate(fd, room)
                finally:
                    os.close(fd)
            else:
                remove_beneath(root, name)
        total += min(size, max(room, 0))
    return over
