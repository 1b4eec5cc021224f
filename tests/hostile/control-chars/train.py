"""Prints terminal escapes to stdout and stderr and puts them in its events, then saves a model."""

import json
import os
import sys
import time

import numpy as np

tricks = [
    "\x1b[31mred\x1b[0m \x1b[2J\x1b[H cleared",  # CSI: colour, clear screen, cursor home
    "\x1b]0;pwned-title\x07 title set",  # OSC: window title, ended by BEL
    "bell \x07\x07\x07",  # BEL
    "visible\b\b\b\b\b\b\bhidden",  # backspaces overwrite
    "harmless text\rrm -rf / # overwritten by CR",  # carriage return overwrite
    "file \u202egnp.exe",  # bidi override (shows exe.png)
    "\x1b[8mconcealed\x1b[28m \x1bc reset \x9b31m C1 CSI",
]
for line in tricks:
    print(line)
    print(line, file=sys.stderr)
sys.stdout.flush()
with open(os.environ["HAET_EVENTS"], "a") as f:
    for i, line in enumerate(tricks):
        f.write(
            json.dumps(
                {
                    "event": "\x1b]0;title\x07epoch",
                    "epoch": i,
                    "\x1b[2Jloss": 1.0 / (i + 1),
                    "note": line,
                    "time": time.time(),
                }
            )
            + "\n"
        )
np.save(os.path.join(os.environ["HAET_CHECKPOINTS"], "model.npy"), np.zeros(3))
time.sleep(1.5)  # long enough for the harness to read the events while it runs
