"""Prints every file it finds in HAET_CHECKPOINTS (the official folder, or a curve snapshot), so a
host file the harness copied in would show in the log; predicts class 0 for every image."""
import os, numpy as np

ckpt = os.environ["HAET_CHECKPOINTS"]
for folder, _, files in os.walk(ckpt):
    for name in files:
        path = os.path.join(folder, name)
        try:
            with open(path, "rb") as f:
                print("FILE", os.path.relpath(path, ckpt), f.read(64), flush=True)
        except OSError as exc:
            print("UNREADABLE", os.path.relpath(path, ckpt), exc)
n = len(np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))["images"])
with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
    f.write("index,label\n" + "".join(f"{i},0\n" for i in range(n)))
