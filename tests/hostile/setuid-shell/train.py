"""Leaves set-user-ID shells in /checkpoints for the whole phase, and more as it is stopped."""

import os
import signal
import sys
import time

import numpy as np
import tricks

folder = os.environ["HAET_CHECKPOINTS"]
np.save(os.path.join(folder, "model.npy"), np.zeros(3))
tricks.mount_options(folder)
shell = tricks.setid(folder, "sh", 0o4755)
tricks.setid(folder, "sh-setgid", 0o2755)
tricks.setid(folder, "sh-both", 0o6755)
tricks.setgid_folder(folder, "setgid-folder")
tricks.special(folder)
tricks.the_folder_itself(folder)
try:
    os.chmod(os.environ["HAET_EVENTS"], 0o6755)
    print("SETID events", flush=True)
except OSError as exc:
    print(f"refused events: {exc.strerror}", flush=True)


def stopped(*_):
    tricks.late(folder, shell)
    sys.exit(0)


signal.signal(signal.SIGTERM, stopped)
print("READY", flush=True)
while True:
    time.sleep(0.05)
