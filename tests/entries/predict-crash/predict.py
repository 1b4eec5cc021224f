"""Test fixture: looks for a checkpoint under a different name than train saved."""
import os

import numpy as np

np.load(os.path.join(os.environ["HAET_CHECKPOINTS"], "weights.npy"))
