"""Control for the deadline tests: saves a model, ignores SIGTERM and sleeps; its two witnesses
(kit.py) keep alive- checkpoints until killed. Nothing hostile: every harness should pass with it."""

import sys

sys.dont_write_bytecode = True  # the local runner would leave __pycache__ in the entry's folder
import kit

kit.save_model()
kit.stubborn()
kit.witnesses()
kit.idle()
