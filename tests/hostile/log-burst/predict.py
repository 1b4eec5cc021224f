"""Honest predictions: class 0 for every image (the train phase is what these entries attack)."""

import os

import numpy as np

n = len(np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))["images"])
with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
    f.write("index,label\n" + "".join(f"{i},0\n" for i in range(n)))
