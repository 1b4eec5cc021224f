"""Hides a checkpoint where a bounded walk that kept what it saw would miss it: saves a model in
time, then writes `late.npy` 70 folders down (past the walker's 64 levels) and makes 10,001 empty
folders beside it (past its 10,000 entries; Docker's tmpfs runs out of inodes first), and links
`host.npy` to a host file (host_paths.txt, written by the test). Nothing of it may be scored."""

import os

import numpy as np

ckpt = os.environ["HAET_CHECKPOINTS"]
host_file = open("host_paths.txt").read().split()[1]
np.save(os.path.join(ckpt, "model.npy"), np.zeros(3))
os.symlink(host_file, os.path.join(ckpt, "host.npy"))
deep = ckpt
for _ in range(70):
    deep = os.path.join(deep, "d")
os.makedirs(deep)
np.save(os.path.join(deep, "late.npy"), np.zeros(3))
made = 0
try:
    for made in range(10_001):
        os.mkdir(os.path.join(ckpt, f"e{made:05d}"))
except OSError as exc:
    print("stopped making folders:", exc)
print("maze made:", made + 1, "folders", flush=True)
