"""A fork bomb: every process forks forever. The pids limit stops it; the deadline ends it."""

import os
import time

print("forking", flush=True)
while True:
    try:
        os.fork()
    except OSError:
        time.sleep(0.01)
