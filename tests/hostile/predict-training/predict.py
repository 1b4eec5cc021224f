"""Goes on training on the training set that train kept in HAET_CHECKPOINTS until its own
deadline (HAET_DEADLINE - HAET_GRACE_S), then predicts: predict as a second training budget."""

import os
import time

from learner import INFER_ONLY, load_model, load_trainset, stop_at, test_images, train_until, write_predictions

t0 = time.time()
model = load_model()
x_test = test_images()
steps = 0
if not INFER_ONLY:
    x, y = load_trainset()
    until = stop_at() - 3.0  # room to predict, on a starved core too
    steps = train_until(model, x, y, until)
write_predictions(model, x_test)
print(
    f"PREDICT-TRAINED steps={steps} seconds={time.time() - t0:.1f} "
    f"budget={os.environ['HAET_BUDGET_S']} train_steps={int(model['steps']) - steps}",
    flush=True,
)
