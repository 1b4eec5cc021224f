"""Shared by the deadline entries (quiet-baseline, late-writer, event-burst, event-poison, log-burst,
process-churn, fork-storm, disk-storm) and the checkpoint-* entries' predict (show_checkpoints,
predict_class_zero). Each entry folder carries its own identical copy, because the Docker runner
mounts only the entry's own folder.

Every entry ignores SIGTERM in its main process, so only the SIGKILL at the deadline stops it, and
starts two witnesses that keep checkpoint files named after their own clock until they die:

  alive-<who><seconds since HAET_DEADLINE>   renewed every few ms, mtime forged to long before the deadline
  alarm-<who><seconds since HAET_DEADLINE>   written when SIGTERM reached the witness

<who> is `esc` (escaped: double fork + setsid, re-parented away from the entry) or `grp` (a plain
child in the entry's process group). result.json lists checkpoint names, so a test reads from them
how long after the deadline each process was still alive, and whether SIGTERM reached it.

probe.json beside this file (optional: tests write it into a copy of the entry; the Docker runner's
read-only mount of tests/hostile has none):
  "pids":    a file to append "<pid> <starttime> <role>" to, for every process the entry starts
  "scratch": a directory for the "/tmp" I/O of disk-storm (default: the temp directory)

On a harness that never kills, the entry gives up GIVE_UP_S after the deadline (escaped processes
ESCAPEE_GIVE_UP_S) so that a test ends with a measurable lateness instead of hanging.
"""

import json
import os
import signal
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEADLINE = float(os.environ["HAET_DEADLINE"])
TERM_AT = DEADLINE - float(os.environ.get("HAET_GRACE_S", "0"))
CHECKPOINTS = os.environ.get("HAET_CHECKPOINTS", ".")
EVENTS = os.environ.get("HAET_EVENTS", os.devnull)
GIVE_UP_S = 8.0
ESCAPEE_GIVE_UP_S = 25.0


def _config():
    try:
        with open(os.path.join(HERE, "probe.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


CONFIG = _config()


def since_deadline():
    return time.time() - DEADLINE


def start_time(pid):
    """Field 22 of /proc/<pid>/stat: tells a process from a later one that reuses its pid."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[19]


def record(role, pid=None):
    path = CONFIG.get("pids")
    if not path:
        return
    pid = pid or os.getpid()
    try:
        line = f"{pid} {start_time(pid)} {role}\n".encode()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError:
        pass


def stubborn(role="main"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    record(role)


def save_model():
    """An honest, on-time model, so the run can score on what was saved before the deadline."""
    import numpy as np

    target = os.path.join(CHECKPOINTS, "model.npy")
    with open(target + ".tmp", "wb") as f:
        np.save(f, np.zeros(3))
    os.replace(target + ".tmp", target)


def show_checkpoints():
    """Prints every file in HAET_CHECKPOINTS (the official folder, or a curve snapshot) with its first
    bytes, so that a host file the harness copied in would show in the log."""
    for folder, _, files in os.walk(CHECKPOINTS):
        for name in files:
            path = os.path.join(folder, name)
            try:
                with open(path, "rb") as f:
                    print("FILE", os.path.relpath(path, CHECKPOINTS), f.read(64), flush=True)
            except OSError as exc:
                print("UNREADABLE", os.path.relpath(path, CHECKPOINTS), exc)


def predict_class_zero():
    """predictions.csv with class 0 for every test image."""
    import numpy as np

    n = len(np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))["images"])
    with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
        f.write("index,label\n" + "".join(f"{i},0\n" for i in range(n)))


def sleep_until(t):
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.05))


def give_up(limit=GIVE_UP_S):
    if since_deadline() > limit:
        os._exit(0)


def child(fn, role, escape=False):
    """fn in a new process that ignores SIGTERM; escape: double fork + setsid (a new session,
    re-parented away from the entry). Returns the pid of the direct child."""
    pid = os.fork()
    if pid:
        if escape:
            os.waitpid(pid, 0)  # the intermediate exits at once
        return pid
    try:
        if escape:
            os.setsid()
            if os.fork():
                os._exit(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        record(role)
        fn()
    except BaseException:
        pass
    finally:
        os._exit(0)


def _touch(name, text=b""):
    with open(os.path.join(CHECKPOINTS, name), "wb") as f:
        f.write(text)


def alive(who, pause=0.0, rename=False, witness=False, limit=GIVE_UP_S):
    """Keep one checkpoint file named alive-<who><seconds since the deadline>, renewed forever:
    a fresh file each time (or, with rename, the same inode renamed), its mtime forged to long
    before the deadline. With witness, SIGTERM writes alarm-<who><seconds> and is otherwise ignored."""
    if witness:

        def alarm(signum, frame):
            try:
                _touch(f"alarm-{who}{since_deadline():+.3f}")
            except OSError:
                pass

        signal.signal(signal.SIGTERM, alarm)
    previous = None
    forged = (DEADLINE - 100, DEADLINE - 100)
    while True:
        t = since_deadline()
        if t > limit:
            os._exit(0)
        name = os.path.join(CHECKPOINTS, f"alive-{who}{t:+.3f}")
        try:
            if rename and previous:
                os.rename(previous, name)
            elif name != previous:
                with open(name, "wb") as f:
                    f.write(b"%.6f\n" % t)
                if previous:
                    os.unlink(previous)
            os.utime(name, forged)
            previous = name
        except OSError:
            previous = None
        if pause:
            time.sleep(pause)


def witnesses(pause=0.005):
    """The two witnesses every deadline entry starts: escaped (esc) and in the process group (grp)."""
    child(lambda: alive("esc", pause=pause, witness=True, limit=ESCAPEE_GIVE_UP_S), "alive-esc", escape=True)
    child(lambda: alive("grp", pause=pause, witness=True), "alive-grp")


def idle():
    """The main process: ignore SIGTERM (see stubborn) and wait for the SIGKILL."""
    while True:
        give_up()
        time.sleep(0.01)
