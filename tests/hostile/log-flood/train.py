"""Saves a model, then floods stdout and stderr as fast as it can until the deadline."""

import os

import numpy as np

np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))

import sys

line = ("flood " * 20 + "\n") * 1000
while True:
    sys.stdout.write(line)
    sys.stderr.write(line)
