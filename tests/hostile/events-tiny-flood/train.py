"""Writes 12 MiB of tiny events (and blank lines) as fast as it can, then saves a model and exits:
millions of events that would all be dicts in the harness's memory without a cap."""

import os

import numpy as np

block = (b"{}\n" + b'{"e":1}\n' + b"\n\n" + b'{"event":"s","i":0}\n') * 4096
with open(os.environ["HAET_EVENTS"], "ab") as f:
    written = 0
    while written < 12 * 2**20:
        f.write(block)
        written += len(block)
np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))
