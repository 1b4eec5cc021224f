"""Prints escapes, then writes predictions whose second row holds a terminal escape: invalid,
and the reason that quotes the row must not carry the escape to the console or the report."""

import os
import sys

import numpy as np

print("\x1b[2J\x1b[3J\x1b[H\x1b]2;predict-title\x07 predict\b\b\b\r\u202eDONE")
print("\x1b[1;31mERROR\x1b[0m everything is fine", file=sys.stderr)
n = len(np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))["images"])
with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
    f.write("index,label\n0,\x1b[31m1\x1b]0;title\x07\n" + "".join(f"{i},0\n" for i in range(1, n)))
