"""Leads the harness's walks of HAET_CHECKPOINTS out to the host while it snapshots (--curve) and
lists them. host_paths.txt (written by the test) names a host folder and a host file, which the
entry cannot see but the harness, reading the folder from outside, could:

  * `sub` holds a checkpoint, and is swapped in a tight loop with a symlink to the host folder
    (which holds a file of the same name) for a moment every 4 ms: the folder looks still to
    the watcher, which copies it, and the copy may meet the link;
  * `host.npy` is a symlink to the host file, `host-folder` one to the host folder.
The model is saved atomically every 2 s (each save a new state, standing still for several of the
watcher's looks, so a copy happens even on a loaded machine), so the run scores."""

import os
import time

import numpy as np

ckpt = os.environ["HAET_CHECKPOINTS"]
host_folder, host_file = open("host_paths.txt").read().split()[:2]


def save() -> None:
    tmp = os.path.join(ckpt, ".model.npy.tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.zeros(3))
    os.replace(tmp, os.path.join(ckpt, "model.npy"))


save()
sub, aside = os.path.join(ckpt, "sub"), os.path.join(ckpt, "sub-aside")
os.makedirs(sub)
with open(os.path.join(sub, "model.bin"), "wb") as f:
    f.write(b"the entry's own bytes")
for name, target in (("host.npy", host_file), ("host-folder", host_folder)):
    os.symlink(target, os.path.join(ckpt, name))
print("swapping", flush=True)
end, next_save, swaps = float(os.environ["HAET_DEADLINE"]) + 5, time.time() + 2.0, 0
while time.time() < end:
    if time.time() > next_save:
        save()
        next_save += 2.0
        print("swaps so far:", swaps, flush=True)
    try:
        os.rename(sub, aside)
        os.symlink(host_folder, sub)
        time.sleep(0.0002)
        os.unlink(sub)
        os.rename(aside, sub)
        swaps += 1
    except OSError:
        pass
    time.sleep(0.004)
