"""Saves a model, leaves children behind (one in its own session) and exits 0 at once."""

import os

import numpy as np

np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))

import os
import time

for escape in (False, True):
    if os.fork() == 0:
        if escape:
            os.setsid()
            if os.fork():
                os._exit(0)
        time.sleep(3600)
        os._exit(0)
print("children left behind", flush=True)
