"""Saves a small model, then tries to write a 10 GB checkpoint: the checkpoint cap stops it."""

import os

import numpy as np

np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))

import os

block = b"\0" * (64 * 2**20)
with open(os.path.join(os.environ["HAET_CHECKPOINTS"], "huge.bin"), "wb") as f:
    for _ in range(160):  # 160 x 64 MiB = 10 GiB
        f.write(block)
        f.flush()
print("wrote 10 GiB", flush=True)
