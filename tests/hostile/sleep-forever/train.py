"""Saves a model, then sleeps forever: SIGTERM at deadline - grace ends it (default handler)."""

import os

import numpy as np

np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))

import time

print("saved; sleeping forever", flush=True)
while True:
    time.sleep(3600)
