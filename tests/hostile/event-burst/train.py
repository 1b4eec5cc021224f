"""An events flood timed for the deadlines: right before SIGTERM and right before SIGKILL, four
writers (two processes, two threads) append MiBs of tiny lines to HAET_EVENTS at once: `{}` (valid
but empty events), `x` (parse errors, the slowest kind for a JSON reader), blank lines and short
events without a time of their own. A harness that parses events in its clock's loop is busy for
seconds exactly when a signal is due. About 12 MiB in all: under the Docker runner's default
16 MiB events cap, so the watchdog does not end it early."""

import sys

sys.dont_write_bytecode = True
import os
import threading
import time

import kit

kit.save_model()
kit.stubborn()
kit.witnesses()

LEADS = (0.9, 0.6, 0.3)  # seconds before each signal; the harness's tick phase is unknown
MOMENTS = [kit.TERM_AT - lead for lead in LEADS] + [kit.DEADLINE - lead for lead in LEADS]
PER_BURST = 512 * 1024  # bytes per writer per moment: 4 writers x 6 moments x 0.5 MiB = 12 MiB
STYLES = {
    "empty": b"{}\n",
    "junk": b"x\n",
    "blank": b"\n",
    "event": b'{"event":"s","v":1}\n',
}


def writer(line):
    block = line * (PER_BURST // len(line))
    fd = os.open(kit.EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for moment in MOMENTS:
        kit.sleep_until(moment)
        for i in range(0, len(block), 65536):
            os.write(fd, block[i : i + 65536])
    while True:  # then a steady trickle until killed
        kit.give_up()
        os.write(fd, line * 64)
        time.sleep(0.01)


styles = list(STYLES.values())
kit.child(lambda: writer(styles[0]), "events")
kit.child(lambda: writer(styles[1]), "events")
for style in styles[2:]:
    threading.Thread(target=writer, args=(style,), daemon=True).start()
kit.idle()
