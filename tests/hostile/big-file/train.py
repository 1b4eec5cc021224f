"""An honest entry: tests/test_hostile_inputs.py copies it and puts a sparse multi-GiB file
(or a symlink out of the entry) beside it; the harness must refuse it without reading it."""

import os

import numpy as np

np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))
