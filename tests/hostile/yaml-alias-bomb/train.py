"""Never runs: the manifest is refused."""
import os, numpy as np
np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))
