"""Tries to change, replace and delete its read-only training data."""

import os

import numpy as np

np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))

import os

path = os.path.join(os.environ["HAET_DATA"], "train.npz")
attempts = {
    "overwrite": lambda: open(path, "r+b").write(b"evil"),
    "chmod": lambda: os.chmod(path, 0o666),
    "unlink": lambda: os.unlink(path),
    "rename": lambda: os.rename(path, path + ".x"),
    "create": lambda: open(os.path.join(os.environ["HAET_DATA"], "extra.npz"), "w").write("x"),
}
for name, attempt in attempts.items():
    try:
        attempt()
        print(f"WROTE data by {name}", flush=True)
    except OSError as exc:
        print(f"refused {name}: {exc.strerror}", flush=True)
