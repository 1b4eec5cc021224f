"""Test fixture: nearest class mean of each image's average colour (3 numbers). Weak but honest."""
import json
import os
import time

import numpy as np

data = np.load(os.path.join(os.environ["HAET_DATA"], "train.npz"))
x = data["images"].mean(axis=(1, 2)) / 255.0
y = data["labels"]
means = np.stack([x[y == c].mean(axis=0) for c in range(len(data["classes"]))])
with open(os.environ["HAET_EVENTS"], "a") as events:
    events.write(json.dumps({"event": "epoch", "epoch": 1, "time": time.time()}) + "\n")
target = os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy")
with open(target + ".tmp", "wb") as f:
    np.save(f, means)
os.replace(target + ".tmp", target)
