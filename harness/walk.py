"""The one walker of folders an entry controls: bounded, and never led out of its root.

An entry names, links, swaps and nests its files as it likes, and the harness reads them as
itself (root, under Docker and often under the sandbox). So every folder is opened relative to
its parent's descriptor with O_NOFOLLOW and checked to be the very folder that was listed (same
device and inode): a folder swapped for a symlink between the listing and the open is never
followed. Links are reported, never followed. The walk stops with `WalkLimit` past `limit`
entries or `max_depth` folders deep, so a million empty folders cost a bounded read, and each
caller says what "too many" means for it (over a cap, not scored, refused).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_ENTRIES = 10_000  # files, folders and anything else, together
MAX_DEPTH = 64  # folders inside folders (each open folder holds one descriptor)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # read-only (O_RDONLY is 0) unless a caller adds O_WRONLY


class WalkLimit(Exception):
    """The folder holds more entries, or deeper folders, than the walk may read."""


class TooMany(WalkLimit):
    """More than `limit` entries."""


class TooDeep(WalkLimit):
    """Folders nested more than `max_depth` deep; `rel` is the folder that was one too deep."""

    def __init__(self, message: str, rel: str):
        super().__init__(message)
        self.rel = rel


# What opening a listed folder meets when it vanished or was swapped since the listing: skipped.
# Anything else (no permission, say) is raised: a walk that silently left a folder out would
# hide what is in it from every caller that needs to see all of it.
_GONE = (errno.ENOENT, errno.ELOOP, errno.ENOTDIR)


@dataclass(frozen=True)
class Found:
    rel: str  # relative to the root, os.sep-separated; the entry's own bytes (escape before showing)
    st: os.stat_result  # lstat: a link is the link

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.st.st_mode)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)

    @property
    def same_file(self) -> tuple[int, int]:
        return self.st.st_dev, self.st.st_ino


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def walk(
    root: Path, limit: int = MAX_ENTRIES, max_depth: int = MAX_DEPTH, skip: frozenset[str] = frozenset()
) -> Iterator[Found]:
    """Every entry below `root` (not the root itself), depth first, as lstat'ed; folders are
    yielded before what they hold. Folders named in `skip` are yielded but not entered. Raises
    TooMany past `limit` entries, TooDeep for a folder more than `max_depth` folders deep (both
    WalkLimit), OSError when the root or a folder below it cannot be read (no permission). A
    folder that vanishes or is swapped while walked is skipped (its entry was already yielded as
    it was listed)."""
    fd = os.open(root, _DIR_FLAGS)
    count = 0
    stack: list[tuple[int, str, Iterator[os.DirEntry]]] = []
    try:
        stack.append((fd, "", iter(os.scandir(fd))))
        while stack:
            dir_fd, prefix, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                os.close(dir_fd)
                continue
            count += 1
            if count > limit:
                raise TooMany(f"more than {limit} files and folders")
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # gone since it was listed
            rel = prefix + entry.name
            yield Found(rel, st)
            if not stat.S_ISDIR(st.st_mode) or entry.name in skip:
                continue
            if len(stack) > max_depth:  # the stack holds the root too: this folder is max_depth + 1 deep
                raise TooDeep(f"folders nested more than {max_depth} deep", rel)
            try:
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in _GONE:
                    continue  # gone, or swapped for a link: O_NOFOLLOW refused it
                raise
            if not _same(os.fstat(child), st):
                os.close(child)
                continue
            stack.append((child, rel + os.sep, iter(os.scandir(child))))
    finally:
        for dir_fd, _, _ in stack:
            os.close(dir_fd)


def open_parent(root: Path, rel: str) -> tuple[int, str]:
    """A descriptor of the folder that holds `rel` below `root`, reached with no link followed, and
    the last part of `rel`, to change it by name from there. The caller closes the descriptor."""
    parts = [p for p in rel.split(os.sep) if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise OSError(0, f"not a path below the root: {rel!r}")
    dir_fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            os.close(dir_fd)
            dir_fd = next_fd
    except BaseException:
        os.close(dir_fd)
        raise
    return dir_fd, parts[-1]


def open_beneath(root: Path, rel: str, expect: tuple[int, int] | None = None, flags: int = 0) -> int:
    """A read-only descriptor of the regular file `rel` below `root`, every component opened with
    O_NOFOLLOW from its parent's descriptor: a link anywhere on the way is refused (OSError). With
    `expect` (device, inode, as listed by `walk`), a file replaced since it was listed is refused.
    `flags` adds to the open's flags (O_WRONLY in place of read-only, to cut a file)."""
    dir_fd, name = open_parent(root, rel)
    try:
        fd = os.open(name, _FILE_FLAGS | flags, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or (expect is not None and (st.st_dev, st.st_ino) != tuple(expect)):
        os.close(fd)
        raise OSError(0, "not the regular file that was listed (replaced since)")
    return fd


def remove_beneath(root: Path, rel: str, expect: tuple[int, int] | None = None) -> bool:
    """Unlink `rel` below `root` (a file, a link or anything but a folder), reached with no link
    followed on the way: a folder swapped for a link never leads the unlink out of the root. With
    `expect` (device, inode, as listed by `walk`), what was put there since the listing is left.
    Whether it was removed: nothing there is not an error."""
    try:
        dir_fd, name = open_parent(root, rel)
    except OSError as exc:
        if exc.errno in _GONE:
            return False
        raise
    try:
        if expect is not None:
            now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if (now.st_dev, now.st_ino) != tuple(expect):
                return False
        os.unlink(name, dir_fd=dir_fd)
        return True
    except FileNotFoundError:
        return False
    finally:
        os.close(dir_fd)
