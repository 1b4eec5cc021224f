"""Honest predictions (class 0), plus set-id files and special files in /output."""

import os

import numpy as np
import tricks

# What train left, as the harness hands it on: SEEN <name> <mode> for each file and folder.
for top, dirs, files in os.walk(os.environ["HAET_CHECKPOINTS"]):
    for name in dirs + files:
        path = os.path.join(top, name)
        print("SEEN", os.path.relpath(path, os.environ["HAET_CHECKPOINTS"]), oct(os.lstat(path).st_mode), flush=True)
folder = os.environ["HAET_OUTPUT"]
n = len(np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))["images"])
tricks.mount_options(folder)
tricks.setid(folder, "sh", 0o4755)
tricks.setgid_folder(folder, "setgid-folder")
tricks.special(folder)
with open(os.path.join(folder, "predictions.csv"), "w") as f:
    f.write("index,label\n" + "".join(f"{i},0\n" for i in range(n)))
os.chmod(os.path.join(folder, "predictions.csv"), 0o6755)
print("SETID predictions.csv", flush=True)
