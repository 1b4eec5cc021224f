import os

import numpy as np

model = np.load(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npz"))
means = model["means"]
images = np.load(os.path.join(os.environ["HAET_DATA"], "test.npz"))["images"]
x = images.reshape(len(images), -1).astype(np.float32) / 255.0
labels = (x @ means.T - 0.5 * (means**2).sum(1)).argmax(1)
with open(os.path.join(os.environ["HAET_OUTPUT"], "predictions.csv"), "w") as f:
    f.write("index,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)))
