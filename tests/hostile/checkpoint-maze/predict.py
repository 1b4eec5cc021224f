"""Prints every file it finds in HAET_CHECKPOINTS (the official folder, or a curve snapshot), so a
host file the harness copied in would show in the log; predicts class 0 for every image."""

import kit

kit.show_checkpoints()
kit.predict_class_zero()
