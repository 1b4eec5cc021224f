"""Set-id files, special files and mounts, tried in one writable folder; each try printed.

SETID <name>  a set-user-ID or set-group-ID file or folder the entry made (stands until the host strips it)
MADE <name>   a device file, fifo or socket it made;  refused <what>: <why> where the kernel said no
MOUNT <path> <options>  how the folder is mounted where the entry sees it
"""

import os
import shutil
import socket
import stat
import sys


def say(*words):
    print(*words, flush=True)


def setid(folder, name, mode, source="/bin/sh"):
    path = os.path.join(folder, name)
    try:
        shutil.copyfile(source, path)
        os.chmod(path, mode)
        say("SETID", name, oct(stat.S_IMODE(os.stat(path).st_mode)))
    except OSError as exc:
        say(f"refused {name}: {exc.strerror}")
    return path


def special(folder):
    tries = {
        "null-device": lambda p: os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 3)),
        "zero-device": lambda p: os.mknod(p, stat.S_IFCHR | 0o666, os.makedev(1, 5)),
        "fifo": lambda p: os.mkfifo(p),
        "socket": lambda p: socket.socket(socket.AF_UNIX).bind(p),
    }
    for name, make in tries.items():
        try:
            make(os.path.join(folder, name))
            say("MADE", name)
        except OSError as exc:
            say(f"refused {name}: {exc.strerror}")


def setgid_folder(folder, name):
    path = os.path.join(folder, name)
    os.makedirs(path, exist_ok=True)
    try:
        os.chmod(path, 0o2775)
        setid(path, "inner-sh", 0o6755)
        say("SETID", name, oct(stat.S_IMODE(os.stat(path).st_mode)))
    except OSError as exc:
        say(f"refused {name}: {exc.strerror}")


def the_folder_itself(folder):
    try:
        os.chmod(folder, 0o6777)
        say("SETID", ".", oct(stat.S_IMODE(os.stat(folder).st_mode)))
    except OSError as exc:
        say(f"refused chmod of the folder: {exc.strerror}")


def mount_options(path):
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[4] == path:
                    say("MOUNT", path, fields[5])
                    return
    except OSError:
        pass
    say("MOUNT", path, "none")  # not a mount point of its own here (the local runner)


def late(folder, source):
    """After SIGTERM: a hard link to a set-user-ID file and a renamed one, written last."""
    try:
        os.link(source, os.path.join(folder, "late-link"))
        say("SETID", "late-link")
    except OSError as exc:
        say(f"refused late-link: {exc.strerror}")
    tmp = setid(folder, "late.tmp", 0o4755, sys.executable if os.path.getsize(sys.executable) < 2**25 else "/bin/sh")
    try:
        os.replace(tmp, os.path.join(folder, "late-renamed"))
        say("SETID", "late-renamed")
    except OSError as exc:
        say(f"refused late-renamed: {exc.strerror}")
