"""Predict phase of the predict-retrain attack: train the bundled ResNet-9 afresh on the kept
training set for all the predict time it can spare, then predict with that model if it trained
for longer than the train phase did; otherwise predict with the train phase's model. With an
`infer-only` file beside it, it only predicts (the control)."""

import os
import subprocess
import sys
import time

PREDICT_RESERVE_S = 25.0  # the bundled predict.py's imports and test-time views on 2 CPU cores
MIN_RETRAIN_S = 10.0

env = dict(os.environ)
deadline, grace = float(env["HAET_DEADLINE"]), float(env["HAET_GRACE_S"])
retrain_end = deadline - grace - PREDICT_RESERVE_S
retrain_s = retrain_end - time.time()
checkpoints = env["HAET_CHECKPOINTS"]
with open(os.path.join(checkpoints, "kept-data", "train_budget_s")) as f:
    train_budget = float(f.read())
if not os.path.exists("infer-only") and retrain_s >= max(MIN_RETRAIN_S, train_budget):
    fresh = "/tmp/retrain-checkpoints"
    os.makedirs(fresh, exist_ok=True)
    child = {
        **env,
        "HAET_DATA": os.path.join(checkpoints, "kept-data"),
        "HAET_CHECKPOINTS": fresh,
        "HAET_DEADLINE": repr(retrain_end),
        "HAET_GRACE_S": "0",
        "HAET_BUDGET_S": repr(retrain_s),
        "HAET_PREDICT_BUDGET_S": repr(PREDICT_RESERVE_S),
        "HAET_EVENTS": "/tmp/retrain-events.jsonl",
    }
    subprocess.run([sys.executable, "train.py"], env=child, check=False)
    if any(name.endswith(".pt") for name in os.listdir(fresh)):
        env["HAET_CHECKPOINTS"] = fresh
        print(f"PREDICT-RETRAINED for {retrain_s:.1f}s", flush=True)
os.execve(sys.executable, [sys.executable, "predict.py"], env)
