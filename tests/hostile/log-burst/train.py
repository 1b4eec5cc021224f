"""A stdout/stderr burst timed for the deadlines (tests/hostile/log-flood floods from the start;
this one waits): right before SIGTERM and right before SIGKILL, three processes sharing the
phase's stdout write MiBs at once: empty lines (one line per byte for a reader that splits lines),
one endless line without a newline, and carriage returns. Then a steady flood until killed."""

import sys

sys.dont_write_bytecode = True
import os

import kit

kit.save_model()
kit.stubborn()
kit.witnesses()

LEADS = (0.9, 0.6, 0.3)
MOMENTS = [kit.TERM_AT - lead for lead in LEADS] + [kit.DEADLINE - lead for lead in LEADS]
PER_BURST = 2 * 2**20


def flood(fd, unit):
    block = unit * (65536 // len(unit))
    for moment in MOMENTS:
        kit.sleep_until(moment)
        for _ in range(PER_BURST // len(block)):
            try:
                os.write(fd, block)
            except OSError:
                pass
    while True:
        kit.give_up()
        try:
            os.write(fd, block)
        except OSError:
            pass


kit.child(lambda: flood(1, b"\n"), "log")
kit.child(lambda: flood(2, b"a"), "log")
kit.child(lambda: flood(1, b"\r"), "log")
kit.idle()
