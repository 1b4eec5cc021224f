"""Saves a model, then appends to its events file without end."""

import os

import numpy as np

np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))

import os

line = ('{"event": "spam", "pad": "' + "x" * 1000 + '"}\n') * 1000
with open(os.environ["HAET_EVENTS"], "a") as f:
    while True:
        f.write(line)
