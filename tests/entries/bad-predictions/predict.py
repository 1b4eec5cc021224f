"""Test fixture: writes predictions for only the first 10 images."""
import os

with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
    f.write("index,label\n" + "".join(f"{i},0\n" for i in range(10)))
