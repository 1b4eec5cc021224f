"""Train phase of the predict-retrain attack: keep the training set beside the model, then train
as the bundled entry does (its files are copied beside this one by benchmarks/predict_budget.py)."""

import os
import runpy
import shutil

kept = os.path.join(os.environ["HAET_CHECKPOINTS"], "kept-data")
os.makedirs(kept, exist_ok=True)
shutil.copyfile(os.path.join(os.environ["HAET_DATA"], "train.npz"), os.path.join(kept, "train.npz"))
with open(os.path.join(kept, "train_budget_s"), "w") as f:  # predict retrains only when it has longer
    f.write(os.environ["HAET_BUDGET_S"])
runpy.run_path("train.py", run_name="__main__")
