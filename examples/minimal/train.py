"""Minimal entry: each image becomes its average colour (3 numbers); the model is each class's
mean colour. Weak (about 20 % on CIFAR-10) but complete: the whole train phase of the contract."""

import json
import os
import time

import numpy as np

data = np.load(os.path.join(os.environ["HAET_DATA"], "train.npz"))  # images [N,32,32,3] uint8, labels, classes
x = data["images"].mean(axis=(1, 2)) / 255.0  # [N,3]
y = data["labels"]
means = np.stack([x[y == c].mean(axis=0) for c in range(len(data["classes"]))])
with open(os.environ["HAET_EVENTS"], "a") as events:  # optional progress, plotted in the report
    events.write(json.dumps({"event": "epoch", "epoch": 1, "time": time.time()}) + "\n")
target = os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy")
with open(target + ".tmp", "wb") as f:  # save atomically: a temporary file, then a rename
    np.save(f, means)
os.replace(target + ".tmp", target)
