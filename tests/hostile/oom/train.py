"""Saves a model, then allocates far past the memory limit: the kernel kills it (oom)."""

import os

import numpy as np

np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))

import numpy as np

blocks = []
while True:
    blocks.append(np.ones(64 * 2**20, dtype=np.uint8))
    print(f"allocated {len(blocks) * 64} MiB", flush=True)
