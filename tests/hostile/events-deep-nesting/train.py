"""Writes events nested far too deep ([[[ and {{{ and both mixed), each under the 64 KiB line
cap so that only the depth check stops them, then honest events, then saves a model."""

import json
import os
import time

import numpy as np

lines = [
    "[" * 60_000,  # unclosed, 60000 deep
    "[" * 20_000 + "]" * 20_000,  # valid JSON, 20000 deep
    '{"a":' * 8_000 + "1" + "}" * 8_000,  # a valid object, 8000 deep
    '{"a":[' * 4_000 + "0" + "]}" * 4_000,  # mixed, 8000 deep
    '{"event": "deep", "v": ' + "[" * 33 + "]" * 33 + "}",  # just over the limit: skipped
    '{"ok": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',  # brackets inside a string: kept
    '{"event": "shallow", "v": ' + "[" * 31 + "]" * 31 + "}",  # 32 deep: kept
]
with open(os.environ["HAET_EVENTS"], "a") as f:
    for line in lines:
        f.write(line + "\n")
    for epoch in range(1, 4):
        f.write(json.dumps({"event": "epoch", "epoch": epoch, "loss": 1.0 / epoch, "time": time.time()}) + "\n")
np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))
