"""Predicts at once, then ignores SIGTERM and goes on training on the kept training set past
its deadline, from itself and from an escaped helper (double fork + setsid), each rewriting
predictions.csv with a better model: only the SIGKILL at the predict deadline can stop them.
Gives up GIVE_UP_S after the deadline, so a test on a harness that never kills still ends."""

import os
import signal
import time

from learner import load_model, load_trainset, test_images, train_until, write_predictions

GIVE_UP_S = 60.0
signal.signal(signal.SIGTERM, signal.SIG_IGN)
model = load_model()
x_test = test_images()
write_predictions(model, x_test)
x, y = load_trainset()
end = float(os.environ["HAET_DEADLINE"]) + GIVE_UP_S

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:  # the escaped helper
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print(f"HELPER pid={os.getpid()}", flush=True)
        while time.time() < end:
            train_until(model, x, y, time.time() + 0.5)
            write_predictions(model, x_test)
            print(f"HELPER-TRAINED at {time.time() - float(os.environ['HAET_DEADLINE']):+.1f}s", flush=True)
    os._exit(0)
print(f"MAIN pid={os.getpid()}", flush=True)
while time.time() < end:
    train_until(model, x, y, time.time() + 0.5)
    write_predictions(model, x_test)
    print(f"MAIN-TRAINED at {time.time() - float(os.environ['HAET_DEADLINE']):+.1f}s", flush=True)
