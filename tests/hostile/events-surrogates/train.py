"""Lone surrogates in event keys and values, bytes that are not UTF-8, and checkpoint file names
that are not UTF-8 or hold escapes: everything must still be written, reported and shown."""

import os
import time

import numpy as np

t = time.time()
with open(os.environ["HAET_EVENTS"], "ab") as f:
    f.write(b'{"event": "epoch", "epoch": 1, "\\ud800loss": 0.5, "time": %f}\n' % t)  # lone high in a key
    f.write(
        b'{"event": "\\udfff", "epoch": 2, "note": "x\\udc80y", "loss": 0.4, "time": %f}\n' % t
    )  # lone low in values
    f.write(b'{"event": "\\ud83d\\ude00 pair", "epoch": 3, "loss": 0.3}\n')  # a valid pair stays
    f.write(b'{"event": "bytes", "v": "\xff\xfe\xed\xa0\x80"}\n')  # not UTF-8: skipped
    f.write(b'{"\\ud800": {"\\udbff": ["\\udc00", "\\ud800"]}, "event": "nested"}\n')
checkpoints = os.fsencode(os.environ["HAET_CHECKPOINTS"])
np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))
for name in (b"ckpt-\xff\xfe.bin", b"evil\x1b[2J\x1b]0;pwned\x07\nname\xe2\x80\xae.bin"):
    with open(os.path.join(checkpoints, name), "wb") as f:
        f.write(b"weights")
