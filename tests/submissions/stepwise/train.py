"""A tiny entry for the curve's tests: nearest class mean on pixels, learnt from more images at
each step, checkpointed atomically every STEP_S seconds until the SIGTERM is due.

The checkpoint (model.npz) holds the class means and the step; numpy only.
"""

import os
import time

import numpy as np

STEP_S = 1.2  # longer than two looks of the harness's watcher (0.5 s each): each step can be snapshot

deadline = float(os.environ["HAET_DEADLINE"]) - float(os.environ["HAET_GRACE_S"]) - 0.3
data = np.load(os.path.join(os.environ["HAET_DATA"], "train.npz"))
x = data["images"].reshape(len(data["images"]), -1).astype(np.float32) / 255.0
y = data["labels"]
n_classes = len(data["classes"])
target = os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npz")
step = 0
while time.time() + STEP_S < deadline:
    step += 1
    seen = np.concatenate([np.flatnonzero(y == c)[:step] for c in range(n_classes)])  # `step` images per class
    means = np.stack([x[seen][y[seen] == c].mean(axis=0) for c in range(n_classes)])
    with open(target + ".tmp", "wb") as f:
        np.savez(f, means=means, step=step)
    os.replace(target + ".tmp", target)
    print(f"step {step}: saved", flush=True)
    time.sleep(STEP_S)
