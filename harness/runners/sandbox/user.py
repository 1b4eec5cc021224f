"""The host user a sandboxed entry runs as, and how bwrap reaches the phase's folders as that user.

bwrap maps the sandbox's uid (10001 inside) to the uid that started it. Started by an ordinary
user, that is that user: the files the entry makes are theirs, and nothing more. Started by root
(a harness in a container, or under sudo), it would be root: every file the entry created would
be root's on the host, a set-user-ID copy of a shell among them. So when the harness is root,
bwrap is started as the unprivileged uid 10001 (the Docker runner's): an unprivileged
user-namespace sandbox, and everything the entry leaves on the host is owned by 10001, which has
no other rights there.

That uid cannot open what bwrap must bind: the run's work folder is private to root (0700), and
the runtime often lies in a private home (/root/.pyenv). bwrap resolves each source by its path,
as its own user, even one given as a descriptor (it binds the descriptor's path), so descriptors
alone do not help. Instead the child that becomes bwrap, still root, makes a mount namespace of
its own, opens every source there, covers /tmp (in that namespace only) with a small tmpfs, and
binds each source from its descriptor to /tmp/<n>; then it becomes 10001 and runs bwrap with
those as sources. Nothing changes on the host: no folder is opened to other users, and the
namespace, with its mounts, ends with the phase. bwrap covers /tmp with its own tmpfs inside.
"""

from __future__ import annotations

import ctypes
import os
import stat
from pathlib import Path

from harness.runners.limits import GID, UID
from harness.walk import WalkLimit, walk

User = tuple[int, int]

STAGE = "/tmp"  # covered, in the child's mount namespace only, by a tmpfs holding the sources
BIND_OPTIONS = ("--bind", "--ro-bind", "--ro-bind-try")  # bwrap's options that take a host path to bind
_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
_libc = ctypes.CDLL(None, use_errno=True)  # loaded before any fork: the child only calls it


def host_user() -> User | None:
    """The uid and gid bwrap is started as: 10001 when the harness is root, else None (the
    harness's own user, as an ordinary user's bwrap always is). A root inside a user namespace
    that has no uid 10001 (a harness jailed by another sandbox) cannot become it: None there too."""
    if os.geteuid() != 0:
        return None
    try:
        with open("/proc/self/uid_map") as f:
            ranges = [tuple(int(n) for n in line.split()) for line in f if line.strip()]
    except (OSError, ValueError):
        return None
    return (UID, GID) if any(first <= UID < first + count for first, _, count in ranges) else None


def become(user: User) -> None:
    """In the child, after everything that needs root: the sandbox's user, with no supplementary
    groups. Irreversible for that process and all it starts."""
    uid, gid = user
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)


def unreadable(entry: Path) -> str | None:
    """The first file or folder of the entry that the sandbox's user cannot read through its mount
    (it is neither that user's nor readable by all), None when there is none."""
    try:
        found = [("", os.stat(entry))] + [(f.rel, f.st) for f in walk(entry)]
    except (OSError, WalkLimit):
        return None  # the entry's digest, before any run, says what is wrong with such a folder
    for rel, st in found:
        if stat.S_ISLNK(st.st_mode) or st.st_uid == UID:
            continue
        needed = 0o005 if stat.S_ISDIR(st.st_mode) else 0o004
        if st.st_mode & needed != needed:
            return f"{rel or '.'} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


class Staging:
    """bwrap's argv with every bind source replaced by /tmp/<n>, and what the child binds there."""

    def __init__(self, argv: list[str]):
        self.sources: list[tuple[str, bool]] = []  # (host path, is a folder)
        self.argv: list[str] = []
        i = 0
        while i < len(argv):
            option = argv[i]
            if option == "--":  # the entry's command: never an option
                self.argv += argv[i:]
                break
            if option in BIND_OPTIONS and i + 2 < len(argv):
                source, dest = argv[i + 1], argv[i + 2]
                if not (option.endswith("-try") and not os.path.exists(source)):
                    source_is_dir = os.path.isdir(source)
                    source = f"{STAGE}/{len(self.sources)}"
                    self.sources.append((argv[i + 1], source_is_dir))
                self.argv += [option, source, dest]
                i += 3
                continue
            self.argv.append(option)
            i += 1

    def enter(self) -> None:
        """In the child, as root, before `become`: the private namespace and the staged sources.
        Opened before /tmp is covered (a source may lie below /tmp), bound from the descriptors."""
        _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
        fds = [os.open(source, os.O_PATH | os.O_CLOEXEC) for source, _ in self.sources]
        _check(
            _libc.mount(b"haet-stage", STAGE.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=1m"),
            f"tmpfs on {STAGE}",
        )
        for n, ((_, is_dir), fd) in enumerate(zip(self.sources, fds)):
            target = f"{STAGE}/{n}"
            if is_dir:
                os.mkdir(target)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
            _check(
                _libc.mount(f"/proc/self/fd/{fd}".encode(), target.encode(), None, _MS_BIND | _MS_REC, None),
                f"binding {target}",
            )
            os.close(fd)


def preexec(staging: Staging | None, user: User | None):
    """For a child that only needs to become the sandbox's user (the probe)."""

    def run() -> None:
        if staging is not None:
            staging.enter()
        if user is not None:
            become(user)

    return run
