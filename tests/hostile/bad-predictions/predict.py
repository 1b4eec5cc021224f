"""Writes predictions with labels out of range and a duplicated index."""

import os

with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
    f.write("index,label\n0,3\n0,4\n1,99\n")
