"""Learns nothing. Replays the harness's sampler from HAET_SEED to predict the held-out order.

The train set's labels come in the order the seeded sampler drew them; the replay reproduces that
order exactly (a check that it has the right recipe and pool-size branch), and the generator state
it ends in is the one the harness continues with to draw and shuffle the held-out set. That state
is the whole "model". It also prints everything it can see (HAET_* variables, its files), so a
test can check that no secret order key reaches an entry."""

import json
import os
import sys

sys.dont_write_bytecode = True
import numpy as np
from sampler import replay_train

for key in sorted(os.environ):
    if key.startswith("HAET_"):
        print(f"env {key}={os.environ[key]}")
for directory in (os.environ["HAET_DATA"], os.getcwd()):
    print(f"files {directory}: {sorted(os.listdir(directory))}")

data = np.load(os.path.join(os.environ["HAET_DATA"], "train.npz"))
labels = data["labels"]
n_classes = len(data["classes"])
per_class = int(np.bincount(labels, minlength=n_classes)[0])
seed = int(os.environ["HAET_SEED"])
rng, pool = replay_train(seed, n_classes, per_class, labels)
print(f"replay of the train draw: {f'matches with a pool of {pool} per class' if rng else 'no match'}")
state = {
    "seed": seed,
    "n_classes": n_classes,
    "train_per_class": per_class,
    "pool": pool,
    "train_labels": labels.tolist(),
    "state": rng.bit_generator.state if rng else None,
}
target = os.path.join(os.environ["HAET_CHECKPOINTS"], "replay.json")
with open(target + ".tmp", "w") as f:
    json.dump(state, f)
os.replace(target + ".tmp", target)
